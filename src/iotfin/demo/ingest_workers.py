"""Demo stage: device ingest from several processes (`iotfin serve-ingest --workers 2`, what
`iotfin serve --ingest-workers 2` starts; docs/ingest-scale.md). A few devices publish QoS 1 telemetry
over MQTT to the shared port; the kernel spreads their connections over the worker processes, which
commit into the demo's one telemetry store and ledger; every acknowledged reading is read back. The
stage's devices (onboarded to the demo's first enterprise) and their points are in the summary's
totals: `ingest_workers.devices` and `ingest_workers.points_stored`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.core.time import now_ms
from iotfin.identity.tables import Enterprise

KEYS = ("a", "b")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listeners(port: int) -> int:
    """Listening sockets on `port` (each worker's SO_REUSEPORT socket counts), from /proc/net/tcp."""
    return sum(1 for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
               if line.split()[3] == "0A" and int(line.split()[1].rsplit(":", 1)[1], 16) == port)


def _publish(port: int, token: str, t0: int, messages: int, acked: list[int]) -> None:
    import paho.mqtt.client as mqtt  # lazy: paho-mqtt loads only when this stage runs
    from paho.mqtt.enums import CallbackAPIVersion  # lazy: as above

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(token)
    client.on_publish = lambda c, u, mid, reason, props: acked.append(0 if reason.is_failure else 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for i in range(messages):
        client.publish("v1/devices/me/telemetry", orjson.dumps({"ts": t0 + i, "values": {k: i + j for j, k in enumerate(KEYS)}}),
                       qos=1)
    deadline = time.monotonic() + 60
    while len(acked) < messages and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


def _start_workers(workers: int, env: dict[str, str], attempts: int = 5) -> tuple[subprocess.Popen[str], int]:
    """Start `serve-ingest` on a free port and wait until every worker listens. A port found free can
    be taken before the workers bind it (another process's outgoing connection gets the same
    ephemeral port; seen in CI with two demos side by side): then again on another port."""
    for attempt in range(attempts):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "iotfin", "serve-ingest", "--workers", str(workers), "--mqtt-port",
                                 str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while _listeners(port) < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                error = proc.stderr.read() if proc.stderr else ""
                if "Address already in use" in error and attempt + 1 < attempts:
                    break
                raise RuntimeError(f"ingest workers did not start: {error}")
            time.sleep(0.2)
        else:
            return proc, port
    raise AssertionError("unreachable: the last attempt raises")


def ingest_workers_demo(ws: Workspace, workers: int = 2, devices: int = 4, messages: int = 50) -> dict[str, Any]:
    with ws.engine.connect() as conn:  # the demo's first enterprise: no enterprise is added for the stage
        owner = conn.execute(select(func.min(Enterprise.id))).scalar()
    issued = [ws.devices.create(enterprise_id=owner, name=f"ingest-worker-demo-{i}") for i in range(devices)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(ws.data_dir)}
    if ws.settings.database_url:
        env["IOTFIN_DATABASE_URL"] = ws.settings.database_url
    started = time.perf_counter()
    proc, port = _start_workers(workers, env)
    try:
        up_s = time.perf_counter() - started
        t0 = now_ms() - 3_600_000
        acks: list[list[int]] = [[] for _ in issued]
        threads = [threading.Thread(target=_publish, args=(port, d.token, t0, messages, a)) for d, a in zip(issued, acks, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        pids = sorted(int(p.read_text()) for p in (ws.data_dir / "run").glob("ingest-worker-*.pid"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    stored = sum(ws.telemetry.series(d.id, k, t0, t0 + messages)["ts"].length() for d in issued for k in KEYS)
    acknowledged = sum(sum(a) for a in acks)
    return {"workers": workers, "worker_pids": pids, "started_in_s": round(up_s, 1), "devices": devices,
            "messages_acknowledged": acknowledged, "points_stored": stored,
            "every_acknowledged_point_stored": stored == acknowledged * len(KEYS)}
