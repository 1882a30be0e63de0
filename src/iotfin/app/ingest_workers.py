"""Ingest worker processes (`iotfin serve --ingest-workers N`, `iotfin serve-ingest`): device traffic on
every core of a node. See docs/ingest-scale.md.

**Direct mode** (devices connect to iotfin): each worker listens on the MQTT port and on the HTTP
port with its own SO_REUSEPORT socket (the kernel spreads new connections over them, as for the
open-API workers in `iotfin.app.workers`), runs the device API over both, and group-commits into
the one telemetry store. **Broker mode** (`--broker HOST:PORT`): workers listen on nothing; each
consumes `$share/iotfin/devices/+/telemetry` from an MQTT broker (Mosquitto, EMQX) through a
persistent MQTT 5 session, see `iotfin.transports.broker`.

What keeps the workers apart is on disk and in the database, never in process memory:

* telemetry batches are numbered by the store's counter file under `flock` and written as
  `day=…/b<seq>.parquet`, one file per batch and day, so no two workers ever write the same file and
  a batch is either wholly visible or not at all (`iotfin.telemetry.store`);
* each batch's ledger leaf is appended in a database transaction that locks the log's head row, so
  leaves from all workers form one log (`iotfin.ledger.store`);
* credential revocations and device statuses made anywhere (another worker, the CLI, the API) reach
  every worker by polling the database every `REVOCATION_POLL_S` (1 s): a revoked device's live
  sessions on any worker close within about one second (the poll interval plus the poll itself);
  devices created elsewhere are loaded from the database on their first message.

The supervisor restarts a worker that dies (with the same index: in broker mode the same MQTT
client id, so the broker hands the restarted worker the messages its predecessor had not
acknowledged), stops them all on SIGTERM/SIGINT or when its parent is gone, and writes each
worker's pid to `<data dir>/run/ingest-worker-<i>.pid`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from iotfin.app.heap import settle_heap
from iotfin.app.workers import _listening_socket, stop_processes
from iotfin.core.settings import Settings

log = logging.getLogger(__name__)

WORKER_ENV = "IOTFIN_INGEST_WORKER"  # the worker's index, in its environment


@dataclass(frozen=True)
class BrokerConfig:
    """Where broker-mode workers consume from, and as whom."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    group: str = "iotfin"
    session_expiry_s: int = 3600


@dataclass(frozen=True)
class IngestConfig:
    host: str
    http_port: int | None  # direct mode: the shared HTTP port (device API and open API)
    mqtt_port: int | None  # direct mode: the shared MQTT port
    broker: BrokerConfig | None = None


def run_worker(index: int, config: IngestConfig) -> None:
    """One ingest worker process (the target of the supervisor's `spawn`)."""
    os.environ[WORKER_ENV] = str(index)
    logging.basicConfig(level=logging.WARNING, format=f"ingest-worker-{index} %(levelname)s %(name)s: %(message)s")
    from iotfin.app.workspace import Workspace  # lazy: a spawned process imports what it runs

    ws = Workspace(Settings())
    try:
        asyncio.run(_broker_worker(ws, index, config) if config.broker is not None else _direct_worker(ws, index, config))
    finally:
        ws.close()


async def _watches(ws: object) -> list[asyncio.Task[None]]:
    from iotfin.transports.revocations import (  # lazy: the worker process imports what it runs
        watch_device_statuses,
        watch_revocations,
    )

    devices = ws.devices  # type: ignore[attr-defined]
    return [asyncio.create_task(watch_revocations(devices)), asyncio.create_task(watch_device_statuses(devices))]


async def _direct_worker(ws: object, index: int, config: IngestConfig) -> None:
    import uvicorn  # lazy: the worker process imports what it runs

    from iotfin.app.http import create_app  # lazy: the worker process imports what it runs
    from iotfin.transports.mqtt.server import MqttServer  # lazy: the worker process imports what it runs
    from iotfin.transports.mqtt_device import (  # lazy: the worker process imports what it runs
        CONCURRENT_TOPICS,
        DeviceApiHandler,
    )

    mqtt = None
    watches = await _watches(ws)
    if config.mqtt_port is not None:
        mqtt = MqttServer(DeviceApiHandler(ws), host=config.host, port=config.mqtt_port,  # type: ignore[arg-type]
                          concurrent_topics=CONCURRENT_TOPICS, reuse_port=True)
        await mqtt.start()
        watches.append(asyncio.create_task(_dump_stats(mqtt, ws.data_dir / "run" / f"ingest-worker-{index}-{os.getpid()}.stats.json")))  # type: ignore[attr-defined]
    try:
        if config.http_port is not None:
            # background=False: webhook deliveries, the monitor and the schedules stay with `iotfin serve`
            server = uvicorn.Server(uvicorn.Config(create_app(ws, background=False), log_level="warning"))  # type: ignore[arg-type]
            settle_heap()
            await server.serve(sockets=[_listening_socket(config.host, config.http_port)])
        else:
            settle_heap()
            await _until_signalled()
    finally:
        for task in watches:
            task.cancel()
        if mqtt is not None:
            await mqtt.stop()
        await ws.device_runtime.aclose()  # type: ignore[attr-defined]


STATS_INTERVAL_S = 1.0


async def _dump_stats(mqtt: object, path: Path) -> None:
    """The worker's MQTT counters (connections, refusals, protocol errors, timeouts, publishes…) in
    `<data dir>/run/ingest-worker-<i>-<pid>.stats.json`, rewritten every second (temporary file + rename), so
    that bad traffic is counted across processes and a killed worker's counts outlive it."""
    tmp = path.with_suffix(".tmp")
    while True:
        try:
            tmp.write_bytes(orjson.dumps({"pid": os.getpid(), **asdict(mqtt.stats)}))  # type: ignore[attr-defined]
            os.replace(tmp, path)
        except OSError:
            log.exception("cannot write the worker's counters")
        await asyncio.sleep(STATS_INTERVAL_S)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _broker_worker(ws: object, index: int, config: IngestConfig) -> None:
    from iotfin.transports.broker import BrokerConsumer  # lazy: paho loads only in broker mode
    from iotfin.transports.mqtt_device import (  # lazy: the worker process imports what it runs
        DeviceApiHandler,
    )

    broker = config.broker
    assert broker is not None
    consumer = BrokerConsumer(DeviceApiHandler(ws), broker.host, broker.port,  # type: ignore[arg-type]
                              client_id=f"iotfin-ingest-{index}", username=broker.username,
                              password=broker.password, group=broker.group, session_expiry_s=broker.session_expiry_s)
    watches = await _watches(ws)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settle_heap()
    try:
        failed = await consumer.run(stop)
    finally:
        for task in watches:
            task.cancel()
        await ws.device_runtime.aclose()  # type: ignore[attr-defined]
    if failed:
        # A commit failed: nothing of the unacknowledged messages was stored. Exiting without their
        # PUBACKs makes the broker redeliver them to the restarted worker (same client id).
        raise SystemExit(3)


def _pid_file(run_dir: Path, index: int) -> Path:
    return run_dir / f"ingest-worker-{index}.pid"


def supervise(workers: int, config: IngestConfig, run_dir: Path, parent_pid: int | None = None,
              on_tick: object = None) -> None:
    """Run `workers` ingest processes until SIGTERM/SIGINT (or the parent's end); restart any that die.
    `on_tick`, if given, is called about every half second (the broker's revocation sync)."""
    if config.http_port is not None:
        _listening_socket(config.host, config.http_port).close()  # a port taken without SO_REUSEPORT fails here
    if config.mqtt_port is not None:
        _listening_socket(config.host, config.mqtt_port).close()
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def start(index: int) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=run_worker, args=(index, config), name=f"iotfin-ingest-{index}")
        proc.start()
        _pid_file(run_dir, index).write_text(f"{proc.pid}\n")
        return proc

    procs = [start(i) for i in range(workers)]
    try:
        while not stop.wait(0.5):
            if parent_pid is not None and os.getppid() != parent_pid:
                break  # `iotfin serve` is gone
            for i, proc in enumerate(procs):
                if not proc.is_alive():
                    log.warning("ingest worker %d (pid %s) exited with %s; starting another", i, proc.pid, proc.exitcode)
                    procs[i] = start(i)
            if callable(on_tick):
                try:
                    on_tick()
                except Exception:  # noqa: BLE001 - the sync retries on the next tick; the workers carry on
                    log.exception("ingest supervisor tick failed")
    finally:
        stop_processes(procs)
        for i in range(workers):
            _pid_file(run_dir, i).unlink(missing_ok=True)


class RevocationSync:
    """In broker mode the broker, not iotfin, authenticates devices: credentials revoked in iotfin
    (`iotfin devices revoke`, the API) are removed from the broker's password file and the broker
    reloaded, by the supervisor alone (one writer of that file), polled every tick."""

    def __init__(self, devices: object, accounts: object):
        self.devices = devices
        self.accounts = accounts
        self.since = datetime.now(UTC)

    def __call__(self) -> None:
        revoked, self.since = self.devices.apply_revocations_since(self.since)  # type: ignore[attr-defined]
        if revoked:
            self.accounts.revoke(*sorted(revoked))  # type: ignore[attr-defined]


class AnchorRepair:
    """A worker killed between a batch's durable append and its ledger leaf leaves that batch stored
    but unanchored; the supervisor anchors such batches (every `interval_s`, and at start), once,
    under the log's write lock (`LedgerService.anchor_stored_batches`)."""

    def __init__(self, ledger: object, telemetry_root: Path, interval_s: float = 10.0, min_age_s: float = 5.0):
        self.ledger = ledger
        self.telemetry_root = telemetry_root
        self.interval_s = interval_s
        self.min_age_s = min_age_s
        self._next = 0.0
        self.anchored: list[int] = []

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        done = self.ledger.anchor_stored_batches(self.telemetry_root, self.min_age_s)  # type: ignore[attr-defined]
        if done:
            log.warning("anchored %d telemetry batches whose writer died before anchoring them: %s", len(done), done)
            self.anchored += done


def ticks(*callbacks: object) -> object:
    """One supervisor tick running each callback; one failing does not stop the others."""
    def tick() -> None:
        for callback in callbacks:
            try:
                callback()  # type: ignore[operator]
            except Exception:  # noqa: BLE001 - retried on the next tick
                log.exception("ingest supervisor task %s failed", type(callback).__name__)
    return tick
