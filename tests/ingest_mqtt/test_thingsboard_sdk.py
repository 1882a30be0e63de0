"""The ThingsBoard device SDK (tb-mqtt-client) speaks to the server: connect, its subscriptions, telemetry
and attributes acknowledged, a server-side RPC delivered. The device-API meaning is the handler's."""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import pytest

from tests.ingest_mqtt.conftest import Device, ServerThread, wait_for
from tests.services import missing_service


@pytest.fixture(scope="module")
def tb_device_mqtt() -> ModuleType:
    try:
        import tb_device_mqtt
    except ImportError:
        missing_service("tb-mqtt-client (pip install tb-mqtt-client)")
    return tb_device_mqtt


def test_thingsboard_device_sdk(tb_device_mqtt: ModuleType, mqtt_server: ServerThread) -> None:
    client = tb_device_mqtt.TBDeviceMqttClient("127.0.0.1", port=mqtt_server.port, username="dev-tb")
    requests: list[tuple[Any, Any]] = []
    received = threading.Event()

    def on_rpc(request_id: Any, body: Any) -> None:
        requests.append((request_id, body))
        received.set()

    client.set_server_side_rpc_request_handler(on_rpc)
    client.connect()
    try:
        assert client.send_telemetry({"temperature": 21.5}).get() == 0
        assert client.send_attributes({"firmware": "1.0"}).get() == 0
        handler = mqtt_server.handler
        wait_for(lambda: {"v1/devices/me/rpc/request/+", "v1/devices/me/attributes"}
                 <= {f for _, f, _ in handler.subscribed})
        session = mqtt_server.server.sessions[0]
        mqtt_server.call(session.publish("v1/devices/me/rpc/request/42", b'{"method":"reboot","params":{}}', qos=1))
        assert received.wait(5)
        assert requests[0][0] in ("42", 42) and requests[0][1]["method"] == "reboot"
        topics = [(identity, topic) for identity, topic, _, _ in handler.published]
        assert (Device("dev-tb"), "v1/devices/me/telemetry") in topics
        assert (Device("dev-tb"), "v1/devices/me/attributes") in topics
    finally:
        client.disconnect()
