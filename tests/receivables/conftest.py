from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings


@pytest.fixture
def sim_workspace(db_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """An initialised workspace in simulation mode (business dates may be given), on each backend."""
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=db_url, simulation=True))
    ws.initialise()
    try:
        yield ws
    finally:
        ws.close()
