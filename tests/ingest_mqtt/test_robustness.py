"""Bad clients — garbage, truncated, oversize, silent, malformed — lose their connection; the server serves
a good client right after."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import pytest

from tests.ingest_mqtt import rawclient as raw
from tests.ingest_mqtt.conftest import ServerThread, wait_for


def assert_serves_a_good_client(server: ServerThread) -> None:
    with raw.RawClient(server.port) as good:
        good.handshake(client_id="good", username="dev-good")
        good.send(raw.publish("v1/devices/me/telemetry", b'{"ok":1}', qos=1, packet_id=9))
        assert good.expect(0x40) == b"\x00\x09"
        good.send(raw.PINGREQ)
        assert good.expect(0xD0) == b""


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    bytes(range(256)) * 4,
    b"\x10\xff\xff\xff\xff\xff",          # CONNECT with a 5-byte remaining length
    b"\x10\x03\x00\x01",                   # CONNECT too short to hold a protocol name
    b"\x10\x0c\x00\x04MQTT\x04\x01\x00\x3c\x00\x00",  # reserved connect flag set
    b"\x10\x0c\x00\x04MQTX\x04\x02\x00\x3c\x00\x00",  # unknown protocol name
    b"\x30\x05\x00\x01a\x00\x00",          # PUBLISH before CONNECT
], ids=["http", "bytes", "varint", "short", "reserved-flag", "protocol-name", "publish-first"])
def test_garbage_before_connect_closes_the_connection(mqtt_server: ServerThread, garbage: bytes) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.send(garbage)
        assert client.closed()
    assert_serves_a_good_client(mqtt_server)
    assert mqtt_server.handler.disconnected == [] or all(d[1] == "good" for d in mqtt_server.handler.disconnected)


def test_truncated_packets_and_vanishing_clients(mqtt_server: ServerThread) -> None:
    connect = raw.connect(client_id="t", username="dev-t")
    for cut in (1, 2, 5, len(connect) - 1):
        with raw.RawClient(mqtt_server.port) as client:
            client.send(connect[:cut])  # then the client goes away mid-packet
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="t2", username="dev-t2")
        client.send(raw.publish("v1/devices/me/telemetry", b"x" * 1000, qos=1, packet_id=1)[:500])
    assert_serves_a_good_client(mqtt_server)
    wait_for(lambda: any(d[1] == "t2" for d in mqtt_server.handler.disconnected))
    assert [d for d in mqtt_server.handler.disconnected if d[1] == "t2"][0][2].startswith("connection lost")


def test_a_client_that_never_sends_connect_is_closed_after_the_connect_timeout(start_server: Any) -> None:
    server = start_server(connect_timeout_s=0.3)
    started = time.monotonic()
    with raw.RawClient(server.port) as silent, raw.RawClient(server.port) as partial:
        partial.send(raw.connect()[:4])
        assert silent.closed(timeout=3) and partial.closed(timeout=3)
    assert 0.25 < time.monotonic() - started < 3
    assert server.server.stats.connect_timeouts == 2
    assert_serves_a_good_client(server)


@pytest.mark.parametrize("level", [4, 5])
def test_oversize_packet_is_refused_from_its_header(start_server: Any, level: int) -> None:
    server = start_server(max_packet_size=1024)
    with raw.RawClient(server.port) as client:
        client.handshake(client_id="big", username="dev-big", level=level)
        # only the fixed header of a 100 MB packet is sent: the server must not wait for the rest
        client.send(b"\x32" + raw.varint(100_000_000))
        if level == 5:
            assert client.expect(0xE0)[0] == 0x95  # DISCONNECT: packet too large
        assert client.closed()
    with raw.RawClient(server.port) as client:
        client.handshake(client_id="big2", username="dev-big", level=level)
        client.send(raw.publish("t", b"x" * 2000, qos=1, packet_id=1, level=level))
        if level == 5:
            assert client.expect(0xE0)[0] == 0x95
        assert client.closed()
    assert server.handler.published == []
    assert_serves_a_good_client(server)


def test_oversize_connect_is_refused(start_server: Any) -> None:
    server = start_server()
    with raw.RawClient(server.port) as client:
        huge = raw.connect(client_id="x", username="dev" + "u" * 40_000, password=b"p" * 40_000)
        assert len(huge) > 64 * 1024  # over the CONNECT limit: refused from the header, before the rest
        client.send(huge[:1000])
        assert client.closed()
    assert_serves_a_good_client(server)


@pytest.mark.parametrize("bad, reason", [
    (raw.publish(b"t/\xff\xfe", b"{}", qos=1, packet_id=1, level=5), 0x81),        # ill-formed UTF-8 topic
    (raw.publish(b"t/\x00", b"{}", qos=1, packet_id=1, level=5), 0x81),            # U+0000 in topic
    (raw.publish(b"t/\xed\xa0\x80", b"{}", qos=0, level=5), 0x81),                 # encoded surrogate
    (raw.publish("t/+", b"{}", qos=0, level=5), 0x90),                             # wildcard in topic name
    (raw.publish("t", b"{}", qos=1, packet_id=0, level=5), 0x81),                  # packet id 0
    (b"\x36\x05\x00\x01t\x00\x01", 0x81),                                          # QoS 3
    (raw.publish("t", b"{}", qos=0, level=5, props=b"\x23\x00\x01"), 0x94),        # topic alias
    (raw.publish("t", b"{}", qos=0, level=5, props=b"\x7f\x00"), 0x81),            # unknown property
    (raw.publish("t", b"{}", qos=0, level=5, props=b"\x01\x01\x01\x01"), 0x82),    # repeated property
    (b"\x82\x03\x00\x01\x00", 0x82),                                               # SUBSCRIBE without a filter
    (raw.subscribe(1, [("a", 0x03)], level=5), 0x81),                              # SUBSCRIBE QoS 3
    (b"\x80\x07\x00\x01\x00\x00\x01a\x00", 0x81),                                      # SUBSCRIBE bad flags
    (raw.connect(level=5), 0x82),                                                  # second CONNECT
    (b"\x20\x02\x00\x00", 0x82),                                                   # CONNACK from a client
    (b"\xc0\x01\x00", 0x81),                                                       # PINGREQ with a body
    (b"\x30\xff\xff\xff\xff\x01", 0x81),                                           # 5-byte remaining length
], ids=["utf8", "nul", "surrogate", "wildcard", "pid0", "qos3", "alias", "unknown-prop", "repeated-prop",
        "sub-empty", "sub-qos3", "sub-flags", "second-connect", "connack", "pingreq-body", "varint"])
def test_mqtt5_malformed_packet_gets_disconnect_with_reason(mqtt_server: ServerThread, bad: bytes,
                                                            reason: int) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="m", username="dev-m", level=5)
        client.send(bad)
        assert client.expect(0xE0)[0] == reason
        assert client.closed()
    assert mqtt_server.handler.published == []
    assert_serves_a_good_client(mqtt_server)
    assert mqtt_server.server.stats.protocol_errors == 1


def test_mqtt311_malformed_packet_just_closes(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="m", username="dev-m")
        client.send(raw.publish(b"t/\xff", b"{}", qos=1, packet_id=1))
        got = client.read()
        assert got is None  # no DISCONNECT in 3.1.1: the connection closes
    assert_serves_a_good_client(mqtt_server)


def test_many_bad_clients_at_once_do_not_disturb_a_good_one(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as good:
        good.handshake(client_id="steady", username="dev-steady")
        bad = []
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", mqtt_server.port))
            s.sendall([b"\xff\xff", raw.connect()[:7], b"\x10\x7f" + b"\x00" * 20, raw.connect(username="x")][i % 4])
            bad.append(s)
        for i in range(20):
            good.send(raw.publish("v1/devices/me/telemetry", struct.pack("!I", i), qos=1, packet_id=i + 1))
        assert [good.expect(0x40) for _ in range(20)] == [struct.pack("!H", i + 1) for i in range(20)]
        for s in bad:
            s.close()
