"""Broker mode: an MQTT broker (Mosquitto on one node, EMQX for clusters) in front of iotfin.

Devices connect to the broker, not to iotfin. The broker authenticates them with credentials iotfin
provisions into it (`MosquittoAccounts`: Mosquitto's password file, reloaded with SIGHUP) and lets a
device publish only on its own topic, `devices/<username>/telemetry` with username `d<device id>`
(ACL `pattern write devices/%u/telemetry`), so the topic carries an identity the broker checked.

iotfin's ingest workers consume with an MQTT 5 shared subscription
(`$share/<group>/devices/+/telemetry`, QoS 1) over persistent sessions (clean start off, a session
expiry), one client id per worker index. Each message goes through the same device API handler as a
direct MQTT PUBLISH (provenance checks, validation, quarantine, group commit) and is acknowledged to
the broker only after its readings are durably stored. So:

* a device's PUBACK (from the broker) means the broker holds the message, not that iotfin stored it;
* a worker killed before acknowledging leaves its messages in its session at the broker, which
  redelivers them when a worker with that client id reconnects (the supervisor restarts it);
* a message may so be stored twice (stored, then killed before the PUBACK reached the broker): the
  store keeps the first accepted value of a (device, key, ts), so a reading is read back once.

See docs/ingest-scale.md.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iotfin.transports.mqtt_device import (
    IMPLEMENTATION_ERROR,
    NOT_AUTHORIZED,
    PAYLOAD_INVALID,
    SUCCESS,
    TELEMETRY,
    DeviceApiHandler,
    DeviceIdentity,
)

log = logging.getLogger(__name__)

TOPIC_RE = re.compile(r"devices/d(\d{1,18})/telemetry")
# Reason codes after which the message was handled for good (stored, or quarantined and counted):
# acknowledge it. Anything else means nothing was stored: leave it unacknowledged for redelivery.
FINAL = frozenset({SUCCESS, NOT_AUTHORIZED, PAYLOAD_INVALID})


def device_username(device_id: int) -> str:
    return f"d{device_id}"


def device_topic(device_id: int) -> str:
    return f"devices/{device_username(device_id)}/telemetry"


def mosquitto_acl(ingest_username: str) -> str:
    """The ACL file: a device writes only its own topic; the ingest user reads every device topic."""
    return (f"user {ingest_username}\n"
            "topic read devices/+/telemetry\n"
            "topic read $share/#\n\n"
            "pattern write devices/%u/telemetry\n")


class MosquittoAccounts:
    """Device credentials in a Mosquitto password file, managed with `mosquitto_passwd` (which hashes
    them as the broker expects: PBKDF2-SHA512) under a `flock`, the broker reloaded with SIGHUP
    (its pid read from `pid_file`) so a change applies to the next connection attempt."""

    def __init__(self, passwd_file: Path, pid_file: Path | None = None, binary: str = "mosquitto_passwd"):
        self.passwd_file = Path(passwd_file)
        self.pid_file = pid_file
        self.binary = binary

    def provision(self, device_id: int, password: str | None = None) -> dict[str, str]:
        """Give a device broker credentials (a new password each time); returns them with its topic."""
        password = password or secrets.token_urlsafe(24)
        username = device_username(device_id)
        with self._locked():
            self._run("-b", str(self.passwd_file), username, password)
        self.reload()
        return {"username": username, "password": password, "topic": device_topic(device_id)}

    def add_user(self, username: str, password: str) -> None:
        """A non-device account (the ingest workers' own)."""
        with self._locked():
            self._run("-b", str(self.passwd_file), username, password)
        self.reload()

    def revoke(self, *device_ids: int) -> int:
        """Remove the devices' credentials; returns how many were present."""
        removed = 0
        with self._locked():
            present = self.usernames()
            for device_id in device_ids:
                if device_username(device_id) in present:
                    self._run("-D", str(self.passwd_file), device_username(device_id))
                    removed += 1
        if removed:
            self.reload()
        return removed

    def usernames(self) -> set[str]:
        if not self.passwd_file.exists():
            return set()
        return {line.split(":", 1)[0] for line in self.passwd_file.read_text().splitlines() if ":" in line}

    def reload(self) -> None:
        if self.pid_file is None or not self.pid_file.exists():
            return
        os.kill(int(self.pid_file.read_text().strip()), signal.SIGHUP)

    def _locked(self) -> Any:
        self.passwd_file.parent.mkdir(parents=True, exist_ok=True)
        self.passwd_file.touch(exist_ok=True)
        return _FileLock(self.passwd_file.with_name(self.passwd_file.name + ".lock"))

    def _run(self, *args: str) -> None:
        done = subprocess.run([self.binary, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mosquitto_passwd {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")


class _FileLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


@dataclass(slots=True, eq=False)  # hashed by identity: the handler keeps sessions in sets
class _BrokerSession:
    """What the device API handler needs of a session: the identity the broker checked."""

    identity: DeviceIdentity

    async def close(self, reason: int) -> None:  # a revocation: the broker, not iotfin, holds the connection
        return None

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:  # no replies through the broker
        return None


@dataclass
class ConsumerStats:
    received: int = 0
    acknowledged: int = 0
    stored: int = 0
    rejected: int = 0      # acknowledged, quarantined or refused (0x87/0x99) or a topic outside devices/d<id>/
    failed: int = 0        # not stored, not acknowledged: left to the broker to redeliver
    connects: int = 0
    errors: list[str] = field(default_factory=list)


class BrokerConsumer:
    """One ingest worker's persistent MQTT 5 session at the broker (paho-mqtt v2, its own network
    thread); messages are handled on the asyncio loop and acknowledged after the durable commit."""

    def __init__(self, handler: DeviceApiHandler, host: str, port: int, *, client_id: str,
                 username: str | None = None, password: str | None = None, group: str = "iotfin",
                 session_expiry_s: int = 3600, receive_maximum: int = 2000):
        self.handler = handler
        self.host, self.port = host, port
        self.filter = f"$share/{group}/devices/+/telemetry"
        self.stats = ConsumerStats()
        self._sessions: dict[int, _BrokerSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: asyncio.Event | None = None
        self._connected: asyncio.Event | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  manual_ack=True)
        if username is not None:
            self.client.username_pw_set(username, password)
        self._connect_properties = Properties(PacketTypes.CONNECT)
        self._connect_properties.SessionExpiryInterval = session_expiry_s
        self._connect_properties.ReceiveMaximum = receive_maximum
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 5)

    async def run(self, stop: asyncio.Event) -> bool:
        """Consume until `stop` is set or a commit fails; returns True on a failed commit."""
        self._loop = asyncio.get_running_loop()
        self._failed = asyncio.Event()
        self._connected = asyncio.Event()
        await asyncio.to_thread(self.client.connect, self.host, self.port, keepalive=30, clean_start=False,
                                properties=self._connect_properties)
        self.client.loop_start()
        try:
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._failed.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            if self._tasks and not self._failed.is_set():
                await asyncio.wait(set(self._tasks), timeout=10)  # let commits in flight be acknowledged
        finally:
            self.client.disconnect()
            self.client.loop_stop()
        return self._failed.is_set()

    async def connected(self, timeout_s: float = 10.0) -> None:
        assert self._connected is not None
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    # --- paho's network thread -----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the ingest worker: %s", reason)
            return
        self.stats.connects += 1
        # Subscribing again on a resumed session is harmless and covers a session that expired.
        client.subscribe(self.filter, qos=1)
        assert self._loop is not None and self._connected is not None
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._spawn, message.mid, message.qos, message.topic, message.payload)

    # --- the event loop ------------------------------------------------------------------------

    def _spawn(self, mid: int, qos: int, topic: str, payload: bytes) -> None:
        self.stats.received += 1
        task = asyncio.ensure_future(self._handle(mid, qos, topic, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, mid: int, qos: int, topic: str, payload: bytes) -> None:
        assert self._failed is not None
        if self._failed.is_set():
            return  # a commit failed: this one too stays unacknowledged, for redelivery
        match = TOPIC_RE.fullmatch(topic)
        if match is None:
            code = NOT_AUTHORIZED  # the ACL lets no one else write there; count it and let it go
        else:
            device_id = int(match.group(1))
            session = self._sessions.get(device_id)
            if session is None:
                session = self._sessions[device_id] = _BrokerSession(DeviceIdentity(device_id))
            try:
                code = await self.handler.on_publish(session, TELEMETRY, payload, qos)
            except Exception as exc:  # noqa: BLE001 - counted; the message is left for redelivery
                log.exception("ingest of a broker message failed")
                self.stats.errors.append(repr(exc))
                code = IMPLEMENTATION_ERROR
        if code not in FINAL:
            self.stats.failed += 1
            self._failed.set()
            return
        if code == SUCCESS:
            self.stats.stored += 1
        else:
            self.stats.rejected += 1
        if qos > 0:
            self.client.ack(mid, qos)
        self.stats.acknowledged += 1
