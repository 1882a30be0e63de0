"""`kill -9` of `iotfin serve` under load. Publishers at QoS 1 (and HTTP senders) record every reading
the server acknowledged; after SIGKILL and a restart every acknowledged reading is in the telemetry
store with its value, nothing is stored that was never sent, and the unacknowledged ones, re-sent as
a device would, end up stored exactly once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from iotfin.devices.service import IssuedDevice
from iotfin.telemetry.store import TelemetryStore
from tests.ingest_faults.conftest import FAR, T0, Serve
from tests.ingest_faults.test_bad_input import TELEMETRY
from tests.ingest_mqtt import rawclient as raw

KEYS = ("a", "b", "c")
WINDOW = 32  # QoS 1 messages in flight per connection


def message(i: int) -> bytes:
    """Message i: three points at ts T0 + i, values derived from i (so a stored value can be checked)."""
    return orjson.dumps({"ts": T0 + i, "values": {k: i + j / 10 for j, k in enumerate(KEYS)}})


@dataclass
class Sender:
    device: IssuedDevice
    sent: set[int] = field(default_factory=set)
    acked: set[int] = field(default_factory=set)
    error: str | None = None


def mqtt_publisher(serve: Serve, sender: Sender, stop: threading.Event, level: int, start: int = 0,
                   only: list[int] | None = None) -> None:
    """Pipelined QoS 1 publisher; records what was PUBACKed with success. Runs until `stop`, the
    connection dies, or (with `only`) those messages are all acknowledged."""
    todo = list(only) if only is not None else None
    try:
        with raw.RawClient(serve.mqtt_port, timeout=10) as client:
            client.handshake(client_id=f"load-{sender.device.id}", username=sender.device.token, level=level)
            inflight: dict[int, int] = {}
            n, pid = start, 0
            while not stop.is_set() or inflight:
                while len(inflight) < WINDOW and not stop.is_set() and (todo is None or todo):
                    i = todo.pop() if todo is not None else n
                    n += 1
                    pid = pid % 0xFFFF + 1
                    inflight[pid] = i
                    sender.sent.add(i)
                    client.send(raw.publish(TELEMETRY, message(i), qos=1, packet_id=pid, level=level))
                if not inflight:
                    return
                packet = client.read()
                if packet is None:
                    return
                assert packet[0] == 0x40, packet
                code = packet[1][2] if len(packet[1]) > 2 else 0
                i = inflight.pop(int.from_bytes(packet[1][:2], "big"))
                if code == 0:
                    sender.acked.add(i)
    except OSError:
        pass  # the server was killed: what was acknowledged is recorded
    except Exception as exc:  # noqa: BLE001 - reported by the test
        sender.error = repr(exc)


def http_sender(serve: Serve, sender: Sender, stop: threading.Event, batch: int = 50, start: int = 0,
                only: list[int] | None = None) -> None:
    url = f"{serve.http}/api/v1/{sender.device.token}/telemetry"
    todo = list(only) if only is not None else None
    n = start
    with httpx.Client(timeout=30) as client:
        while not stop.is_set() if todo is None else todo:
            if todo is not None:
                ids, todo = todo[:batch], todo[batch:]
            else:
                ids, n = list(range(n, n + batch)), n + batch
            sender.sent.update(ids)
            body = b"[" + b",".join(message(i) for i in ids) + b"]"
            try:
                response = client.post(url, content=body)
            except httpx.TransportError:
                return
            if response.status_code == 200:
                sender.acked.update(ids)
            elif response.status_code >= 500:
                continue
            else:
                sender.error = f"HTTP {response.status_code}: {response.text}"
                return


def stored(serve: Serve, device_id: int) -> dict[int, list[float]]:
    """Message index -> its stored values (one per key), read from the files on disk."""
    store = TelemetryStore(serve.ws.settings.resolved_telemetry_dir)
    out: dict[int, list[float]] = {}
    for key in KEYS:
        table = store.series(device_id, key, 0, FAR)
        for ts, value in zip(table["ts"].to_pylist(), table["value"].to_pylist(), strict=True):
            out.setdefault(ts - T0, []).append(value)
    return out


def raw_rows(serve: Serve) -> int:
    return sum(b.num_rows for b in TelemetryStore(serve.ws.settings.resolved_telemetry_dir).iter_batches())


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_reading(fresh_serve: Serve) -> None:
    serve = fresh_serve
    serve.start()
    mqtt = [Sender(serve.device()) for _ in range(4)]
    http = [Sender(serve.device()) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=mqtt_publisher, args=(serve, s, stop, 4 if k % 2 else 5)) for k, s in enumerate(mqtt)]
    threads += [threading.Thread(target=http_sender, args=(serve, s, stop)) for s in http]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while sum(len(s.acked) for s in mqtt + http) < 3000 or any(not s.acked for s in mqtt + http):
        assert time.monotonic() < deadline, "no load reached the server"
        time.sleep(0.05)
    serve.kill9()  # mid-stream: commits are in flight
    stop.set()
    for t in threads:
        t.join(30)
    assert all(s.error is None for s in mqtt + http), [s.error for s in mqtt + http]
    acked_total = sum(len(s.acked) for s in mqtt + http)
    unacked_total = sum(len(s.sent - s.acked) for s in mqtt + http)
    assert unacked_total > 0, "the kill came after the load had drained; nothing was in flight"

    serve.start()  # restart on the same data: leftovers of the interrupted commit are cleaned up
    for s in mqtt + http:
        got = stored(serve, s.device.id)
        missing = s.acked - got.keys()
        assert not missing, f"{len(missing)} acknowledged readings lost for device {s.device.id}"
        assert got.keys() <= s.sent, "stored readings that were never sent"
        for i, values in got.items():  # each stored message whole, with its own values
            assert sorted(values) == [i + j / 10 for j in range(len(KEYS))], (i, values)

    # the devices re-send what was never acknowledged; afterwards every reading is stored exactly once
    stop = threading.Event()
    threads = [threading.Thread(target=mqtt_publisher, args=(serve, s, stop, 5), kwargs={"only": sorted(s.sent - s.acked)})
               for s in mqtt]
    threads += [threading.Thread(target=http_sender, args=(serve, s, stop), kwargs={"only": sorted(s.sent - s.acked)})
                for s in http]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(s.error is None for s in mqtt + http)
    for s in mqtt + http:
        assert s.acked == s.sent
        assert stored(serve, s.device.id).keys() == s.sent
    serve.stop()
    points = sum(len(s.sent) for s in mqtt + http) * len(KEYS)
    assert raw_rows(serve) >= points  # (a repeat of a point stored before the kill is a second row, read once)
    print(f"kill -9: {acked_total} messages acknowledged before the kill, {unacked_total} in flight; all recovered")
