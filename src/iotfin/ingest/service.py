"""The one ingest use case every transport calls: validate, quarantine the bad, durably store the good."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from iotfin.core.time import now_ms
from iotfin.devices.registry import DeviceRegistry
from iotfin.ingest.quarantine import QuarantineStore
from iotfin.ingest.validate import REASON_CODE, REASONS, Limits, validate
from iotfin.telemetry.model import READING_SCHEMA
from iotfin.telemetry.store import TelemetryStore


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def __iadd__(self, other: IngestResult) -> IngestResult:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.rejected_by_reason.update(other.rejected_by_reason)
        return self


class IngestService:
    def __init__(self, registry: DeviceRegistry, store: TelemetryStore, quarantine: QuarantineStore,
                 retention_days: int = 3650):
        self.registry = registry
        self.store = store
        self.quarantine = quarantine
        self.retention_ms = retention_days * 86_400_000

    def ingest(self, readings: pa.Table, transport: str = "batch", now: int | None = None) -> IngestResult:
        """Store what is valid, quarantine what is not. Returns only after the good rows are durable,
        so a caller may acknowledge `accepted` readings as soon as this returns."""
        readings = readings.select(READING_SCHEMA.names).cast(READING_SCHEMA)
        reasons = validate(readings, self.registry, Limits(now_ms=now if now is not None else now_ms(),
                                                           retention_ms=self.retention_ms))
        accepted_mask = reasons == 0
        duplicate_mask = reasons == REASON_CODE["duplicate_in_batch"]
        rejected_mask = ~accepted_mask & ~duplicate_mask
        result = IngestResult()
        if rejected_mask.any():
            codes = reasons[rejected_mask]
            names = np.asarray(REASONS, dtype=object)[codes]
            self.quarantine.put(readings.filter(pa.array(rejected_mask)), names, transport)
            result.rejected = int(rejected_mask.sum())
            result.rejected_by_reason.update(Counter(names.tolist()))
        if accepted_mask.any():
            self.store.append(readings.filter(pa.array(accepted_mask)))
            result.accepted = int(accepted_mask.sum())
        result.duplicates = int(duplicate_mask.sum())
        return result
