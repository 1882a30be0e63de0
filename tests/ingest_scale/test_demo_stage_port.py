"""The demo's ingest-workers stage starts `iotfin serve-ingest` on a port it found free; another
process can take that port before the workers bind it (CI: two demos side by side, one's outgoing
connection on the other's chosen port). The stage then starts again on another port; any other
failure, or a port taken on every attempt, is reported with the workers' own error."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.demo import ingest_workers as stage

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=f"sqlite:///{tmp_path / 'ws.db'}"))
    ws.initialise()
    ws.close()
    return {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {
        "IOTFIN_DATA_DIR": str(tmp_path / "ws"), "IOTFIN_DATABASE_URL": f"sqlite:///{tmp_path / 'ws.db'}"}


@pytest.fixture
def taken() -> Iterator[int]:
    """A port held by a plain listening socket (no SO_REUSEPORT): the workers cannot share it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_port_taken_before_the_workers_bind_it_is_replaced(env: dict[str, str], taken: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([taken])
    real = stage._free_port
    monkeypatch.setattr(stage, "_free_port", lambda: next(offered, None) or real())
    proc, port = stage._start_workers(2, env)
    try:
        assert port != taken and stage._listeners(port) >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_port_taken_on_every_attempt_is_an_error_naming_why(env: dict[str, str], taken: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "_free_port", lambda: taken)
    with pytest.raises(RuntimeError, match="(?s)ingest workers did not start: .*Address already in use"):
        stage._start_workers(2, env, attempts=2)
