"""The Mosquitto command-line client (libmosquitto, C) against the server."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.ingest_mqtt.conftest import Device, ServerThread, wait_for
from tests.services import missing_service


@pytest.fixture(scope="module")
def mosquitto_pub() -> str:
    path = shutil.which("mosquitto_pub")
    if path is None:
        missing_service("mosquitto_pub (Debian package mosquitto-clients)")
    return path


def run(mosquitto_pub: str, port: int, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([mosquitto_pub, "-h", "127.0.0.1", "-p", str(port), *args], input=stdin,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_pub_qos1(mosquitto_pub: str, mqtt_server: ServerThread, version: str) -> None:
    done = run(mosquitto_pub, mqtt_server.port, "-V", version, "-i", "mosq-1", "-u", "dev-mosq", "-q", "1",
               "-t", "v1/devices/me/telemetry", "-m", '{"temperature":21.5}')
    assert done.returncode == 0, done.stderr
    wait_for(lambda: mqtt_server.handler.disconnected)
    assert mqtt_server.handler.published == [(Device("dev-mosq"), "v1/devices/me/telemetry",
                                              b'{"temperature":21.5}', 1)]
    assert mqtt_server.handler.disconnected[0][2] == "client disconnected"


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_pub_lines_in_order(mosquitto_pub: str, mqtt_server: ServerThread, version: str) -> None:
    lines = [f'{{"n":{i}}}' for i in range(500)]
    done = run(mosquitto_pub, mqtt_server.port, "-V", version, "-u", "dev-lines", "-q", "1", "-l",
               "-t", "v1/devices/me/telemetry", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(mqtt_server.handler.published) == 500)
    assert [p[2].decode() for p in mqtt_server.handler.published] == lines


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_pub_bad_credentials_fail(mosquitto_pub: str, mqtt_server: ServerThread, version: str) -> None:
    done = run(mosquitto_pub, mqtt_server.port, "-V", version, "-u", "intruder", "-P", "guess", "-q", "1",
               "-t", "v1/devices/me/telemetry", "-m", "{}")
    assert done.returncode != 0
    assert mqtt_server.handler.published == []
    [(_, username, password, level)] = mqtt_server.handler.auth_calls  # mosquitto_pub picks its own client id
    assert (username, password, level) == ("intruder", b"guess", 4 if version == "mqttv311" else 5)
