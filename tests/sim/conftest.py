from __future__ import annotations

from pathlib import Path

import pytest

from iotfin.sim import SimConfig, SimDataset, generate

SMALL = SimConfig(enterprises=120, days=40, seed=7)


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> SimDataset:
    out: Path = tmp_path_factory.mktemp("sim") / "out"
    generate(SMALL, out, workers=2)
    return SimDataset(out)
