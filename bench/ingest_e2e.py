"""Benchmark: device telemetry end to end through `iotfin serve` (the real device-API handler, group
commit, validation and the durable Parquet store), with a Mosquitto broker relaying the same load
beside it in the same run.

    .venv/bin/python bench/ingest_e2e.py                      # everything, ~2-3 minutes
    .venv/bin/python bench/ingest_e2e.py --duration 5 --idle 0 --skip-bulk
    .venv/bin/python bench/ingest_e2e.py --skip-bulk --skip-mosquitto --idle 0 --ingest-workers 2 --rate 10000

Phases (each load generator is a separate process; the machine's 2 cores are shared by all of them):

1. **Single readings over MQTT**: `--procs` processes each hold `--conns` MQTT 3.1.1 connections (one
   device each, username = its access token) and keep `--window` QoS 1 PUBLISH in flight per
   connection, for `--duration` seconds (`--rate R`: at most R messages/s offered in all, each
   connection sending on its own schedule, for the latency at a given load). A message is ~100
   bytes of JSON with 3 data points and its own timestamp. PUBACK comes only after the durable
   commit. A marker device publishes one reading every 100 ms; its publish -> queryable latency is
   the time until the reading is in a published Parquet file of the store (what every query reads),
   found by reading each new file as it appears.
   Afterwards every acknowledged reading is counted in the store.
2. **Bulk**: the HTTP bulk endpoint (`POST /api/v1/{gateway token}/telemetry/bulk`, ~1 MB bodies,
   many devices) — in ThingsBoard's row form and in iotfin's columnar form (`--bulk-form`), one after
   the other in the same run — and the MQTT gateway API (`v1/gateway/telemetry`, ~1 MB messages at
   QoS 1): data points durably stored per second.
3. **Mosquitto baseline**: `mosquitto` on a free port, one paho-mqtt subscriber (QoS 1) that only
   parses each message's JSON, and the same publisher processes as phase 1. Relay rate = messages
   the subscriber parsed / time from the first publish to the last message parsed.
4. **Idle sessions**: a fresh `iotfin serve` gets `--idle` authenticated MQTT connections (one
   device's token, distinct client ids) that then stay silent; resident memory before and after,
   per connection. With `--idle-distinct`, again with as many distinct devices, each connecting to
   the process for the first time: that adds what a process keeps per device it has seen (the
   token cache entry, SQLite's page cache) and the connection storm's high-water mark.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
from mqtt_server import connect_packet, measure_idle, varint

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.core.time import now_ms

TOPIC = b"v1/devices/me/telemetry"
GATEWAY_TOPIC = b"v1/gateway/telemetry"
# An hour ago: inside retention, never in the future. A reading is (device, key, ts), so devices share
# timestamps and each device's messages count up from here.
BASE_TS = now_ms() - 3_600_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reading(i: int) -> bytes:
    """~100 bytes, 3 data points, its own timestamp (so every message is new data)."""
    return b'{"ts":%d,"values":{"power_kw":%d.25,"voltage_v":229.8,"energy_kwh":%d.125}}' % (BASE_TS + i, i % 977, i)


def publish_packet(topic: bytes, payload: bytes, packet_id: int) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + varint(len(body)) + body


class Serve:
    """`iotfin serve` on free ports over a fresh workspace."""

    def __init__(self, data_dir: Path, ingest_workers: int = 0):
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {
            "IOTFIN_DATA_DIR": str(data_dir)}
        self.http_port, self.mqtt_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ingest_workers = ingest_workers

    def start(self) -> None:
        extra = ["--ingest-workers", str(self.ingest_workers)] if self.ingest_workers else []
        self.proc = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(self.http_port),
                                      "--mqtt-port", str(self.mqtt_port), *extra], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("iotfin serve exited")
            try:
                httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1)
                socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=1).close()
                if self.ingest_workers and _listeners(self.mqtt_port) < self.ingest_workers:
                    raise OSError("not every ingest worker listens yet")
                return
            except (httpx.TransportError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("iotfin serve did not come up") from None
                time.sleep(0.2)

    def _status(self, field: str) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    def rss_bytes(self) -> int:
        return self._status("VmRSS")

    def pids(self) -> list[int]:
        """The server's process and, with ingest workers, its descendants (supervisor, workers)."""
        assert self.proc is not None
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    todo += [int(c) for c in (task / "children").read_text().split()]
                except FileNotFoundError:
                    continue
        return out

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes (all of them with ingest workers)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- load generators (child processes) ------------------------------------------------------------


def _listeners(port: int) -> int:
    """Listening sockets on `port` (each SO_REUSEPORT socket counts), from /proc/net/tcp."""
    return sum(1 for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
               if line.split()[3] == "0A" and int(line.split()[1].rsplit(":", 1)[1], 16) == port)


def mqtt_load(port: int, tokens: list[str | None], window: int, duration: float, offset: int, go: mp.Event,
              results: mp.Queue, topic: bytes = TOPIC, rate: float = 0.0) -> None:
    """Pipelined raw-socket QoS 1 publishers, one per token, `window` in flight each, for `duration` s.
    With `rate` (messages/s, all of this process's connections together), each connection sends its
    n-th message no earlier than n / (its share of the rate) after the start: a fixed offered load
    instead of as fast as the acknowledgements come back."""
    per_connection = rate / len(tokens) if rate else 0.0

    async def one(k: int, token: str | None, deadline_box: list[float]) -> tuple[int, list[float]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(connect_packet(f"load-{offset + k}", username=token))
        connack = await reader.readexactly(4)
        if connack[3] != 0:
            raise RuntimeError(f"CONNACK {connack!r}")
        while not deadline_box:
            await asyncio.sleep(0.01)
        deadline = deadline_box[0]
        started = deadline - duration
        sent = acked = 0
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        buffered = b""
        while True:
            now = time.perf_counter()
            # messages due by now (paced), or as many as the window allows
            due = int((now - started) * per_connection) + 1 if per_connection else sent + window
            if now < deadline and sent - acked < window and sent < due:
                burst = []
                while sent - acked < window and sent < due:
                    pid = sent % 0xFFFF + 1
                    if sent % 64 == 0:
                        sent_at[pid] = now
                    burst.append(publish_packet(topic, reading(sent), pid))
                    sent += 1
                writer.write(b"".join(burst))
            if acked == sent and (now >= deadline or not per_connection):
                break
            if acked == sent:  # paced, and nothing in flight: wait for the next message's time
                await asyncio.sleep(max(0.0, started + due / per_connection - time.perf_counter()))
                continue
            chunk = await reader.read(65536)
            if not chunk:
                raise RuntimeError("server closed the connection")
            buffered += chunk
            n = len(buffered) // 4
            now = time.perf_counter()
            for j in range(n):
                pid = int.from_bytes(buffered[4 * j + 2:4 * j + 4], "big")
                t0 = sent_at.pop(pid, None)
                if t0 is not None:
                    latencies.append(now - t0)
            buffered = buffered[4 * n:]
            acked += n
        writer.close()
        return acked, latencies

    async def main() -> tuple[int, float, float, list[float]]:
        box: list[float] = []
        tasks = [asyncio.create_task(one(k, t, box)) for k, t in enumerate(tokens)]
        await asyncio.sleep(0.5)  # connected
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        started = time.perf_counter()
        box.append(started + duration)
        done = await asyncio.gather(*tasks)
        return sum(d[0] for d in done), started, time.perf_counter(), [x for d in done for x in d[1]]

    results.put(asyncio.run(main()))


def paho_subscriber(port: int, expect_quiet_s: float, ready: mp.Event, results: mp.Queue) -> None:
    """Subscribes at QoS 1 and only parses each message's JSON; reports count and first/last times."""
    import paho.mqtt.client as mqtt

    state = {"count": 0, "first": 0.0, "last": 0.0}

    def on_message(client, userdata, msg):  # noqa: ANN001
        orjson.loads(msg.payload)
        now = time.perf_counter()
        if not state["count"]:
            state["first"] = now
        state["count"] += 1
        state["last"] = now

    def on_subscribe(client, userdata, mid, reason_codes, properties):  # noqa: ANN001
        ready.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="relay-sub", protocol=mqtt.MQTTv311)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port, keepalive=600)
    client.subscribe("v1/#", qos=1)
    client.loop_start()
    while not state["count"]:
        time.sleep(0.05)
    while time.perf_counter() - state["last"] < expect_quiet_s:
        time.sleep(0.1)
    client.loop_stop()
    results.put((state["count"], state["first"], state["last"]))


def http_bulk_load(port: int, token: str, bodies: list[tuple[bytes, int]], duration: float, go: mp.Event,
                   results: mp.Queue) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/{token}/telemetry/bulk"
    stored = requests = 0
    with httpx.Client(timeout=60) as client:
        go.wait()
        started = time.perf_counter()
        i = 0
        while time.perf_counter() - started < duration and i < len(bodies):
            body, points = bodies[i]
            i += 1
            response = client.post(url, content=body, headers={"content-type": "application/json"})
            if response.status_code != 200:
                raise RuntimeError(f"bulk: HTTP {response.status_code} {response.text[:300]}")
            stored += points
            requests += 1
        results.put((stored, requests, started, time.perf_counter()))


# --- phases ------------------------------------------------------------------------------------


def start_load(ctx: mp.context.BaseContext, port: int, tokens: list[str | None], procs: int, window: int,
               duration: float, rate: float = 0.0) -> tuple[mp.Event, mp.Queue, list[mp.Process]]:
    go, results = ctx.Event(), ctx.Queue()
    per = len(tokens) // procs
    workers = [ctx.Process(target=mqtt_load, args=(port, tokens[i * per:(i + 1) * per], window, duration, i * per, go,
                                                   results, TOPIC, rate / procs)) for i in range(procs)]
    for w in workers:
        w.start()
    return go, results, workers


def collect_load(results: mp.Queue, workers: list[mp.Process]) -> dict[str, float]:
    outcomes = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    acked = sum(o[0] for o in outcomes)
    elapsed = max(o[2] for o in outcomes) - min(o[1] for o in outcomes)
    lat = sorted(x for o in outcomes for x in o[3])
    return {"acked_messages": acked, "seconds": round(elapsed, 2), "msgs_per_second": round(acked / elapsed),
            "points_per_second": round(3 * acked / elapsed),
            "puback_p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "puback_p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None}


def markers(serve: Serve, telemetry_dir: Path, token: str, device_id: int, stop: threading.Event,
            out: list[float]) -> None:
    """One marker reading every 100 ms; time until it is in a published Parquet file."""
    seen: set[Path] = set()
    with socket.create_connection(("127.0.0.1", serve.mqtt_port)) as sock:
        sock.sendall(connect_packet("marker", username=token))
        sock.recv(4)
        i = 0
        while not stop.is_set():
            i += 1
            ts = BASE_TS + i
            payload = b'{"ts":%d,"values":{"marker":%d}}' % (ts, i)
            t0 = time.perf_counter()
            sock.sendall(publish_packet(TOPIC, payload, i % 0xFFFF + 1))
            found = False
            while not found and time.perf_counter() - t0 < 30:
                for path in sorted(set(telemetry_dir.glob("day=*/b*.parquet")) - seen):
                    seen.add(path)
                    table = pq.read_table(path, columns=["device_id", "ts"], filters=[("device_id", "=", device_id)])
                    if table.num_rows and pc.any(pc.equal(table["ts"], ts)).as_py():
                        found = True
                if not found:
                    time.sleep(0.002)
            sock.recv(4)  # its PUBACK
            if found:
                out.append(time.perf_counter() - t0)
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))


def count_stored(telemetry_dir: Path) -> int:
    import duckdb

    files = [str(p) for p in telemetry_dir.glob("day=*/b*.parquet")]
    if not files:
        return 0
    with duckdb.connect() as con:
        return con.execute("SELECT count(*) FROM (SELECT DISTINCT device_id, key, ts FROM read_parquet($f))",
                           {"f": files}).fetchone()[0]


def bulk_bodies(names: list[str], per_device: int, start: int, count: int) -> list[tuple[bytes, int]]:
    """`count` bodies: every device named, `per_device` readings each (3 points), distinct timestamps."""
    out = []
    for b in range(count):
        base = start + b * per_device
        body = orjson.dumps({name: [{"ts": BASE_TS + base + j,
                                     "values": {"power_kw": (j % 977) + 0.25, "voltage_v": 229.8,
                                                "energy_kwh": base + j + 0.125}}
                                    for j in range(per_device)] for name in names})
        out.append((body, len(names) * per_device * 3))
    return out


def bulk_columns(names: list[str], per_device: int, start: int, count: int) -> list[tuple[bytes, int]]:
    """The same readings as `bulk_bodies` in the columnar form (iotfin.ingest.payloads): per device
    one ts list and one list per key (~1.0 MB at 250 readings x 100 devices: 75,000 points against the row form's 30,000
    in ~0.9 MB)."""
    out = []
    for b in range(count):
        base = start + b * per_device
        # every device of a body has the same series: built once, serialised once per device
        series = {"ts": [BASE_TS + base + j for j in range(per_device)],
                  "values": {"power_kw": [(j % 977) + 0.25 for j in range(per_device)], "voltage_v": [229.8] * per_device,
                             "energy_kwh": [base + j + 0.125 for j in range(per_device)]}}
        body = orjson.dumps({name: series for name in names})
        out.append((body, len(names) * per_device * 3))
    return out


def start_profiler(serve: Serve, seconds: float, output: str | None) -> subprocess.Popen[bytes] | None:
    """py-spy (bench extra) sampling the server for `seconds`, collapsed stacks to `output`; None
    without an output."""
    if not output:
        return None
    assert serve.proc is not None
    return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(serve.proc.pid),
                             "--duration", str(int(seconds)), "--format", "raw", "--threads", "--output", output],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bulk_http_phase(ctx: mp.context.BaseContext, serve: Serve, token: str, bodies: list[tuple[bytes, int]],
                    args: argparse.Namespace, telemetry_dir: Path, profile: str | None) -> dict[str, object]:
    """Senders (`--bulk-procs` processes) post `bodies` to the gateway bulk endpoint for
    `--bulk-duration` seconds; every 200 means the body's points are durable."""
    before = count_stored(telemetry_dir)
    go, results = ctx.Event(), ctx.Queue()
    per = len(bodies) // args.bulk_procs
    workers = [ctx.Process(target=http_bulk_load, args=(serve.http_port, token, bodies[i * per:(i + 1) * per],
                                                         args.bulk_duration, go, results))
               for i in range(args.bulk_procs)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    cpu = serve.cpu_seconds()
    profiler = start_profiler(serve, args.bulk_duration, profile)
    go.set()
    got = [results.get(timeout=args.bulk_duration + 300) for _ in workers]  # a sender that failed puts nothing
    if profiler is not None:
        profiler.wait(60)
    for w in workers:
        w.join()
    points = sum(g[0] for g in got)
    elapsed = max(g[3] for g in got) - min(g[2] for g in got)
    return {"requests": sum(g[1] for g in got), "body_bytes": len(bodies[0][0]),
            "points_per_request": bodies[0][1], "seconds": round(elapsed, 2),
            "points_per_second": round(points / elapsed),
            "server_cpu_us_per_point": round((serve.cpu_seconds() - cpu) / points * 1e6, 2),
            "every_acknowledged_point_stored": count_stored(telemetry_dir) - before >= points}


def gateway_phase(serve: Serve, token: str, messages: list[tuple[bytes, int]], args: argparse.Namespace,
                  telemetry_dir: Path) -> dict[str, object]:
    """One gateway connection publishes `messages` on `v1/gateway/telemetry` at QoS 1 with
    `--gateway-window` in flight (PUBACK only after the durable commit), for `--bulk-duration` s."""
    before = count_stored(telemetry_dir)
    cpu = serve.cpu_seconds()
    acked = 0

    def puback(sock: socket.socket) -> None:
        ack = b""
        while len(ack) < 4:
            chunk = sock.recv(4 - len(ack))
            if not chunk:
                raise RuntimeError("gateway connection closed")
            ack += chunk
        if ack[:2] != b"\x40\x02":
            raise RuntimeError(f"gateway PUBACK {ack!r}")

    with socket.create_connection(("127.0.0.1", serve.mqtt_port)) as sock:
        sock.sendall(connect_packet("bulk-gw", username=token))
        sock.recv(4)
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < args.bulk_duration and sent < len(messages):
            sock.sendall(publish_packet(GATEWAY_TOPIC, messages[sent][0], sent % 0xFFFF + 1))  # new timestamps each
            sent += 1
            if sent - acked >= args.gateway_window:
                puback(sock)
                acked += 1
        while acked < sent:
            puback(sock)
            acked += 1
        elapsed = time.perf_counter() - started
    points = count_stored(telemetry_dir) - before
    return {"messages": acked, "message_bytes": len(messages[0][0]), "in_flight": args.gateway_window,
            "points_stored": points, "points_acknowledged": acked * messages[0][1], "seconds": round(elapsed, 2),
            "points_per_second": round(points / elapsed),
            "server_cpu_us_per_point": round((serve.cpu_seconds() - cpu) / max(points, 1) * 1e6, 2)}


def run_iotfin(args: argparse.Namespace, root: Path) -> dict[str, object]:
    ctx = mp.get_context("fork")
    data_dir = root / "iotfin"
    ws = Workspace(Settings(data_dir=data_dir))
    ws.initialise()
    devices = [ws.devices.create() for _ in range(args.procs * args.conns)]
    marker = ws.devices.create()
    gateway = ws.devices.create(name="bench-gateway")
    names = [f"bulk-{i}" for i in range(args.bulk_devices)]
    for name in names:
        ws.devices.create(name=name)
    telemetry_dir = ws.settings.resolved_telemetry_dir
    ws.close()
    serve = Serve(data_dir, args.ingest_workers)
    serve.start()
    out: dict[str, object] = {"ingest_workers": args.ingest_workers}
    try:
        # phase 1: single readings over MQTT
        go, results, workers = start_load(ctx, serve.mqtt_port, [d.token for d in devices], args.procs, args.window,
                                          args.duration, args.rate)
        time.sleep(1.5)
        lat: list[float] = []
        stop = threading.Event()
        marker_thread = threading.Thread(target=markers, args=(serve, telemetry_dir, marker.token, marker.id, stop, lat))
        cpu = serve.cpu_seconds()
        profiler = start_profiler(serve, args.duration, args.profile)
        go.set()
        marker_thread.start()
        single = collect_load(results, workers)
        stop.set()
        marker_thread.join()
        if profiler is not None:
            profiler.wait(60)
        single["server_cpu_us_per_msg"] = round((serve.cpu_seconds() - cpu) / single["acked_messages"] * 1e6, 1)
        lat.sort()
        single["queryable_markers"] = len(lat)
        single["queryable_p50_ms"] = round(lat[len(lat) // 2] * 1000, 1) if lat else None
        single["queryable_p99_ms"] = round(lat[min(int(len(lat) * 0.99), len(lat) - 1)] * 1000, 1) if lat else None
        stored = count_stored(telemetry_dir) - len(lat)
        single["stored_points"] = stored
        single["every_acknowledged_point_stored"] = stored >= 3 * single["acked_messages"]
        out["single_readings_mqtt"] = single

        if not args.skip_bulk:
            # phase 2a: HTTP bulk endpoint, ThingsBoard's row form and/or iotfin's columnar form
            if args.bulk_form in ("rows", "both"):
                out["bulk_http"] = bulk_http_phase(ctx, serve, gateway.token,
                                                   bulk_bodies(names, args.bulk_per_device, 0, args.bulk_bodies),
                                                   args, telemetry_dir, args.profile and args.profile + ".bulk")
            if args.bulk_form in ("columns", "both"):
                out["bulk_http_columns"] = bulk_http_phase(
                    ctx, serve, gateway.token, bulk_columns(names, args.bulk_columns_per_device, 2_000_000,
                                                            args.bulk_bodies),
                    args, telemetry_dir, args.profile and args.profile + ".columns")
            # phase 2b: MQTT gateway API, ~0.5–1 MB messages at QoS 1, in the row and/or columnar form
            per_msg = max(1, args.bulk_per_device // 2)
            if args.bulk_form in ("rows", "both"):
                out["bulk_mqtt_gateway"] = gateway_phase(
                    serve, gateway.token, bulk_bodies(names, per_msg, 1_000_000, args.gateway_messages), args,
                    telemetry_dir)
            if args.bulk_form in ("columns", "both"):
                out["bulk_mqtt_gateway_columns"] = gateway_phase(
                    serve, gateway.token, bulk_columns(names, args.bulk_columns_per_device, 3_000_000,
                                                       args.gateway_messages), args, telemetry_dir)
    finally:
        serve.stop()

    if args.idle:
        out["idle_sessions"] = idle_phase(data_dir, marker.token, args.idle)
        if args.idle_distinct:
            ws = Workspace(Settings(data_dir=data_dir))
            tokens = [ws.devices.create().token for _ in range(args.idle)]
            ws.close()
            out["idle_sessions_distinct_devices"] = idle_phase(data_dir, tokens, args.idle)
    return out


def idle_phase(data_dir: Path, username: str | list[str], count: int) -> dict[str, object]:
    """A fresh `iotfin serve` gets `count` authenticated MQTT sessions that then stay silent:
    resident memory before and after, per session. `username`: one device's access token for all
    of them, or one token per session (each device's first connection to this process)."""
    serve = Serve(data_dir)
    serve.start()
    try:
        idle = measure_idle(serve.mqtt_port, serve.rss_bytes, count, username, settle_before_s=1.0,
                            settle_after_s=2.0, timeout_s=600)
        return {"devices": len(username) if isinstance(username, list) else 1, **idle}
    finally:
        serve.stop()


def run_mosquitto(args: argparse.Namespace, root: Path) -> dict[str, object]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = root / "mosquitto.conf"
    # unlimited queue for the subscriber, so nothing is dropped while it catches up
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                    f"max_inflight_messages 1000\npersistence false\n")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = mp.get_context("fork")
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        ready, sub_results = ctx.Event(), ctx.Queue()
        sub = ctx.Process(target=paho_subscriber, args=(port, 3.0, ready, sub_results))
        sub.start()
        ready.wait(10)
        go, results, workers = start_load(ctx, port, [None] * (args.procs * args.conns), args.procs, args.window,
                                          args.duration)
        time.sleep(1.5)
        go.set()
        publishers = collect_load(results, workers)
        first_publish = time.perf_counter() - publishers["seconds"]  # (approximately: the go signal)
        count, _first, last = sub_results.get(timeout=600)
        sub.join()
        relay_seconds = last - first_publish
        return {"publishers": publishers, "subscriber_parsed": count, "relay_seconds": round(relay_seconds, 2),
                "relay_msgs_per_second": round(count / relay_seconds)}
    finally:
        broker.terminate()
        broker.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of single-reading load")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--conns", type=int, default=200, help="MQTT connections (devices) per process")
    parser.add_argument("--window", type=int, default=8, help="QoS 1 messages in flight per connection")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered MQTT messages/s in phase 1, all connections together (0: as fast as acknowledged)")
    parser.add_argument("--ingest-workers", type=int, default=0, help="`iotfin serve --ingest-workers N` (0: one process)")
    parser.add_argument("--skip-bulk", action="store_true")
    parser.add_argument("--bulk-duration", type=float, default=10.0)
    parser.add_argument("--bulk-devices", type=int, default=100)
    parser.add_argument("--bulk-per-device", type=int, default=100, help="readings per device per HTTP body")
    parser.add_argument("--bulk-bodies", type=int, default=200)
    parser.add_argument("--bulk-procs", type=int, default=2)
    parser.add_argument("--gateway-window", type=int, default=1, help="gateway messages in flight (QoS 1)")
    parser.add_argument("--bulk-form", choices=("rows", "columns", "both"), default="both",
                        help="HTTP bulk bodies in ThingsBoard's row form, iotfin's columnar form, or each in turn")
    parser.add_argument("--bulk-columns-per-device", type=int, default=250,
                        help="readings per device per columnar body (3 points each; ~1.0 MB bodies at 100 devices, under the 1 MiB limit)")
    parser.add_argument("--gateway-messages", type=int, default=100, help="prebuilt ~0.5 MB gateway messages")
    parser.add_argument("--skip-mosquitto", action="store_true")
    parser.add_argument("--profile", help="write py-spy's collapsed stacks of the server in phase 1 here "
                        "(and of the HTTP bulk phase to <file>.bulk)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle MQTT sessions (0: skip)")
    parser.add_argument("--idle-distinct", action="store_true",
                        help="also measure --idle sessions of as many distinct devices, each on its first connection")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    root = Path(tempfile.mkdtemp(prefix="iotfin-e2e-bench-"))
    try:
        result: dict[str, object] = {
            "benchmark": "ingest_e2e",
            "workload": {"duration_s": args.duration, "load_processes": args.procs,
                         "connections": args.procs * args.conns, "window": args.window, "qos": 1,
                         "offered_msgs_per_second": args.rate or "unpaced",
                         "protocol": "MQTT 3.1.1", "payload_bytes": len(reading(123456)), "points_per_message": 3,
                         "idle_sessions": args.idle},
        }
        result["iotfin"] = run_iotfin(args, root)
        if not args.skip_mosquitto:
            result["mosquitto_relay_to_paho"] = mosq = run_mosquitto(args, root)
            ours = result["iotfin"]["single_readings_mqtt"]["msgs_per_second"]  # type: ignore[index]
            result["ratio_iotfin_stored_vs_mosquitto_relayed"] = round(ours / mosq["relay_msgs_per_second"], 3)
        result["machine"] = (f"{platform.machine()} {os.cpu_count()} cores {platform.python_implementation()} "
                             f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end")
        print(json.dumps(result))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
