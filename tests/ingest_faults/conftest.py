"""A real `iotfin serve` subprocess (HTTP + MQTT device endpoints) on free ports, for the fault suite.

Devices are created through a Workspace on the same data folder, as another process would (the
server registers them on their first message); what is stored is read back from the telemetry store
on disk, which a reader may open while the server writes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.devices.service import IssuedDevice
from iotfin.ingest.quarantine import QuarantineStore
from iotfin.telemetry.store import TelemetryStore
from tests.services import free_port

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FAR = 4_102_444_800_000  # 2100-01-01


class Serve:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {
            "IOTFIN_DATA_DIR": str(data_dir)}
        self.http_port, self.mqtt_port = free_port(), free_port()
        self.ws = Workspace(Settings(data_dir=data_dir))
        self.ws.initialise()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iotfin", "serve", "--http-port", str(self.http_port), "--mqtt-port",
             str(self.mqtt_port)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            try:
                httpx.get(f"{self.http}/healthz", timeout=1)
                socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=1).close()
                return
            except (httpx.TransportError, OSError):
                assert time.monotonic() < deadline, "iotfin serve did not come up"
                time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def device(self, **options: object) -> IssuedDevice:
        return self.ws.devices.create(**options)  # type: ignore[arg-type]

    def points(self, device_id: int, key: str) -> list[tuple[int, float]]:
        table = TelemetryStore(self.ws.settings.resolved_telemetry_dir).series(device_id, key, 0, FAR)
        return list(zip(table["ts"].to_pylist(), table["value"].to_pylist(), strict=True))

    def quarantined(self, by: str = "reason") -> dict:
        return QuarantineStore(self.data_dir / "quarantine").counts(by)


@pytest.fixture(scope="package")  # one server for the whole suite: starting one takes seconds
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    server = Serve(tmp_path_factory.mktemp("serve") / "ws")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_serve(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(tmp_path / "ws")
    try:
        yield server
    finally:
        server.stop()
