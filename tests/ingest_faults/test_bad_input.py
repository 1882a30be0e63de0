"""Bad input against a running `iotfin serve`: each bad client loses only its own message or
connection, nothing bad is stored, and the server keeps serving good clients."""

from __future__ import annotations

import socket
import struct
from datetime import date

import httpx
import orjson
import pytest
from sqlalchemy import insert

from iotfin.identity.tables import Enterprise
from tests.ingest_faults.conftest import T0, Serve
from tests.ingest_mqtt import rawclient as raw

TELEMETRY = "v1/devices/me/telemetry"


def reading(ts: int, **values: float) -> bytes:
    return orjson.dumps({"ts": ts, "values": values})


def ack(client: raw.RawClient) -> tuple[int, int]:
    """(packet id, reason code) of the next PUBACK; MQTT 5 may leave out a success code, 3.1.1 has none."""
    body = client.expect(0x40)
    return struct.unpack("!H", body[:2])[0], body[2] if len(body) > 2 else 0


def publish_ok(serve: Serve, token: str, payload: bytes, level: int = 5, packet_id: int = 1) -> int:
    """One QoS 1 telemetry message on a fresh connection; returns the PUBACK reason code (0 on 3.1.1)."""
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id=f"c-{packet_id}", username=token, level=level)
        client.send(raw.publish(TELEMETRY, payload, qos=1, packet_id=packet_id, level=level))
        got, code = ack(client)
        assert got == packet_id
        return code


def assert_still_serving(serve: Serve) -> None:
    assert serve.alive()
    good = serve.device()
    assert publish_ok(serve, good.token, reading(T0, ok=1.0)) == 0
    assert httpx.post(f"{serve.http}/api/v1/{good.token}/telemetry", content=reading(T0 + 1, ok=2.0),
                      timeout=10).status_code == 200
    assert serve.points(good.id, "ok") == [(T0, 1.0), (T0 + 1, 2.0)]


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    bytes(range(256)) * 64,
    b"\x10\xff\xff\xff\xff\xff",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100,  # a TLS ClientHello on the plain port
], ids=["http", "bytes", "varint", "tls"])
def test_garbage_bytes_on_the_mqtt_port(serve: Serve, garbage: bytes) -> None:
    with raw.RawClient(serve.mqtt_port) as client:
        client.send(garbage)
        assert client.closed()
    device = serve.device()  # garbage after a good CONNECT: that session goes, its acknowledged data stays
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="g", username=device.token)
        client.send(raw.publish(TELEMETRY, reading(T0, x=1.0), qos=1, packet_id=1))
        assert client.expect(0x40) == b"\x00\x01"
        client.send(garbage + bytes(512))  # padded: a garbage header may announce a longer body
        assert client.closed()
    assert serve.points(device.id, "x") == [(T0, 1.0)]
    assert_still_serving(serve)


def test_truncated_packets(serve: Serve) -> None:
    device = serve.device()
    connect = raw.connect(client_id="t", username=device.token)
    for cut in (1, 3, len(connect) // 2, len(connect) - 1):
        with raw.RawClient(serve.mqtt_port) as client:
            client.send(connect[:cut])  # the client vanishes mid-CONNECT
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="t", username=device.token)
        whole = raw.publish(TELEMETRY, reading(T0, cut=1.0), qos=1, packet_id=1)
        client.send(whole[:-3])  # mid-PUBLISH: never complete, never stored, never acknowledged
    with raw.RawClient(serve.mqtt_port) as client:  # a header promising more than ever comes
        client.handshake(client_id="t2", username=device.token, level=5)
        client.send(b"\x32" + raw.varint(5000) + b"\x00\x18" + TELEMETRY.encode())
    assert serve.points(device.id, "cut") == []
    assert_still_serving(serve)


def test_wrong_token(serve: Serve) -> None:
    for level, refused in ((4, 0x05), (5, 0x86)):
        with raw.RawClient(serve.mqtt_port) as client:
            client.send(raw.connect(client_id="w", username="not-a-token", level=level))
            assert client.expect(0x20)[1] == refused
            assert client.closed()
        with raw.RawClient(serve.mqtt_port) as client:  # no credentials at all
            client.send(raw.connect(client_id="w", username=None, level=level))
            assert client.expect(0x20)[1] == (0x05 if level == 4 else 0x87)
    response = httpx.post(f"{serve.http}/api/v1/not-a-token/telemetry", content=reading(T0, x=1.0), timeout=10)
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/problem+json")
    assert_still_serving(serve)


def test_a_device_cannot_write_another_devices_data(serve: Serve) -> None:
    mine, theirs = serve.device(name="mine-1"), serve.device(name="theirs-1")
    with serve.ws.engine.begin() as conn:
        other_enterprise = conn.execute(insert(Enterprise).values(
            uscc="91350100M000100Y43", name="别家", name_en="Other", sector="energy", subsector="coal_storage",
            region_code="350100", region="福州市", founded_on=date(2020, 1, 1), registered_capital=0,
            legal_rep_name="-", legal_rep_id_number="-", legal_rep_phone="-", tax_grade="B")
            .returning(Enterprise.id)).scalar_one()
    foreign = serve.device(enterprise_id=other_enterprise, name="foreign-1")
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="mine", username=mine.token, level=5)
        # topics naming the other device by id, by token, or by ThingsBoard's device-name form
        for i, topic in enumerate([f"v1/devices/{theirs.id}/telemetry", f"v1/devices/{theirs.token}/telemetry",
                                   "v1/devices/theirs-1/telemetry", "v1/devices/me/../theirs-1/telemetry"], 1):
            client.send(raw.publish(topic, reading(T0, stolen=1.0), qos=1, packet_id=i, level=5))
            assert ack(client) == (i, 0x87)  # not authorised
        # the gateway API names devices: one of another enterprise is refused, its data not stored
        client.send(raw.publish("v1/gateway/telemetry", orjson.dumps(
            {"foreign-1": [{"ts": T0, "values": {"stolen": 2.0}}]}), qos=1, packet_id=9, level=5))
        assert ack(client) == (9, 0x99)
        # and the session goes on: its own data is stored under its own id only
        client.send(raw.publish(TELEMETRY, reading(T0, own=3.0), qos=1, packet_id=10, level=5))
        assert ack(client) == (10, 0)
    bulk = httpx.post(f"{serve.http}/api/v1/{mine.token}/telemetry/bulk",
                      content=orjson.dumps({"foreign-1": {"stolen": 4.0}}), timeout=10)
    assert bulk.status_code == 400 and bulk.json()["rejected_by_reason"] == {"unknown_device": 1}
    for device in (theirs, foreign):
        assert serve.points(device.id, "stolen") == []
    assert serve.points(mine.id, "stolen") == [] and serve.points(mine.id, "own") == [(T0, 3.0)]


@pytest.mark.parametrize("level", [4, 5])
def test_ten_megabyte_mqtt_payload_closes_only_that_session(serve: Serve, level: int) -> None:
    device = serve.device()
    big = orjson.dumps({"ts": T0 + 1, "values": {f"k{i}": float(i) for i in range(600_000)}})
    assert len(big) > 10_000_000
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="big", username=device.token, level=level)
        client.send(raw.publish(TELEMETRY, reading(T0, before=1.0), qos=1, packet_id=1, level=level))
        assert client.expect(0x40)[:2] == b"\x00\x01"
        try:
            client.send(raw.publish(TELEMETRY, big, qos=1, packet_id=2, level=level))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused from its header: the server may close before the 10 MB are through
        if level == 5:
            got = client.read()
            assert got is None or (got[0] == 0xE0 and got[1][0] == 0x95)  # DISCONNECT: packet too large
        assert client.closed()
    assert serve.points(device.id, "before") == [(T0, 1.0)]
    assert serve.points(device.id, "k1") == []
    assert_still_serving(serve)


def test_ten_megabyte_http_payload_is_refused_with_413(serve: Serve) -> None:
    device = serve.device()
    big = orjson.dumps([{"ts": T0 + i, "values": {"k": float(i)}} for i in range(400_000)])
    assert len(big) > 10_000_000
    url = f"{serve.http}/api/v1/{device.token}/telemetry"
    response = httpx.post(url, content=big, timeout=60)
    assert response.status_code == 413 and response.json()["type"].endswith("payload-too-large")

    def chunked():  # no Content-Length: refused while streaming
        for start in range(0, len(big), 1 << 20):
            yield big[start:start + (1 << 20)]

    try:
        response = httpx.post(url, content=chunked(), timeout=60)
        assert response.status_code == 413
    except httpx.TransportError:
        pass  # the server may answer 413 and close before the client finishes sending
    assert serve.points(device.id, "k") == []
    assert_still_serving(serve)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
def test_nan_and_infinity_are_refused_and_quarantined(serve: Serve, literal: bytes) -> None:
    device = serve.device()
    payload = b'{"ts": %d, "values": {"v": %s, "w": 1.5}}' % (T0, literal)
    before = serve.quarantined("device_id").get(str(device.id), 0)
    assert publish_ok(serve, device.token, payload, level=5) == 0x99  # payload format invalid
    assert publish_ok(serve, device.token, payload, level=4) == 0     # 3.1.1: final rejection is acknowledged
    response = httpx.post(f"{serve.http}/api/v1/{device.token}/telemetry", content=payload, timeout=10)
    assert response.status_code == 400 and response.json()["type"].endswith("malformed_payload")
    assert serve.points(device.id, "v") == [] and serve.points(device.id, "w") == []  # the message is refused whole
    assert serve.quarantined("device_id").get(str(device.id), 0) == before + 3  # kept with its reason, counted
    # a 401-digit integer is valid JSON but no double: refused like the literals
    assert publish_ok(serve, device.token, b'{"ts": %d, "values": {"v": 1%s, "w": 2.5}}' % (T0, b"0" * 400)) == 0x99
    assert serve.points(device.id, "v") == [] and serve.points(device.id, "w") == []


def test_duplicated_and_reordered_batches_are_idempotent(serve: Serve) -> None:
    device = serve.device()
    batch = [{"ts": T0 + i * 1000, "values": {"temp": 20.0 + i, "hum": 40.0 + i}} for i in range(50)]
    url = f"{serve.http}/api/v1/{device.token}/telemetry"
    with raw.RawClient(serve.mqtt_port) as client:
        client.handshake(client_id="dup", username=device.token, level=5)
        sends = [batch, batch, list(reversed(batch)), batch[25:] + batch[:25]]
        for pid, payload in enumerate(sends, 1):
            client.send(raw.publish(TELEMETRY, orjson.dumps(payload), qos=1, packet_id=pid, level=5))
        assert [ack(client) for _ in sends] == [(pid, 0) for pid in range(1, 5)]
        # a repeat inside one message too
        client.send(raw.publish(TELEMETRY, orjson.dumps(batch[:3] + batch[:3]), qos=1, packet_id=5, level=5))
        assert ack(client) == (5, 0)
    for _ in range(2):
        assert httpx.post(url, content=orjson.dumps(list(reversed(batch))), timeout=10).status_code == 200
    # same point, different value: the first accepted value stays (an acknowledged reading never changes)
    assert httpx.post(url, content=reading(T0, temp=99.0), timeout=10).status_code == 200
    temp = serve.points(device.id, "temp")
    assert temp == [(T0 + i * 1000, 20.0 + i) for i in range(50)]
    assert len(serve.points(device.id, "hum")) == 50
    # late data: an older reading received last does not become the latest value
    assert publish_ok(serve, device.token, reading(T0 - 3_600_000, temp=-5.0)) == 0
    latest = serve.ws.telemetry.latest(device.id)
    assert latest["temp"] == (T0 + 49_000, 69.0)
    assert len(serve.points(device.id, "temp")) == 51


def test_many_bad_connections_at_once_leave_a_good_publisher_alone(serve: Serve) -> None:
    device = serve.device()
    with raw.RawClient(serve.mqtt_port) as good:
        good.handshake(client_id="steady", username=device.token, level=5)
        bad = []
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", serve.mqtt_port))
            s.sendall([b"\xff" * 10, raw.connect()[:7], raw.connect(username="wrong"), b"\x10\x7f" + b"\x00" * 30][i % 4])
            bad.append(s)
        for i in range(100):
            good.send(raw.publish(TELEMETRY, reading(T0 + i, n=float(i)), qos=1, packet_id=i + 1, level=5))
        assert [ack(good) for _ in range(100)] == [(i + 1, 0) for i in range(100)]
        for s in bad:
            s.close()
    assert len(serve.points(device.id, "n")) == 100
    assert_still_serving(serve)


def test_a_timestamp_beyond_int64_fails_only_its_own_message(serve: Serve) -> None:
    device, other = serve.device(), serve.device()
    with raw.RawClient(serve.mqtt_port) as bad, raw.RawClient(serve.mqtt_port) as good:
        bad.handshake(client_id="bad-ts", username=device.token, level=5)
        good.handshake(client_id="good-ts", username=other.token, level=5)
        # pipelined together, so both can land in one group commit
        bad.send(raw.publish(TELEMETRY, b'{"ts": %d, "values": {"v": 1}}' % (2**63 + 5), qos=1, packet_id=1, level=5))
        good.send(raw.publish(TELEMETRY, reading(T0, v=2.0), qos=1, packet_id=1, level=5))
        assert ack(bad) == (1, 0x99) and ack(good) == (1, 0)
    assert serve.points(other.id, "v") == [(T0, 2.0)] and serve.points(device.id, "v") == []
