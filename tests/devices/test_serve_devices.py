"""Provenance, device state and claiming against a running `iotfin serve`, with real clients:
httpx, paho-mqtt (MQTT 5 and 3.1.1) and mosquitto_pub; the CLI reads what the server wrote."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from iotfin.devices.provenance import seal_ed25519, seal_hmac
from tests.openapi_world import operator_headers
from tests.services import missing_service

TS = 1_767_225_600_000


_handed_out: set[int] = set()


def _free_port() -> int:
    """A free port not handed out before in this run (two quick binds can get the same one)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


class Platform:
    def __init__(self, data_dir: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(data_dir)}
        self.http_port, self.mqtt_port = _free_port(), _free_port()
        self.server: subprocess.Popen[str] | None = None
        self.args: tuple[str, ...] = ()
        self.certs: dict[str, Path] = {}
        self.mqtts_port = 0
        self.auth: dict[str, str] = {}  # the operator's bearer token for the read endpoints

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120,
                              env=self.env)
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self, *extra: str) -> None:
        """Start `iotfin serve`; when a port picked as free was taken meanwhile (the machine is shared
        with other test runs), pick new ports and try again."""
        self.args = extra or self.args
        for _attempt in range(3):
            args = [a if a != "{mqtts}" else str(self.mqtts_port) for a in self.args]
            self.server = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(self.http_port),
                                            "--mqtt-port", str(self.mqtt_port), *args], env=self.env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 120
            while self.server.poll() is None:
                try:
                    httpx.get(f"{self.url}/healthz", timeout=1)
                    return
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "iotfin serve did not answer in 120 s"
                    time.sleep(0.3)
            error = self.server.stderr.read() if self.server.stderr else ""
            assert "address already in use" in error, error
            self.http_port, self.mqtt_port, self.mqtts_port = _free_port(), _free_port(), _free_port()
        raise AssertionError("no free ports for iotfin serve after 3 attempts")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def points(self, device_id: int, key: str) -> list[float]:
        from iotfin.telemetry.store import TelemetryStore

        store = TelemetryStore(Path(self.env["IOTFIN_DATA_DIR"]) / "telemetry")
        return store.series(device_id, key, 0, 2**62)["value"].to_pylist()

    def create(self, name: str | None = None, profile: str = "generic") -> dict[str, Any]:
        """A device made in this process (as another operator process would), without a CLI start-up."""
        from iotfin.app.workspace import Workspace
        from iotfin.core.settings import Settings

        ws = Workspace(Settings(data_dir=Path(self.env["IOTFIN_DATA_DIR"])))
        try:
            return ws.devices.create(name=name, profile=profile).to_json()
        finally:
            ws.close()

    def quarantine(self) -> dict[str, int]:
        from iotfin.ingest.quarantine import QuarantineStore

        return QuarantineStore(Path(self.env["IOTFIN_DATA_DIR"]) / "quarantine").counts()

    def guard(self) -> Any:
        from iotfin.app.workspace import Workspace
        from iotfin.core.settings import Settings

        return Workspace(Settings(data_dir=Path(self.env["IOTFIN_DATA_DIR"]))).device_runtime.guard

    def events(self, device_id: int, **params: Any) -> list[dict]:
        """Through the HTTP read endpoint (the CLI is checked once; it costs a process per call)."""
        answer = httpx.get(f"{self.url}/api/v1/devices/{device_id}/events", params=params, timeout=10,
                           headers=self.auth)
        assert answer.status_code == 200, answer.text
        return answer.json()["events"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One server for the module (starting one costs seconds on the shared machine): plain MQTT, MQTT
    over TLS with client certificates, and a profile whose devices time out after 2 s of silence."""
    from iotfin.app.workspace import Workspace
    from iotfin.core.settings import Settings
    from iotfin.devices.model import Profile
    from iotfin.devices.store import ensure_profiles

    folder = tmp_path_factory.mktemp("platform")
    p = Platform(folder / "ws")
    p.certs = _certificates(folder)
    ws = Workspace(Settings(data_dir=folder / "ws"))
    ws.initialise()
    with ws.engine.begin() as conn:
        ensure_profiles(conn, [Profile("chatty", "chatty", 1, 2, {})])
    p.auth = operator_headers(ws)
    ws.close()
    p.mqtts_port = _free_port()
    p.start("--mqtts-port", "{mqtts}", "--tls-cert", str(p.certs["server"]), "--tls-key",
            str(p.certs["server_key"]), "--tls-client-ca", str(p.certs["ca"]))
    try:
        yield p
    finally:
        p.stop()


class Paho:
    def __init__(self, port: int, token: str, v5: bool, client_id: str = "prov-test"):
        import paho.mqtt.client as mqtt

        self.acks: dict[int, int] = {}
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.client.username_pw_set(token)
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_publish = lambda c, u, mid, reason, props: self.acks.__setitem__(mid, reason.value)
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        assert self.connected.wait(10)

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        wait_for(lambda: info.mid in self.acks)
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _reading(i: int) -> bytes:
    return orjson.dumps({"ts": TS + i * 60_000, "values": {"t": float(i)}})


def test_http_hmac_required_rejects_tamper_replay_unsigned_and_counters_survive_restart(platform: Platform) -> None:
    before = platform.quarantine()
    device = platform.create()
    secret = platform.json("devices", "hmac-secret", str(device["id"]), "--require")["hmac_secret"]
    url = f"{platform.url}/api/v1/{device['token']}/telemetry"
    assert httpx.post(url, content=seal_hmac(secret, 1, _reading(1))).status_code == 200
    sent = {
        "replayed_counter": seal_hmac(secret, 1, _reading(2)),
        "bad_signature": seal_hmac(secret, 2, _reading(2)).replace(b"1.0", b"9.0").replace(b"2.0", b"9.0"),
        "unsigned": _reading(3),
    }
    for reason, body in sent.items():
        answer = httpx.post(url, content=body)
        assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["reason"] == reason and answer.json()["reason_zh"]
    assert httpx.post(url, content=seal_hmac(secret, 5, _reading(5))).status_code == 200
    assert len(platform.events(device["id"], tamper=True)) == 3
    tamper = platform.json("devices", "events", "--device", str(device["id"]), "--tamper")["events"]
    assert sorted(e["kind"] for e in tamper) == ["bad_signature", "replayed_counter", "unsigned"]
    assert all(e["detail"]["transport"] == "http" for e in tamper)
    after = platform.quarantine()
    assert {k: after[k] - before.get(k, 0) for k in sent} == dict.fromkeys(sent, 1)
    assert platform.guard().describe(device["id"])["counter"] == 5  # persisted with the commit
    platform.stop()
    platform.start()
    assert httpx.post(url, content=seal_hmac(secret, 5, _reading(6))).status_code == 403  # still a replay
    assert httpx.post(url, content=seal_hmac(secret, 6, _reading(6))).status_code == 200
    assert platform.points(device["id"], "t") == [1.0, 5.0, 6.0]


def test_mqtt_hmac_puback_codes_v5_and_v311(platform: Platform) -> None:
    device = platform.create()
    secret = platform.guard().issue_hmac_secret(device["id"], required=True)
    v5 = Paho(platform.mqtt_port, device["token"], v5=True)
    try:
        assert v5.publish("v1/devices/me/telemetry", seal_hmac(secret, 1, _reading(1))) == 0x00
        assert v5.publish("v1/devices/me/telemetry", seal_hmac(secret, 1, _reading(2))) == 0x87  # replay
        assert v5.publish("v1/devices/me/telemetry", _reading(3)) == 0x87  # unsigned
        assert v5.publish("v1/devices/me/telemetry", seal_hmac("00" * 32, 4, _reading(4))) == 0x87
        assert v5.publish("v1/devices/me/telemetry", seal_hmac(secret, 2, _reading(2))) == 0x00
    finally:
        v5.close()
    v311 = Paho(platform.mqtt_port, device["token"], v5=False, client_id="prov-311")
    try:  # 3.1.1 has no negative PUBACK: the rejected message is PUBACKed (final), quarantined and signalled
        assert v311.publish("v1/devices/me/telemetry", seal_hmac(secret, 2, _reading(9))) == 0
        assert v311.publish("v1/devices/me/telemetry", seal_hmac(secret, 3, _reading(3))) == 0
    finally:
        v311.close()
    assert platform.points(device["id"], "t") == [1.0, 2.0, 3.0]
    kinds = [e["kind"] for e in platform.events(device["id"], tamper="true")]
    assert sorted(kinds) == ["bad_signature", "replayed_counter", "replayed_counter", "unsigned"]


def test_gateway_ed25519_batch_signatures_over_http_bulk_and_mqtt(platform: Platform) -> None:
    gateway = platform.create("gw-1")
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    assert platform.json("devices", "public-key", str(gateway["id"]), public, "--require")["required"] is True
    meters = {name: platform.create(name)["id"] for name in ("meter-a", "meter-b")}
    batch = orjson.dumps({"meter-a": [{"ts": TS + i * 1000, "values": {"p": i}} for i in range(100)],
                          "meter-b": [{"ts": TS + i * 1000, "values": {"p": -i}} for i in range(100)]})
    bulk = f"{platform.url}/api/v1/{gateway['token']}/telemetry/bulk"
    assert httpx.post(bulk, content=seal_ed25519(key, 1, batch)).status_code == 200
    forged = httpx.post(bulk, content=seal_ed25519(Ed25519PrivateKey.generate(), 2, batch))
    assert forged.status_code == 403 and forged.json()["reason"] == "bad_signature"
    assert httpx.post(bulk, content=batch).json()["reason"] == "unsigned"
    client = Paho(platform.mqtt_port, gateway["token"], v5=True, client_id="gw-1")
    try:
        second = orjson.dumps({"meter-a": [{"ts": TS + 500_000, "values": {"p": 1000}}]})
        assert client.publish("v1/gateway/telemetry", seal_ed25519(key, 2, second)) == 0x00
        assert client.publish("v1/gateway/telemetry", seal_ed25519(key, 2, second)) == 0x87
    finally:
        client.close()
    stored = {name: platform.points(i, "p") for name, i in meters.items()}
    assert stored["meter-a"] == [float(i) for i in range(100)] + [1000.0]
    assert stored["meter-b"] == [float(-i) for i in range(100)]
    assert sorted(e["kind"] for e in platform.events(gateway["id"], tamper="true")) == [
        "bad_signature", "replayed_counter", "unsigned"]


def test_online_offline_connect_disconnect(platform: Platform) -> None:
    device = platform.create(profile="chatty")
    status_url = f"{platform.url}/api/v1/devices/{device['id']}/status"
    assert httpx.get(status_url, headers=platform.auth).json()["online"] is False
    client = Paho(platform.mqtt_port, device["token"], v5=True)
    try:
        assert httpx.get(status_url, headers=platform.auth).json()["state"] == "online"
        silent_since = time.monotonic()
        status = wait_for(lambda: (s := httpx.get(status_url, headers=platform.auth).json())["online"] is False and s, timeout=10)
        assert time.monotonic() - silent_since >= 1.0 and status["state_zh"] == "离线"
        client.publish("v1/devices/me/telemetry", b'{"x": 1}')  # activity brings it back
        assert httpx.get(status_url, headers=platform.auth).json()["online"] is True
    finally:
        client.close()
    kinds = wait_for(lambda: (k := [e["kind"] for e in platform.events(device["id"])][::-1])[-2:] == [
        "disconnect", "offline"] and k)
    assert kinds == ["connect", "online", "offline", "online", "disconnect", "offline"]
    stored = wait_for(lambda: (s := platform.json("devices", "status", "--device", str(device["id"])))
                      ["last_disconnect"] and s)
    assert stored["online"] is False and stored["source"] == "stored" and stored["last_connect"]
    assert httpx.get(f"{platform.url}/api/v1/devices/999999/status", headers=platform.auth).status_code == 404


def test_claiming_over_http_mqtt_and_cli(platform: Platform) -> None:
    from sqlalchemy import insert, select

    from iotfin.app.workspace import Workspace
    from iotfin.core.settings import Settings
    from iotfin.devices.tables import Device
    from iotfin.identity.tables import Enterprise

    ws = Workspace(Settings(data_dir=Path(platform.env["IOTFIN_DATA_DIR"])))
    first = platform.create("meter-claim-1")
    second = platform.create("meter-claim-2")
    with ws.engine.begin() as conn:
        row = conn.execute(select(Enterprise).where(Enterprise.id == first["enterprise_id"])).mappings().one()
        buyer = conn.execute(insert(Enterprise).values({**{k: v for k, v in row.items() if k != "id"},
                                                        "uscc": "91110000MA0000020X", "name": "买方"})
                             .returning(Enterprise.id)).scalar_one()
    claim = f"{platform.url}/api/v1/enterprises/{buyer}/devices/meter-claim-1/claim"
    assert httpx.post(claim, headers=platform.auth, json={"secretKey": "s3cret"}).status_code == 404  # the device has not announced
    device_claim = f"{platform.url}/api/v1/{first['token']}/claim"
    assert httpx.post(device_claim, content=b'{"secretKey": 5}').status_code == 400
    assert httpx.post(device_claim, json={"secretKey": "s3cret", "durationMs": 60000}).status_code == 200
    assert httpx.post(claim, headers=platform.auth, json={"secretKey": "wrong"}).status_code == 404
    claimed = httpx.post(claim, headers=platform.auth, json={"secretKey": "s3cret"})
    assert claimed.status_code == 200 and claimed.json()["enterprise_id"] == buyer
    assert httpx.post(claim, headers=platform.auth, json={"secretKey": "s3cret"}).status_code == 404  # single use
    if shutil.which("mosquitto_pub") is None:
        missing_service("mosquitto_pub (Debian package mosquitto-clients)")
    done = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(platform.mqtt_port), "-u", second["token"],
                           "-q", "1", "-t", "v1/devices/me/claim", "-m", '{"secretKey": "k2", "durationMs": 60000}'],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    wrong = httpx.post(f"{platform.url}/api/v1/enterprises/{buyer}/devices/meter-claim-2/claim", json={"secretKey": "k1"},
                       headers=platform.auth)
    assert wrong.status_code == 404 and wrong.headers["content-type"] == "application/problem+json"
    result = platform.json("devices", "claim", "--name", "meter-claim-2", "--secret", "k2", "--enterprise", str(buyer))
    assert result["device_id"] == second["id"] and result["previous_enterprise_id"] == second["enterprise_id"]
    with ws.engine.connect() as conn:
        owners = dict(conn.execute(select(Device.name, Device.enterprise_id)
                                   .where(Device.name.like("meter-claim-%"))).all())
    ws.close()
    assert owners == {"meter-claim-1": buyer, "meter-claim-2": buyer}
    assert [e["kind"] for e in platform.events(second["id"], kind="claimed")] == ["claimed"]


# --- X.509 over TLS -------------------------------------------------------------------------------------


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, two device certificates from the CA, and one from a rogue CA."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    paths: dict[str, Path] = {}

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[name + "_key"] = folder / f"{name}.key"
        paths[name + "_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))

    def issue(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, ca: bool = False,
              ip: str | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer[0].subject if issuer else subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ip:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                            critical=False)
        cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
        write(name, cert, key)
        return cert, key

    ca = issue("ca", None, ca=True)
    issue("server", ca, ip="127.0.0.1")
    issue("device", ca)
    issue("stranger", ca)
    rogue = issue("rogue_ca", None, ca=True)
    issue("rogue_device", rogue)
    return paths


def _mosquitto_tls(platform: Platform, port: int, certs: dict[str, Path], device: str, payload: str,
                   ca: str = "ca") -> subprocess.CompletedProcess[str]:
    if shutil.which("mosquitto_pub") is None:
        missing_service("mosquitto_pub (Debian package mosquitto-clients)")
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile", str(certs[ca]),
                           "--cert", str(certs[device]), "--key", str(certs[device + "_key"]), "-q", "1",
                           "-V", "mqttv5", "-i", device, "-t", "v1/devices/me/telemetry", "-m", payload],
                          capture_output=True, text=True, timeout=30)


def test_x509_client_certificates_over_mqtts(platform: Platform) -> None:
    import ssl

    certs = platform.certs
    device = platform.create("x509-meter")
    registered = platform.json("devices", "x509", str(device["id"]), "--cert", str(certs["device"]))
    assert len(registered["cert_sha256"]) == 64
    from iotfin.app.workspace import Workspace
    from iotfin.core.errors import ValidationError
    from iotfin.core.settings import Settings

    ws = Workspace(Settings(data_dir=Path(platform.env["IOTFIN_DATA_DIR"])))
    with pytest.raises(ValidationError, match="X.509"):
        ws.devices.set_x509(device["id"], certs["device_key"].read_bytes())
    mqtts = platform.mqtts_port  # registered while the server runs: a certificate is looked up at connect
    sent = _mosquitto_tls(platform, mqtts, certs, "device", '{"ts": 1767225600000, "values": {"v": 7}}')
    assert sent.returncode == 0, sent.stderr
    unknown = _mosquitto_tls(platform, mqtts, certs, "stranger", '{"v": 1}')  # a good CA, but no device has it
    assert unknown.returncode != 0 and "not authori" in unknown.stderr.lower()
    rogue = _mosquitto_tls(platform, mqtts, certs, "rogue_device", '{"v": 1}')  # TLS refuses the chain
    assert rogue.returncode != 0
    # a device without a certificate may still use TLS with its access token (paho, MQTT 3.1.1)
    import paho.mqtt.client as mqtt

    token_device = platform.create()
    acks: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-token", protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(certs["ca"]), cert_reqs=ssl.CERT_REQUIRED)
    client.username_pw_set(token_device["token"])
    client.on_publish = lambda c, u, mid, reason, props: acks.append(mid)
    client.connect("127.0.0.1", mqtts)
    client.loop_start()
    try:
        info = client.publish("v1/devices/me/telemetry", b'{"ts": 1767225600000, "values": {"v": 8}}', qos=1)
        info.wait_for_publish(10)
        wait_for(lambda: info.mid in acks)
    finally:
        client.disconnect()
        client.loop_stop()
    assert platform.points(device["id"], "v") == [7.0] and platform.points(token_device["id"], "v") == [8.0]
    connects = [e["detail"] for e in platform.events(device["id"], kind="connect")]
    assert connects and connects[0]["credential"] == "x509"
    ws.devices.revoke_credentials(device["id"])  # by another process than the server's
    ws.close()
    revoked = _mosquitto_tls(platform, mqtts, certs, "device", '{"v": 2}')
    assert revoked.returncode != 0 and "not authori" in revoked.stderr.lower()
