"""Bad traffic against `iotfin serve --ingest-workers 2`: garbage frames, a packet over the size limit,
malformed payloads and slow clients holding connections open. No worker crashes (the same pids
serve throughout), good devices are served meanwhile, and every refusal is counted in the workers'
counters (`run/ingest-worker-<i>-<pid>.stats.json`) and the quarantine."""

from __future__ import annotations

import random
import socket
import time

import httpx
import orjson
import pytest

from tests.ingest_faults.conftest import T0
from tests.ingest_faults.test_bad_input import TELEMETRY, publish_ok
from tests.ingest_mqtt import rawclient as raw
from tests.ingest_scale.conftest import WorkerServe, _alive


def counters(serve: WorkerServe) -> dict[str, int]:
    total: dict[str, int] = {}
    for f in (serve.data_dir / "run").glob("ingest-worker-*.stats.json"):
        for k, v in orjson.loads(f.read_bytes()).items():
            if k != "pid":
                total[k] = total.get(k, 0) + v
    return total


def wait_counted(serve: WorkerServe, key: str, at_least: int, timeout_s: float = 20) -> int:
    deadline = time.monotonic() + timeout_s
    while (n := counters(serve).get(key, 0)) < at_least and time.monotonic() < deadline:
        time.sleep(0.3)
    return n


@pytest.mark.slow
def test_bad_traffic_crashes_no_worker_and_is_counted(worker_serve: WorkerServe) -> None:
    serve = worker_serve
    serve.start()
    pids = serve.worker_pids()
    device = serve.device()
    assert publish_ok(serve, device.token, orjson.dumps({"ts": T0, "values": {"a": 1}})) == 0
    before = counters(serve)

    # slow clients: connected, never a CONNECT (held until connect_timeout_s, 10 s), and one that
    # sends half a CONNECT and stops
    slow = [socket.create_connection(("127.0.0.1", serve.mqtt_port)) for _ in range(20)]
    half = socket.create_connection(("127.0.0.1", serve.mqtt_port))
    half.sendall(raw.connect(client_id="half", username=device.token, level=5)[:7])

    # garbage frames: random bytes instead of a CONNECT, and a reserved packet type after one. Seeded,
    # and never starting with 0x10: that byte (1 in 256 random frames) is a CONNECT's first byte, whose
    # length may exceed the 64 bytes sent; the server then rightly waits for the rest and the client's
    # close is no protocol error (CI once counted 41 of 42)
    garbage = 0
    for n in range(40):
        frame = bytearray(random.Random(n).randbytes(64))
        if frame[0] >> 4 == 1:
            frame[0] ^= 0x20
        with socket.create_connection(("127.0.0.1", serve.mqtt_port)) as s:
            s.sendall(bytes(frame) if n % 2 else b"\xf0\x00" * 8)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
            garbage += 1
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="bad-after", username=device.token, level=5)
        client.send(b"\x00\x00")  # packet type 0 is reserved
        packets = iter(client.read, None)
        assert all(p[0] == 0xE0 for p in packets)  # DISCONNECT (malformed packet), then closed
        garbage += 1

    # a packet over the 1 MiB limit is refused from its fixed header (MQTT 5: DISCONNECT 0x95)
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="big", username=device.token, level=5)
        client.send(raw.publish(TELEMETRY, b"x" * (1 << 20), qos=1, packet_id=1, level=5)[:200])
        packet = client.read()
        assert packet is None or packet[0] == 0xE0
        garbage += 1
    # malformed payloads are quarantined and answered 0x99; the connection lives on
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="junk", username=device.token, level=5)
        for pid in range(1, 11):
            client.send(raw.publish(TELEMETRY, b"{not json" * pid, qos=1, packet_id=pid, level=5))
            body = client.expect(0x40)
            assert body[2] == 0x99
    # over HTTP: an oversized body and garbage JSON, to any of the processes sharing the port
    with httpx.Client(timeout=30) as http:
        for _ in range(6):
            assert http.post(f"{serve.http}/api/v1/{device.token}/telemetry", content=b"[" * 4096).status_code == 400
        big = http.post(f"{serve.http}/api/v1/{device.token}/telemetry", content=b"1" * (17 << 20))
        assert big.status_code == 413

    # good devices are served meanwhile
    for i in range(1, 6):
        assert publish_ok(serve, device.token, orjson.dumps({"ts": T0 + i, "values": {"a": i}}), packet_id=i) == 0
    time.sleep(11)  # past connect_timeout_s: the slow ones are closed and counted
    for s in [*slow, half]:
        s.close()

    assert serve.worker_pids() == pids and all(_alive(p) for p in pids.values()), "a worker crashed"
    assert wait_counted(serve, "protocol_errors", before.get("protocol_errors", 0) + garbage) >= \
        before.get("protocol_errors", 0) + garbage
    assert wait_counted(serve, "connect_timeouts", 21) >= 21
    assert serve.quarantined().get("malformed_payload", 0) >= 10
    assert [p for p, _ in serve.points(device.id, "a")] == [T0 + i for i in range(6)]
    print({k: v - before.get(k, 0) for k, v in counters(serve).items()})
