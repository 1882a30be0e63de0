"""paho-mqtt v2 clients (MQTT 3.1.1 and 5) against the server over loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.ingest_mqtt.conftest import Device, ServerThread, wait_for
from tests.services import missing_service


@pytest.fixture(scope="module")
def mqtt() -> ModuleType:
    try:
        import paho.mqtt.client as client
    except ImportError:
        missing_service("paho-mqtt (pip install paho-mqtt>=2)")
    return client


class Paho:
    """A connected paho client that records what it gets."""

    def __init__(self, mqtt: ModuleType, port: int, protocol: int, username: str = "dev-paho",
                 client_id: str = "paho-1", keepalive: int = 60):
        self.mqtt = mqtt
        self.messages: list[tuple[str, bytes, int]] = []
        self.acks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.connack: list[int] = []
        self.disconnects: list[int] = []
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        self.client.username_pw_set(username)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.qos))
        self.client.on_publish = lambda c, u, mid, reason, props: self.acks.__setitem__(mid, reason.value)
        self.client.on_subscribe = lambda c, u, mid, reasons, props: self.subacks.__setitem__(
            mid, [r.value for r in reasons])
        self.client.on_disconnect = lambda c, u, flags, reason, props: self.disconnects.append(reason.value)
        self.client.connect("127.0.0.1", port, keepalive=keepalive)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack.append(reason.value)
        self.connected.set()

    def publish(self, topic: str, payload: bytes, qos: int) -> int:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)
        return info.mid

    def subscribe(self, topic_filter: str, qos: int) -> list[int]:
        _, mid = self.client.subscribe(topic_filter, qos)
        wait_for(lambda: mid in self.subacks)
        return self.subacks[mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def paho(mqtt: ModuleType, mqtt_server: ServerThread) -> Iterator[Any]:
    clients: list[Paho] = []

    def make(protocol: int, **options: Any) -> Paho:
        client = Paho(mqtt, mqtt_server.port, protocol, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


PROTOCOLS = pytest.mark.parametrize("level", [4, 5], ids=["mqtt311", "mqtt5"])


def protocol_of(mqtt: ModuleType, level: int) -> int:
    return mqtt.MQTTv311 if level == 4 else mqtt.MQTTv5


@PROTOCOLS
def test_connect_publish_qos0_and_qos1(mqtt: ModuleType, mqtt_server: ServerThread, paho: Any, level: int) -> None:
    client = paho(protocol_of(mqtt, level))
    assert client.connected.wait(5) and client.connack == [0]
    client.publish("v1/devices/me/telemetry", b'{"t":1}', qos=0)
    mid = client.publish("v1/devices/me/telemetry", b'{"t":2}', qos=1)
    assert client.acks[mid] == 0
    wait_for(lambda: len(mqtt_server.handler.published) == 2)
    assert mqtt_server.handler.published == [
        (Device("dev-paho"), "v1/devices/me/telemetry", b'{"t":1}', 0),
        (Device("dev-paho"), "v1/devices/me/telemetry", b'{"t":2}', 1)]
    assert mqtt_server.handler.auth_calls == [("paho-1", "dev-paho", None, level)]
    session = mqtt_server.handler.sessions[0]
    assert session.protocol_level == level and session.client_id == "paho-1"
    assert session.connected_at is not None and session.connected_at.tzinfo is not None


def test_mqtt5_puback_carries_the_handler_reason_code(mqtt: ModuleType, paho: Any) -> None:
    client = paho(mqtt.MQTTv5)
    assert client.connected.wait(5)
    codes = {}
    for code in (0x00, 0x87, 0x99, 0x97, 0x83):
        codes[code] = client.acks[client.publish(f"fail/code/{code:02x}", b"{}", qos=1)]
    assert codes == {0x00: 0x00, 0x87: 0x87, 0x99: 0x99, 0x97: 0x97, 0x83: 0x83}
    # a code MQTT 5 does not allow in a PUBACK becomes 0x80 unspecified error
    assert client.acks[client.publish("fail/code/9b", b"{}", qos=1)] == 0x80


def test_mqtt5_handler_exception_gives_0x83_and_the_session_goes_on(mqtt: ModuleType, mqtt_server: ServerThread,
                                                                     paho: Any) -> None:
    client = paho(mqtt.MQTTv5)
    assert client.connected.wait(5)
    assert client.acks[client.publish("fail/raise", b"{}", qos=1)] == 0x83
    assert client.acks[client.publish("v1/devices/me/telemetry", b"{}", qos=1)] == 0
    assert not client.disconnects
    assert mqtt_server.server.stats.handler_errors == 1


def test_mqtt311_handler_exception_closes_without_puback(mqtt: ModuleType, mqtt_server: ServerThread,
                                                         paho: Any) -> None:
    client = paho(mqtt.MQTTv311)
    assert client.connected.wait(5)
    client.client.reconnect_delay_set(30, 30)  # so the closed connection stays closed while we look
    info = client.client.publish("fail/raise", b"{}", qos=1)
    wait_for(lambda: client.disconnects)
    assert info.mid not in client.acks
    # the client may see the connection close before the server's on_disconnect has run
    wait_for(lambda: any("publish failed (0x83)" in reason for _, _, reason in mqtt_server.handler.disconnected))
    other = paho(mqtt.MQTTv311, client_id="paho-2", username="dev-other")
    assert other.connected.wait(5)
    assert other.acks[other.publish("v1/devices/me/telemetry", b"{}", qos=1)] == 0


def test_mqtt311_final_rejection_is_acknowledged(mqtt: ModuleType, paho: Any) -> None:
    client = paho(mqtt.MQTTv311)
    assert client.connected.wait(5)
    mid = client.publish("fail/code/99", b"not json", qos=1)  # quarantined by the handler: resending won't help
    assert mid in client.acks and not client.disconnects


@PROTOCOLS
def test_subscribe_and_receive_a_server_publish(mqtt: ModuleType, mqtt_server: ServerThread, paho: Any,
                                                level: int) -> None:
    client = paho(protocol_of(mqtt, level))
    assert client.connected.wait(5)
    assert client.subscribe("v1/devices/me/rpc/request/+", 2) == [1]  # QoS 2 asked, QoS 1 granted
    assert client.subscribe("v1/devices/me/attributes", 0) == [0]
    failure = client.subscribe("forbidden/x", 1)
    assert failure == ([0x87] if level == 5 else [0x80])
    client.publish("reply/v1/devices/me/rpc/request/7", b'{"method":"reboot"}', qos=1)
    client.publish("reply/v1/devices/me/attributes", b'{"shared":1}', qos=1)
    client.publish("reply/not/subscribed", b"lost", qos=1)
    wait_for(lambda: len(client.messages) == 2)
    time.sleep(0.1)
    assert client.messages == [("v1/devices/me/rpc/request/7", b'{"method":"reboot"}', 1),
                               ("v1/devices/me/attributes", b'{"shared":1}', 0)]
    assert mqtt_server.server.stats.dropped == 1
    assert [(f, q) for _, f, q in mqtt_server.handler.subscribed] == [
        ("v1/devices/me/rpc/request/+", 2), ("v1/devices/me/attributes", 0), ("forbidden/x", 1)]


def test_mqtt311_qos2_publish_completes_the_qos2_handshake(mqtt: ModuleType, mqtt_server: ServerThread,
                                                           paho: Any) -> None:
    client = paho(mqtt.MQTTv311)
    assert client.connected.wait(5)
    mid = client.publish("v1/devices/me/telemetry", b'{"q":2}', qos=2)
    assert mid in client.acks
    assert mqtt_server.handler.published[-1][1:] == ("v1/devices/me/telemetry", b'{"q":2}', 2)


def test_keepalive_pings_keep_the_session(mqtt: ModuleType, mqtt_server: ServerThread, paho: Any) -> None:
    client = paho(mqtt.MQTTv5, keepalive=1)
    assert client.connected.wait(5)
    time.sleep(2.5)  # longer than 1.5 x keep-alive: only PINGREQs keep it open
    assert not client.disconnects
    assert client.acks[client.publish("v1/devices/me/telemetry", b"{}", qos=1)] == 0


def test_bad_credentials_are_refused(mqtt: ModuleType, paho: Any) -> None:
    v311 = paho(mqtt.MQTTv311, username="intruder")
    v5 = paho(mqtt.MQTTv5, username="intruder", client_id="paho-2")
    wait_for(lambda: v311.connack and v5.connack)
    assert v311.connack[0] == 0x87  # paho reports 3.1.1 return code 5 (not authorized) as 0x87
    assert v5.connack[0] == 0x86  # 5: bad user name or password


def test_stop_disconnects_mqtt5_clients_with_server_shutting_down(mqtt: ModuleType, start_server: Any) -> None:
    server = start_server()
    client = Paho(mqtt, server.port, mqtt.MQTTv5)
    try:
        assert client.connected.wait(5)
        client.client.reconnect_delay_set(30, 30)
        server.call(server.server.stop())
        wait_for(lambda: client.disconnects)
        assert client.disconnects[0] == 0x8B
        assert server.handler.disconnected == [(Device("dev-paho"), "paho-1", "server shutting down")]
    finally:
        client.close()
