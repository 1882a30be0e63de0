"""A token revoked by the operator (`iotfin devices revoke`, another process) while its device is
connected: the live session is closed, reconnecting and HTTP are refused, and what is stored is only
what was sent before the server learnt of the revocation (within its 1 s poll)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import orjson

from iotfin.transports.revocations import REVOCATION_POLL_S
from tests.ingest_faults.conftest import T0, Serve
from tests.ingest_faults.test_bad_input import TELEMETRY, ack
from tests.ingest_mqtt import rawclient as raw


def test_revoked_token_mid_session(serve: Serve) -> None:
    device = serve.device()
    bystander = serve.device()
    sent_at: dict[int, float] = {}
    acked: set[int] = set()
    with raw.RawClient(serve.mqtt_port) as client, raw.RawClient(serve.mqtt_port) as other:
        client.handshake(client_id="soon-revoked", username=device.token, level=5)
        other.handshake(client_id="bystander", username=bystander.token, level=5)
        for i in range(1, 6):
            sent_at[i] = time.monotonic()
            client.send(raw.publish(TELEMETRY, orjson.dumps({"ts": T0 + i, "values": {"n": i}}), qos=1, packet_id=i,
                                    level=5))
            assert ack(client) == (i, 0)
            acked.add(i)
        done = subprocess.run([sys.executable, "-m", "iotfin", "devices", "revoke", str(device.id)], env=serve.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        revoked_at = time.monotonic()
        # keep publishing, as a device that does not know yet would, until the server closes the session
        closed_by: tuple[int, bytes] | None = None
        i = 5
        client.sock.settimeout(0.05)
        while time.monotonic() < revoked_at + 10:
            i += 1
            sent_at[i] = time.monotonic()
            try:
                client.send(raw.publish(TELEMETRY, orjson.dumps({"ts": T0 + i, "values": {"n": i}}), qos=1,
                                        packet_id=i, level=5))
                packet = client.read()
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if packet is None:
                break
            if packet[0] == 0x40 and packet[1][2:3] in (b"", b"\x00"):
                acked.add(int.from_bytes(packet[1][:2], "big"))
            elif packet[0] == 0xE0:
                closed_by = packet
                break
        closed_at = time.monotonic()
        assert closed_by is not None and closed_by[1][0] == 0x87, closed_by  # DISCONNECT: not authorised
        assert closed_at - revoked_at < REVOCATION_POLL_S + 2
        # the other device's session is untouched
        other.send(raw.publish(TELEMETRY, b'{"alive": 1}', qos=1, packet_id=1, level=5))
        assert ack(other) == (1, 0)
    with raw.RawClient(serve.mqtt_port) as again:
        again.send(raw.connect(client_id="soon-revoked", username=device.token, level=5))
        assert again.expect(0x20)[1] == 0x86  # bad user name or password
    response = httpx.post(f"{serve.http}/api/v1/{device.token}/telemetry", content=b'{"n": 0}', timeout=10)
    assert response.status_code == 401
    stored = {int(v) for _ts, v in serve.points(device.id, "n")}
    assert acked <= stored  # every acknowledged reading is there
    late = [n for n in stored if sent_at[n] > revoked_at + REVOCATION_POLL_S + 1]
    assert late == [], "stored readings sent after the server had learnt of the revocation"


def test_a_silent_session_is_closed_when_its_token_is_revoked(serve: Serve) -> None:
    """A device that connected and has sent nothing since is disconnected too: it must not keep a
    session it could publish on later."""
    device = serve.device()
    bystander = serve.device()
    with raw.RawClient(serve.mqtt_port) as silent, raw.RawClient(serve.mqtt_port) as other:
        silent.handshake(client_id="silent", username=device.token, level=5)
        other.handshake(client_id="quiet-bystander", username=bystander.token)  # MQTT 3.1.1
        done = subprocess.run([sys.executable, "-m", "iotfin", "devices", "revoke", str(device.id)], env=serve.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        silent.sock.settimeout(REVOCATION_POLL_S + 5)
        assert silent.expect(0xE0)[0] == 0x87  # DISCONNECT: not authorised, without a packet from the device
        assert silent.closed()
        other.send(raw.PINGREQ)
        assert other.expect(0xD0) == b""  # the other device's silent session stays
