"""The demo's telemetry over the wire: the simulator's devices talk to the platform's real endpoints.

`iotfin demo` starts the MQTT device endpoint and the HTTP API in-process on free loopback ports,
gives every simulated device an access token (and a name, which the gateway APIs address devices
by), and sends:

* the **last day** of every device over **MQTT** at QoS 1 (MQTT 5, paho-mqtt clients, one
  connection per device, several at a time) — the livestock tags, which report through a satellite
  terminal, through the **gateway API** (`v1/gateway/telemetry`) of their enterprise's gateway;
* the **days before** (`http_days`) through the **HTTP bulk endpoint**, one enterprise's gateway
  and one day per request (a commit touching few day partitions costs fewer fsyncs), up to ~0.5 MB
  per body, a few requests at a time — each device's day in iotfin's columnar form where it has every
  metric at every timestamp, else in ThingsBoard's row form (the gateway messages too);
* and imports the older history in batch through the same ingest service (all of it over HTTP
  would take the demo well past its two-minute budget on two cores).

Per transport it reports data points sent, acknowledged (PUBACK 0x00 / HTTP 200, or the `accepted`
count of a 400 problem), rejected, and stored — counted back from the telemetry store afterwards by
the batch sequence numbers each phase's commits got (the phases run one after the other).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import insert, select, update

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.demo.loader import _metrics_by_type, wide_to_readings
from iotfin.devices.credentials import new_token, token_hash
from iotfin.devices.tables import Device, DeviceCredential
from iotfin.ingest.service import IngestResult
from iotfin.transports.mqtt.server import MqttServer
from iotfin.transports.mqtt_device import CONCURRENT_TOPICS, DeviceApiHandler

Progress = Callable[[str, int, int], None]

GATEWAY_TYPES = ("livestock_tag",)  # behind a satellite terminal: sent through their enterprise's gateway
READINGS_PER_MESSAGE = 500          # MQTT: ThingsBoard's array form, ~40 KB
BODY_BYTES = 512 * 1024             # HTTP bulk bodies (the endpoint takes up to 1 MiB)
MQTT_WORKERS = 24                   # devices connected at a time
HTTP_WORKERS = 6                    # bulk requests in flight (they share group commits)


@dataclass
class TransportTally:
    """Data points per transport. `stored` is counted back from the telemetry store."""

    messages: int = 0
    sent: int = 0
    acknowledged: int = 0
    rejected: int = 0
    stored: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Endpoints:
    """The MQTT device endpoint and the HTTP API (uvicorn) on one event loop in a background thread."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-endpoints", daemon=True)
        self.http_port = _free_port()
        self.mqtt_port = 0

    def _call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Endpoints:
        import uvicorn  # lazy: uvicorn loads only when this runs


        self.thread.start()
        self.handler = DeviceApiHandler(self.ws)
        self.mqtt = MqttServer(self.handler, port=0, concurrent_topics=CONCURRENT_TOPICS)
        self._call(self.mqtt.start())
        self.mqtt_port = self.mqtt.port
        self.app = create_app(self.ws)
        self.http = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.http_port,
                                                  log_level="warning", lifespan="off"))
        self.http_task = asyncio.run_coroutine_threadsafe(self.http.serve(), self.loop)
        deadline = time.monotonic() + 30
        while not self.http.started:
            if self.http_task.done() or time.monotonic() > deadline:
                self.http_task.result(0)  # raises what went wrong
                raise RuntimeError("HTTP endpoint did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.should_exit = True
        try:
            self.http_task.result(30)
        finally:
            self._call(self.mqtt.stop())
            self._call(self.handler.committer.close())
            if getattr(self.app.state, "http_committer", None) is not None:
                self._call(self.app.state.http_committer.close())
            if "device_runtime" in self.ws.__dict__:  # buffered device events and state reach the database
                self._call(self.ws.device_runtime.aclose())
            self.ws.devices.revocation_listeners.remove(self.handler._on_revoked)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def prepare_devices(ws: Workspace, devices: pa.Table) -> tuple[dict[int, str], dict[int, int], dict[int, str]]:
    """Access tokens for every device, names (= serial) for the gateway APIs, and a gateway per
    enterprise (its first device that is not behind one). Returns (tokens, gateway by enterprise,
    name by device)."""
    ids = devices["device_id"].to_pylist()
    tokens = {d: new_token() for d in ids}
    now = datetime.now(UTC)
    with ws.engine.begin() as conn:
        conn.execute(update(Device).where(Device.name.is_(None)).values(name=Device.serial))
        conn.execute(insert(DeviceCredential), [
            {"device_id": d, "kind": "access_token", "token_sha256": token_hash(t), "status": "active",
             "created_at": now} for d, t in tokens.items()])
        names = {int(i): n for i, n in conn.execute(select(Device.id, Device.name).where(Device.id.in_(ids)))}
    gateways: dict[int, int] = {}
    rows = sorted(zip([t in GATEWAY_TYPES for t in devices["device_type"].to_pylist()], ids,
                      devices["enterprise_id"].to_pylist(), strict=True))
    for _behind, d, enterprise in rows:  # devices not behind a gateway first, lowest id first
        gateways.setdefault(enterprise, d)
    return tokens, gateways, names


def _entries(wide: pa.Table, metrics: list[str]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(device id, ThingsBoard telemetry entries `{"ts": .., "values": {..}}`) from a wide table."""
    wide = wide.sort_by([("device_id", "ascending"), ("ts", "ascending")])
    columns = [m for m in metrics if m in wide.column_names]
    ids = wide["device_id"].to_pylist()
    ts = wide["ts"].to_pylist()
    values = [wide[m].to_pylist() for m in columns]
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            yield ids[start], [{"ts": ts[j], "values": {m: v[j] for m, v in zip(columns, values, strict=True)
                                                        if v[j] is not None}} for j in range(start, i)]
            start = i


def _points(entries: list[dict[str, Any]]) -> int:
    return sum(len(e["values"]) for e in entries)


def _mqtt_device(port: int, token: str, topic: str, payloads: list[tuple[bytes, int]], tally: TransportTally,
                 lock: threading.Lock) -> None:
    """One device (or gateway) connection: every payload at QoS 1, waiting for each PUBACK's reason code."""
    import paho.mqtt.client as mqtt  # lazy: paho-mqtt loads only when this runs

    results: dict[int, int] = {}
    connected = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-{token[:8]}", protocol=mqtt.MQTTv5)
    client.username_pw_set(token)
    client.on_connect = lambda c, u, flags, rc, props: connected.set() if not rc.is_failure else None
    client.on_publish = lambda c, u, mid, rc, props: results.__setitem__(mid, rc.value)
    client.max_inflight_messages_set(len(payloads) + 1)
    client.connect("127.0.0.1", port, keepalive=60)
    deadline = time.monotonic() + 60
    while not connected.is_set():
        client.loop(0.05)
        if time.monotonic() > deadline:
            raise RuntimeError("MQTT connection was not accepted")
    mids = {client.publish(topic, body, qos=1).mid: points for body, points in payloads}
    while len(results) < len(mids):
        client.loop(0.05)
        if time.monotonic() > deadline:
            raise RuntimeError("PUBACKs did not arrive")
    client.disconnect()
    with lock:
        for mid, points in mids.items():
            tally.messages += 1
            tally.sent += points
            if results[mid] == 0:
                tally.acknowledged += points
            else:
                tally.rejected += points


def _http_bulk(port: int, token: str, body: bytes, points: int, tally: TransportTally, lock: threading.Lock,
               client: httpx.Client) -> None:
    response = client.post(f"http://127.0.0.1:{port}/api/v1/{token}/telemetry/bulk", content=body,
                           headers={"content-type": "application/json"})
    with lock:
        tally.messages += 1
        tally.sent += points
        if response.status_code == 200:
            tally.acknowledged += points
        elif response.status_code == 400 and "accepted" in response.json():
            problem = response.json()
            tally.acknowledged += problem["accepted"] + problem.get("duplicates", 0)
            tally.rejected += sum(problem.get("rejected_by_reason", {}).values())
        else:
            tally.rejected += points


def _columnar(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entries in iotfin's columnar form (`{"ts": [...], "values": {key: [...]}}`) when every entry
    has the same keys — a day of one device, usually; None when a value is missing somewhere (the
    columnar form has one value per ts per key)."""
    keys = entries[0]["values"].keys()
    if any(e["values"].keys() != keys for e in entries):
        return None
    return {"ts": [e["ts"] for e in entries], "values": {k: [e["values"][k] for e in entries] for k in keys}}


def _bodies(per_device: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[bytes, int]]:
    """`{"<name>": telemetry, ...}` bodies of about BODY_BYTES, splitting long series; a device's
    chunk in the columnar form where it fits (issue 22: about a third of the bytes and of the server's
    work per point), else ThingsBoard's list of entries."""
    parts: list[bytes] = []
    size = points = 0
    for name, entries in per_device.items():
        for start in range(0, len(entries), 2000):
            chunk = entries[start:start + 2000]
            part = orjson.dumps(name) + b":" + orjson.dumps(_columnar(chunk) or chunk)
            if parts and size + len(part) > BODY_BYTES:
                yield b"{" + b",".join(parts) + b"}", points
                parts, size, points = [], 0, 0
            parts.append(part)
            size += len(part)
            points += _points(chunk)
    if parts:
        yield b"{" + b",".join(parts) + b"}", points


def _last_seq(ws: Workspace) -> int:
    """The newest batch sequence number in the telemetry store (files are named b<seq>.parquet)."""
    return max((int(f.stem[1:]) for f in ws.telemetry.files()), default=0)


def _stored_by_phase(ws: Workspace, seq_before_wire: int, seq_before_mqtt: int,
                     gateway_devices: list[int]) -> dict[str, int]:
    """Points first stored by the HTTP phase's commits and by the MQTT phase's (device or gateway API)."""
    files = [str(f) for f in ws.telemetry.files() if int(f.stem[1:]) > seq_before_wire]
    if not files:
        return {}
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT CASE WHEN seq <= $mqtt THEN 'http_bulk' WHEN list_contains($gw, device_id) THEN 'mqtt_gateway' "
            "ELSE 'mqtt' END, count(*) FROM (SELECT device_id, key, ts, min(seq) AS seq FROM read_parquet($files) "
            "GROUP BY ALL) GROUP BY 1",
            {"mqtt": seq_before_mqtt, "gw": gateway_devices, "files": files}).fetchall()
    return {name: int(n) for name, n in rows}


def stream_telemetry(ws: Workspace, ds: Any, progress: Progress | None = None, http_days: int = 2) -> dict[str, Any]:
    """Import the older history, then send the last `http_days` + 1 days over the wire (see module doc).
    Returns per-transport tallies, stage timings and the overall ingest numbers."""

    timings: dict[str, float] = {}
    metrics = _metrics_by_type(ds)
    days = sorted({d for t in metrics for d in ds.telemetry_days(t)})
    last: date = days[-1]
    wire_days = days[-(http_days + 1):]
    tallies = {name: TransportTally() for name in ("batch_import", "http_bulk", "mqtt", "mqtt_gateway")}

    started = time.perf_counter()
    batch = IngestResult()
    pending: list[pa.Table] = []
    pending_rows = done = 0
    old = [(t, d) for d in days if d not in wire_days for t in metrics if d in ds.telemetry_days(t)]
    for device_type, day in old:
        readings = wide_to_readings(ds.telemetry(device_type, day), metrics[device_type])
        pending.append(readings)
        pending_rows += readings.num_rows
        tallies["batch_import"].sent += readings.num_rows
        if pending_rows >= 2_000_000:
            batch += ws.ingest.ingest(pa.concat_tables(pending), transport="batch")
            pending, pending_rows = [], 0
        done += 1
        if progress:
            progress("import history", done, len(old))
    if pending:
        batch += ws.ingest.ingest(pa.concat_tables(pending), transport="batch")
    tallies["batch_import"].acknowledged = batch.accepted + batch.duplicates
    tallies["batch_import"].rejected = batch.rejected
    tallies["batch_import"].stored = batch.accepted
    timings["import_history"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    devices = ds.table("devices")
    tokens, gateways, names = prepare_devices(ws, devices)
    enterprise_of = dict(zip(devices["device_id"].to_pylist(), devices["enterprise_id"].to_pylist(), strict=True))
    behind_gateway = set(devices.filter(pc.is_in(devices["device_type"], pa.array(GATEWAY_TYPES)))["device_id"].to_pylist())
    timings["credentials"] = round(time.perf_counter() - started, 3)

    lock = threading.Lock()
    with Endpoints(ws) as endpoints:
        # the days before the last: HTTP bulk, one enterprise's gateway per request
        started = time.perf_counter()
        requests = []
        for day in wire_days[:-1]:
            by_enterprise: dict[int, dict[str, list[dict[str, Any]]]] = {}
            for device_type in metrics:
                if day not in ds.telemetry_days(device_type):
                    continue
                for device_id, entries in _entries(ds.telemetry(device_type, day), metrics[device_type]):
                    by_enterprise.setdefault(enterprise_of[device_id], {})[names[device_id]] = entries
            requests += [(tokens[gateways[e]], body, points) for e, per_device in by_enterprise.items()
                         for body, points in _bodies(per_device)]
        seq_before_wire = _last_seq(ws)
        with httpx.Client(timeout=120) as client, ThreadPoolExecutor(HTTP_WORKERS) as pool:
            for i, _ in enumerate(pool.map(lambda r: _http_bulk(endpoints.http_port, r[0], r[1], r[2],
                                                                 tallies["http_bulk"], lock, client), requests), 1):
                if progress:
                    progress("stream over HTTP bulk", i, len(requests))
        timings["http_bulk"] = round(time.perf_counter() - started, 3)
        seq_before_mqtt = _last_seq(ws)

        # the last day: MQTT, each device on its own connection; tags through their gateway
        started = time.perf_counter()
        jobs: list[tuple[str, str, list[tuple[bytes, int]], TransportTally]] = []
        gateway_messages: dict[int, dict[str, list[dict[str, Any]]]] = {}
        for device_type in metrics:
            if last not in ds.telemetry_days(device_type):
                continue
            for device_id, entries in _entries(ds.telemetry(device_type, last), metrics[device_type]):
                if device_id in behind_gateway:
                    gateway_messages.setdefault(enterprise_of[device_id], {})[names[device_id]] = entries
                    continue
                payloads = [(orjson.dumps(entries[i:i + READINGS_PER_MESSAGE]), _points(entries[i:i + READINGS_PER_MESSAGE]))
                            for i in range(0, len(entries), READINGS_PER_MESSAGE)]
                jobs.append((tokens[device_id], "v1/devices/me/telemetry", payloads, tallies["mqtt"]))
        for enterprise, per_device in gateway_messages.items():
            payloads = list(_bodies(per_device))
            jobs.append((tokens[gateways[enterprise]], "v1/gateway/telemetry", payloads, tallies["mqtt_gateway"]))
        with ThreadPoolExecutor(MQTT_WORKERS) as pool:
            for i, _ in enumerate(pool.map(lambda j: _mqtt_device(endpoints.mqtt_port, j[0], j[1], j[2], j[3], lock),
                                           jobs), 1):
                if progress:
                    progress("stream over MQTT", i, len(jobs))
        timings["mqtt"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    stored = _stored_by_phase(ws, seq_before_wire, seq_before_mqtt, sorted(behind_gateway))
    for name, n in stored.items():
        tallies[name].stored = n
    timings["count_stored"] = round(time.perf_counter() - started, 3)

    wire = [tallies[t] for t in ("http_bulk", "mqtt", "mqtt_gateway")]
    ingest = {"offered": sum(t.sent for t in tallies.values()),
              "accepted": batch.accepted + sum(t.acknowledged for t in wire),
              "duplicates": batch.duplicates,
              "rejected": batch.rejected + sum(t.rejected for t in wire),
              "rejected_by_reason": dict(batch.rejected_by_reason)}
    return {"ingest": ingest, "transports": {k: asdict(v) for k, v in tallies.items()},
            "wire_days": [d.isoformat() for d in wire_days], "timings_s": timings}
