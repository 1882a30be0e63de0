"""Real processes for the fleet-scale ingest suite: `iotfin serve --ingest-workers N` on free ports, a
Mosquitto broker started with a generated configuration (password file + ACL file), and
`iotfin serve-ingest --broker` consuming from it."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotfin.transports.broker import MosquittoAccounts, mosquitto_acl
from tests.ingest_faults.conftest import Serve
from tests.services import free_port

INGEST_USER, INGEST_PASSWORD = "iotfin-ingest", "ingest-secret"


class WorkerServe(Serve):
    """`iotfin serve --ingest-workers N`: the platform process plus a supervisor and N ingest workers."""

    def __init__(self, data_dir: Path, workers: int = 2):
        super().__init__(data_dir)
        self.workers = workers

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iotfin", "serve", "--http-port", str(self.http_port), "--mqtt-port",
             str(self.mqtt_port), "--ingest-workers", str(self.workers)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._wait_up()

    def _wait_up(self) -> None:
        import httpx  # noqa: PLC0415 - only the waiting needs it

        deadline = time.monotonic() + 90
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.proc.stderr.read() if self.proc and self.proc.stderr else ""
            try:
                httpx.get(f"{self.http}/healthz", timeout=1)
                # every worker listening: else the first one up would get all the test's connections
                if listeners(self.mqtt_port) == self.workers and listeners(self.http_port) == self.workers + 1:
                    return
            except (httpx.TransportError, OSError):
                pass
            assert time.monotonic() < deadline, "iotfin serve --ingest-workers did not come up"
            time.sleep(0.2)

    def worker_pids(self) -> dict[int, int]:
        out = {}
        for f in (self.data_dir / "run").glob("ingest-worker-*.pid"):
            try:
                out[int(f.stem.rsplit("-", 1)[1])] = int(f.read_text())
            except (ValueError, FileNotFoundError):
                continue
        return out

    def stop(self) -> None:
        pids = list(self.worker_pids().values())
        super().stop()
        deadline = time.monotonic() + 40
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)


def listeners(port: int) -> int:
    """Listening TCP sockets on `port` (each SO_REUSEPORT socket is one), from /proc/net/tcp."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by the supervisor) is not serving
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def worker_serve(tmp_path: Path) -> Iterator[WorkerServe]:
    server = WorkerServe(tmp_path / "ws", workers=2)
    try:
        yield server
    finally:
        server.stop()


class Mosquitto:
    """A real Mosquitto broker on a free port: password file and ACL generated, MQTT 5 shared
    subscriptions, queues unbounded so that nothing is dropped for a consumer that is down."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.passwd = folder / "passwd"
        self.acl = folder / "acl"
        self.pid_file = folder / "mosquitto.pid"
        self.accounts = MosquittoAccounts(self.passwd, self.pid_file)
        self.accounts.add_user(INGEST_USER, INGEST_PASSWORD)
        self.acl.write_text(mosquitto_acl(INGEST_USER))
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.passwd}\n"
            f"acl_file {self.acl}\n"
            f"pid_file {self.pid_file}\n"
            "persistence false\n"
            "max_queued_messages 0\n"   # 0 = no limit: a stopped consumer's queue is not cut short
            "max_inflight_messages 1000\n"
            # as root, Mosquitto switches to the `mosquitto` user, which cannot read pytest's folders
            + (f"user {pwd.getpwuid(os.geteuid()).pw_name}\n" if os.geteuid() == 0 else "")
            + "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.folder / "mosquitto.log", "wb")  # noqa: SIM115 - kept open while it runs
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        import socket  # noqa: PLC0415 - only the waiting needs it

        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, (self.folder / "mosquitto.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self.pid_file.exists():
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "mosquitto did not come up"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (Debian package `mosquitto`)")
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
