"""Simulator configuration and its seeding rule."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from iotfin.core.errors import ValidationError
from iotfin.core.time import MS_PER_DAY, day_start_ms

LOCAL_OFFSET_MS = 8 * 3_600_000  # Asia/Shanghai has no daylight saving time


@dataclass(frozen=True, slots=True)
class SimConfig:
    enterprises: int = 300
    days: int = 90
    seed: int = 42
    # A fixed default keeps the output a function of the arguments alone (not of the day it was run).
    start_date: date = field(default=date(2026, 1, 1))
    devices: int | None = None  # default: 10 per enterprise
    shocks: bool = False  # sector-wide and regional shocks with ground truth (iotfin.sim.shocks, issue 24)

    def __post_init__(self) -> None:
        if self.enterprises < 5:
            raise ValidationError(f"enterprises must be at least 5, not {self.enterprises}")
        if not 1 <= self.days <= 3650:
            raise ValidationError(f"days must be between 1 and 3650, not {self.days}")
        if self.devices is not None and self.devices < self.enterprises:
            raise ValidationError(f"devices ({self.devices}) must be at least one per enterprise ({self.enterprises})")
        if self.shocks and self.days < 30:
            raise ValidationError(f"shocks need a horizon of at least 30 days, not {self.days}")
        if self.seed < 0:
            raise ValidationError(f"seed must be a non-negative integer, not {self.seed}")

    @property
    def device_target(self) -> int:
        return self.devices if self.devices is not None else 10 * self.enterprises

    def day(self, index: int) -> date:
        return self.start_date + timedelta(days=index)

    def local_midnight_ms(self, index: int) -> int:
        """UTC epoch ms of local (Asia/Shanghai) midnight starting simulated day `index`."""
        return day_start_ms(self.start_date) - LOCAL_OFFSET_MS + index * MS_PER_DAY

    @property
    def end_ms(self) -> int:
        return self.local_midnight_ms(self.days)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["start_date"] = self.start_date.isoformat()
        data["devices"] = self.device_target
        if not self.shocks:  # a run without shocks describes itself as it always did
            data.pop("shocks")
        return data


def rng(cfg: SimConfig, stage: str, *keys: int) -> np.random.Generator:
    """An independent random stream per (seed, stage, keys).

    Every piece of output draws from a stream named by what it is (e.g. telemetry of one device type,
    one day, one chunk), never from a shared sequential stream, so the output does not depend on the
    order work runs in or on how many worker processes share it.
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, zlib.crc32(stage.encode()), *keys])))
