"""Protocol rules checked byte for byte with a raw socket client."""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

import pytest

from tests.ingest_mqtt import rawclient as raw
from tests.ingest_mqtt.conftest import Device, ServerThread, wait_for


def test_connack_bytes_for_refusals(mqtt_server: ServerThread) -> None:
    cases = [
        (raw.connect(username="intruder"), b"\x00\x05"),                          # 3.1.1 not authorized
        (raw.connect(username=None), b"\x00\x05"),
        (raw.connect(username="intruder", level=5), b"\x00\x86\x00"),            # 5: bad user name or password
        (raw.connect(username=None, level=5), b"\x00\x87\x00"),                  # 5: not authorized
        (raw.connect(username="boom"), b"\x00\x03"),                             # handler raised: unavailable
        (raw.connect(username="boom", level=5), b"\x00\x88\x00"),
        (raw.connect(client_id="", clean=False), b"\x00\x02"),                   # 3.1.1 identifier rejected
        (raw.connect(level=3), b"\x00\x01"),                                     # unacceptable protocol level
        (raw.connect(level=6), b"\x00\x01"),
        (raw.connect(level=5, props=b"\x15\x00\x05SCRAM"), b"\x00\x8c\x00"),     # enhanced auth: bad method
    ]
    for connect, connack in cases:
        with raw.RawClient(mqtt_server.port) as client:
            client.send(connect)
            assert client.expect(0x20) == connack
            assert client.closed()
    assert mqtt_server.server.stats.refused == len(cases)
    assert mqtt_server.handler.disconnected == []  # refused connections never were sessions


def test_mqtt5_connack_properties_and_assigned_client_id(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        body = client.handshake(client_id="", level=5, props=b"\x11\x00\x00\x0e\x10")  # asks for 3600 s expiry
        assert body[0] == 0  # session present: never
        for prop in (b"\x24\x01",                       # Maximum QoS 1
                     b"\x21" + struct.pack("!H", 1000),  # Receive Maximum
                     b"\x27" + struct.pack("!I", 64 * 1024),  # Maximum Packet Size
                     b"\x29\x00", b"\x2a\x00",          # no subscription identifiers, no shared subscriptions
                     b"\x11\x00\x00\x00\x00",           # Session Expiry Interval overridden to 0
                     b"\x12\x00\x15auto-"):             # Assigned Client Identifier
            assert prop in body, prop
        session = mqtt_server.server.sessions[0]
        assert session.client_id.startswith("auto-") and len(session.client_id) == 21
    assert mqtt_server.handler.auth_calls[0][0] == ""  # the handler sees what the client sent


def test_packets_pipelined_behind_connect_are_handled_after_connack(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.send(raw.connect(client_id="eager", username="dev-eager")
                    + raw.subscribe(1, [("v1/devices/me/rpc/request/+", 1)])
                    + raw.publish("reply/v1/devices/me/rpc/request/1", b"{}", qos=1, packet_id=2)
                    + raw.PINGREQ)
        assert client.expect(0x20) == b"\x00\x00"
        got = [client.read() for _ in range(4)]
        kinds = [packet[0] for packet in got if packet is not None]
        # PINGRESP is answered at once; the rest in order: the subscription is in place before the reply
        assert sorted(kinds) == [0x32, 0x40, 0x90, 0xD0]
        assert kinds.index(0x90) < kinds.index(0x32)


def test_mqtt5_qos2_publish_is_refused_with_0x9b(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="q2", username="dev-q2", level=5)
        client.send(raw.publish("v1/devices/me/telemetry", b"{}", qos=2, packet_id=1, level=5))
        assert client.expect(0xE0)[0] == 0x9B
        assert client.closed()
    assert mqtt_server.handler.published == []


def test_mqtt311_qos2_handshake(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="q2", username="dev-q2")
        client.send(raw.publish("v1/devices/me/telemetry", b"{}", qos=2, packet_id=5))
        assert client.expect(0x50) == b"\x00\x05"  # PUBREC after the handler returned
        client.send(b"\x62\x02\x00\x05")  # PUBREL
        assert client.expect(0x70) == b"\x00\x05"  # PUBCOMP
    assert mqtt_server.handler.published[0][1:] == ("v1/devices/me/telemetry", b"{}", 2)


@pytest.mark.parametrize("level", [4, 5])
def test_keep_alive_timeout(mqtt_server: ServerThread, level: int) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="sleepy", username="dev-sleepy", keep_alive=1, level=level)
        started = time.monotonic()
        if level == 5:
            assert client.expect(0xE0)[0] == 0x8D
        assert client.closed(timeout=5)
        assert 1.4 < time.monotonic() - started < 3.0  # 1.5 x keep-alive
    wait_for(lambda: mqtt_server.handler.disconnected)
    assert mqtt_server.handler.disconnected == [(Device("dev-sleepy"), "sleepy", "keep-alive timeout")]


def test_publishes_are_handled_and_acknowledged_in_order(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="order", username="dev-order", level=5)
        # slow first, fast later: with concurrent handling the later ones would finish first
        burst = b"".join(raw.publish(f"slow/{50 - i * 10}" if i < 5 else "v1/devices/me/telemetry",
                                     struct.pack("!I", i), qos=1, packet_id=i + 1, level=5) for i in range(40))
        client.send(burst)
        assert [client.expect(0x40) for _ in range(40)] == [struct.pack("!H", i + 1) for i in range(40)]
    assert [p[2] for p in mqtt_server.handler.published] == [struct.pack("!I", i) for i in range(40)]


def test_sessions_are_not_serialised_across_each_other(mqtt_server: ServerThread) -> None:
    """One session's on_publish waits on another session's: a shared group commit works the same way."""
    with raw.RawClient(mqtt_server.port) as a, raw.RawClient(mqtt_server.port) as b:
        a.handshake(client_id="a", username="dev-a")
        b.handshake(client_id="b", username="dev-b")
        a.send(raw.publish("gate/wait", b"", qos=1, packet_id=1))
        time.sleep(0.1)
        b.send(raw.publish("gate/open", b"", qos=1, packet_id=1))
        assert b.expect(0x40) == b"\x00\x01"
        assert a.expect(0x40) == b"\x00\x01"


def test_an_ack_is_not_held_back_by_the_next_message(mqtt_server: ServerThread) -> None:
    """The PUBACK of a stored message leaves while the session's next message still awaits its commit."""
    with raw.RawClient(mqtt_server.port) as device, raw.RawClient(mqtt_server.port) as opener:
        device.handshake(client_id="d", username="dev-d")
        opener.handshake(client_id="o", username="dev-o")
        device.send(raw.publish("v1/devices/me/telemetry", b"{}", qos=1, packet_id=1)
                    + raw.publish("gate/wait", b"", qos=1, packet_id=2))
        assert device.expect(0x40) == b"\x00\x01"
        opener.send(raw.publish("gate/open", b"", qos=1, packet_id=1))
        assert device.expect(0x40) == b"\x00\x02"


def test_receive_maximum_exceeded(start_server: Any) -> None:
    server = start_server(receive_maximum=2)
    with raw.RawClient(server.port) as client:
        client.handshake(client_id="flood", username="dev-flood", level=5)
        client.send(b"".join(raw.publish("slow/300", b"", qos=1, packet_id=i, level=5) for i in (1, 2, 3)))
        assert client.expect(0xE0)[0] == 0x93
        assert client.closed()


def test_takeover_by_the_same_identity_and_client_id(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as first, raw.RawClient(mqtt_server.port) as other:
        first.handshake(client_id="meter-1", username="dev-meter", level=5)
        other.handshake(client_id="meter-1", username="dev-another")  # another device, same client id
        with raw.RawClient(mqtt_server.port) as second:
            second.handshake(client_id="meter-1", username="dev-meter", level=5)
            assert first.expect(0xE0)[0] == 0x8E  # session taken over
            assert first.closed()
            second.send(raw.PINGREQ)
            assert second.expect(0xD0) == b""
            other.send(raw.PINGREQ)
            assert other.expect(0xD0) == b""  # untouched
    wait_for(lambda: any(r == "session taken over" for _, _, r in mqtt_server.handler.disconnected))


def test_takeover_of_a_client_id_that_two_identities_share(mqtt_server: ServerThread) -> None:
    """The second identity under a client id is tracked apart from the first (server.Takeovers):
    its own reconnection takes its own session over, and the first identity's stays."""
    with raw.RawClient(mqtt_server.port) as meter, raw.RawClient(mqtt_server.port) as other:
        meter.handshake(client_id="meter-1", username="dev-meter")
        other.handshake(client_id="meter-1", username="dev-another")
        with raw.RawClient(mqtt_server.port) as other_again:
            other_again.handshake(client_id="meter-1", username="dev-another")
            assert other.closed()
            for client in (meter, other_again):
                client.send(raw.PINGREQ)
                assert client.expect(0xD0) == b""
    wait_for(lambda: len(mqtt_server.server._takeovers) == 0)


def test_takeover_after_the_first_holder_of_a_shared_client_id_left(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as other:
        with raw.RawClient(mqtt_server.port) as meter:
            meter.handshake(client_id="meter-1", username="dev-meter")
            other.handshake(client_id="meter-1", username="dev-another", level=5)
        wait_for(lambda: len(mqtt_server.server.sessions) == 1)  # the meter has gone; the other stays
        with raw.RawClient(mqtt_server.port) as other_again:
            other_again.handshake(client_id="meter-1", username="dev-another", level=5)
            assert other.expect(0xE0)[0] == 0x8E  # its own reconnection takes it over
            assert other.closed()
            other_again.send(raw.PINGREQ)
            assert other_again.expect(0xD0) == b""
    wait_for(lambda: len(mqtt_server.server._takeovers) == 0)


@pytest.mark.parametrize("level", [4, 5])
def test_session_close_from_the_platform(mqtt_server: ServerThread, level: int) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="revoked", username="dev-revoked", level=level)
        client.send(raw.publish("close/87", b"", qos=0, level=level))
        if level == 5:
            assert client.expect(0xE0)[0] == 0x87
        assert client.closed()
    wait_for(lambda: mqtt_server.handler.disconnected)
    assert mqtt_server.handler.disconnected[0][2] == "closed by the server (0x87)"


def test_session_close_from_another_thread_while_idle(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="idle", username="dev-idle", level=5)
        session = mqtt_server.server.sessions[0]
        mqtt_server.call(session.close(0x87))
        assert client.expect(0xE0)[0] == 0x87
        assert client.closed()


@pytest.mark.parametrize("level", [4, 5])
def test_unsubscribe(mqtt_server: ServerThread, level: int) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="u", username="dev-u", level=level)
        client.send(raw.subscribe(1, [("v1/devices/me/attributes", 1), ("v1/devices/me/rpc/request/+", 0)], level))
        assert client.expect(0x90)[-2:] == b"\x01\x00"
        client.send(raw.unsubscribe(2, ["v1/devices/me/attributes", "never/subscribed"], level))
        assert client.expect(0xB0) == (b"\x00\x02\x00\x00\x11" if level == 5 else b"\x00\x02")
        client.send(raw.publish("reply/v1/devices/me/attributes", b"x", qos=1, packet_id=3, level=level)
                    + raw.publish("reply/v1/devices/me/rpc/request/4", b"y", qos=1, packet_id=4, level=level))
        got = [client.read(), client.read(), client.read()]
        publishes = [body for first, body in got if first == 0x30]  # delivered at the granted QoS 0
        assert len(publishes) == 1 and publishes[0].endswith(b"y")


def test_subscribe_filter_validation(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="f", username="dev-f", level=5)
        client.send(raw.subscribe(1, [("a/#/b", 1), ("a+/b", 1), ("$share/g/a", 1), ("a/+/#", 1)], 5))
        assert client.expect(0x90) == b"\x00\x01\x00\x8f\x8f\x9e\x01"
    assert [f for _, f, _ in mqtt_server.handler.subscribed] == ["a/+/#"]


def test_client_disconnect_after_qos0_messages(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="bye", username="dev-bye", level=5)
        client.send(b"".join(raw.publish("slow/20", struct.pack("!B", i), level=5) for i in range(5))
                    + b"\xe0\x01\x00")  # DISCONNECT, normal
        assert client.closed()
    wait_for(lambda: mqtt_server.handler.disconnected)
    assert len(mqtt_server.handler.published) == 5  # what came before DISCONNECT is handled
    assert mqtt_server.handler.disconnected == [(Device("dev-bye"), "bye", "client disconnected")]


def test_on_disconnect_follows_the_last_on_publish(mqtt_server: ServerThread) -> None:
    events: list[str] = []
    handler = mqtt_server.handler
    original_publish, original_disconnect = handler.on_publish, handler.on_disconnect

    async def on_publish(session: Any, topic: str, payload: bytes, qos: int) -> int:
        code = await original_publish(session, topic, payload, qos)
        events.append("publish")
        return code

    async def on_disconnect(session: Any, reason: str) -> None:
        events.append("disconnect")
        await original_disconnect(session, reason)

    handler.on_publish = on_publish  # type: ignore[method-assign]
    handler.on_disconnect = on_disconnect  # type: ignore[method-assign]
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="gone", username="dev-gone")
        client.send(raw.publish("slow/200", b"", qos=1, packet_id=1))
    wait_for(lambda: "disconnect" in events)
    assert events == ["publish", "disconnect"]


def test_server_publish_waits_for_the_client_receive_window(mqtt_server: ServerThread) -> None:
    with raw.RawClient(mqtt_server.port) as client:
        client.handshake(client_id="w", username="dev-w", level=5, props=b"\x21\x00\x01")  # receive maximum 1
        client.send(raw.subscribe(1, [("down/+", 1)], 5))
        client.expect(0x90)
        session = mqtt_server.server.sessions[0]
        results: list[bool] = []

        def push() -> None:
            for i in range(2):
                results.append(mqtt_server.call(session.publish(f"down/{i}", b"x", qos=1)))

        pusher = threading.Thread(target=push)
        pusher.start()
        first = client.read()
        assert first is not None and first[0] == 0x32
        time.sleep(0.2)
        assert results == [True]  # the second waits for our PUBACK
        client.send(b"\x40\x02" + first[1][8:10])  # PUBACK with the packet id after topic "down/0"
        second = client.read()
        assert second is not None and second[0] == 0x32
        pusher.join(5)
        assert results == [True, True]
