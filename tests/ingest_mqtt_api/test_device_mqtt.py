"""The ThingsBoard device API over MQTT against a running `iotfin serve`, with real clients:
`mosquitto_pub` and the ThingsBoard Python SDK (tb-mqtt-client, incl. its getSessionLimits handshake)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import missing_service


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    def __init__(self, data_dir: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(data_dir)}
        self.http_port, self.mqtt_port = _free_port(), _free_port()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120,
                              env=self.env)

    def onboard(self) -> None:
        """An enterprise and its site, as the operator onboards them (devices are created at the site)."""
        for args in (("enterprises", "create", "--uscc", "91440300MA5G0001XL", "--name", "测试企业", "--name-en",
                      "Test Co", "--sector", "logistics", "--region-code", "440300", "--founded-on", "2019-01-01",
                      "--registered-capital", "1000000", "--legal-rep-name", "张三", "--legal-rep-id-number",
                      "P1234567", "--legal-rep-phone", "13800000000"),
                     ("sites", "create", "--enterprise", "1", "--name", "yard", "--kind", "yard", "--address",
                      "深圳市南山区1号", "--lat", "22.5", "--lon", "113.9")):
            done = self.cli(*args, "--json")
            assert done.returncode == 0, done.stderr
        self.site = json.loads(done.stdout)["id"]

    def device(self, *args: str) -> dict:
        done = self.cli("devices", "create", "--site", str(self.site), "--json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def points(self, device_id: int, key: str) -> list[dict]:
        done = self.cli("telemetry", "query", "--device", str(device_id), "--key", key, "--from", "2020-01-01",
                        "--to", "2030-01-01", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["rows"]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = Platform(tmp_path / "ws")
    p.cli("db", "upgrade")
    p.onboard()
    server = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(p.http_port),
                               "--mqtt-port", str(p.mqtt_port)], env=p.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                httpx.get(f"http://127.0.0.1:{p.http_port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.3)
        yield p
    finally:
        server.terminate()
        server.wait(timeout=30)


def _mosquitto_pub(platform: Platform, token: str, message: str, *extra: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("mosquitto_pub") is None:
        missing_service("mosquitto_pub (Debian package mosquitto-clients)")
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(platform.mqtt_port), "-u", token, "-q", "1",
                           "-t", "v1/devices/me/telemetry", "-m", message, *extra],
                          capture_output=True, text=True, timeout=30)


def test_mosquitto_pub_qos1_is_stored_and_bad_token_refused(platform: Platform) -> None:
    device = platform.device()
    for version in ("mqttv311", "mqttv5"):
        done = _mosquitto_pub(platform, device["token"], '{"ts": 1767225600000, "values": {"temperature": 21.5}}',
                              "-V", version)
        assert done.returncode == 0, done.stderr
    assert [r["value"] for r in platform.points(device["id"], "temperature")] == [21.5]  # re-sent: stored once
    refused = _mosquitto_pub(platform, "not-a-token", '{"t": 1}')
    assert refused.returncode != 0 and "not authori" in refused.stderr.lower()


def test_thingsboard_sdk_device_client(platform: Platform) -> None:
    from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo

    device = platform.device("--profile", "electricity_meter")
    client = TBDeviceMqttClient("127.0.0.1", port=platform.mqtt_port, username=device["token"])
    client.connect()
    try:
        deadline = time.monotonic() + 20
        while not client.is_connected() or not getattr(client, "rate_limits_received", True):
            assert time.monotonic() < deadline, "SDK never finished its session-limits handshake"
            time.sleep(0.1)
        results = [client.send_telemetry({"ts": 1767225600000 + i * 900_000, "values": {"power_kw": 10.0 + i}})
                   for i in range(20)]
        assert all(r.get() == TBPublishInfo.TB_ERR_SUCCESS for r in results)
        client.send_attributes({"firmware": "2.4.1"}).get()
        got: dict = {}
        client.request_attributes(client_keys=["firmware"], callback=lambda result, *_: got.update(result or {}))
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline, "no attribute response"
            time.sleep(0.1)
        assert got["client"] == {"firmware": "2.4.1"}
    finally:
        client.disconnect()
    assert len(platform.points(device["id"], "power_kw")) == 20


def test_gateway_sdk_writes_its_devices(platform: Platform) -> None:
    from tb_gateway_mqtt import TBGatewayMqttClient

    gateway = platform.device("--name", "gw-yard-1")
    client = TBGatewayMqttClient("127.0.0.1", port=platform.mqtt_port, username=gateway["token"])
    client.connect()
    try:
        deadline = time.monotonic() + 20
        while not client.is_connected():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        client.gw_connect_device("load-cell-7").get()
        info = client.gw_send_telemetry("load-cell-7", [{"ts": 1767225600000, "values": {"weight_t": 812.5}}])
        assert info.get() == 0
    finally:
        client.disconnect()
    status = platform.cli("devices", "create", "--site", str(platform.site), "--name", "load-cell-7",
                          "--json")  # the gateway created it
    assert status.returncode != 0 and "exists" in status.stderr


def test_columnar_form_over_mqtt_device_and_gateway(platform: Platform) -> None:
    """iotfin's columnar form published with the C client, on a device's topic and the gateway topic."""
    device = platform.device()
    ts = [1767225600000 + i * 60_000 for i in range(5)]
    done = _mosquitto_pub(platform, device["token"], json.dumps({"ts": ts, "values": {"kw": [1, 2, 3, 4, 5.5]}}))
    assert done.returncode == 0, done.stderr
    assert [(r["value"]) for r in platform.points(device["id"], "kw")] == [1, 2, 3, 4, 5.5]
    gateway = platform.device("--name", "gw-columns")
    meter = platform.device("--name", "meter-c")  # a device of the gateway's enterprise, named in its messages
    body = {"meter-c": {"ts": ts[:3], "values": {"kwh": [10.0, 10.5, 11.0], "on": [True, True, False]}}}
    done = _mosquitto_pub(platform, gateway["token"], json.dumps(body), "-t", "v1/gateway/telemetry")
    assert done.returncode == 0, done.stderr
    assert [r["value"] for r in platform.points(meter["id"], "kwh")] == [10.0, 10.5, 11.0]
    assert [r["value"] for r in platform.points(meter["id"], "on")] == [1.0, 1.0, 0.0]
