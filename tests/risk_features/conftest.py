from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.demo.loader import load_master_data, load_telemetry
from iotfin.risk.features import load_commodity_prices
from iotfin.sim import SimConfig, SimDataset, generate

# Small enough to build in ~30 s, large enough for two fabricated trades and every device type.
CONFIG = SimConfig(enterprises=80, days=45, seed=11, devices=320, start_date=date(2026, 3, 1))
LAST_DAY = date(2026, 4, 14)
NOW_MS = 1_796_000_000_000  # the ingest clock: after the simulated period


@dataclass
class Economy:
    root: Path
    ds: SimDataset

    def workspace(self, copy_to: Path | None = None) -> Workspace:
        """The loaded workspace, or a private copy of it that a test may change."""
        src = self.root / "ws"
        if copy_to is not None:
            shutil.copytree(src, copy_to)
            src = copy_to
        return Workspace(Settings(data_dir=src, database_url=f"sqlite:///{src / 'iotfin.db'}"))


@pytest.fixture(scope="session")
def economy(tmp_path_factory: pytest.TempPathFactory) -> Economy:
    root = tmp_path_factory.mktemp("features")
    generate(CONFIG, root / "sim", workers=2)
    ds = SimDataset(root / "sim")
    ws = Workspace(Settings(data_dir=root / "ws", database_url=f"sqlite:///{root / 'ws' / 'iotfin.db'}"))
    ws.initialise()
    load_master_data(ws, ds)
    load_telemetry(ws, ds, now_ms=NOW_MS)
    load_commodity_prices(ws.features, ds.table("commodity_prices"))
    ws.close()
    return Economy(root, ds)


@pytest.fixture
def ws(economy: Economy):  # noqa: ANN201
    workspace = economy.workspace()
    yield workspace
    workspace.close()
