"""The ThingsBoard device API over MQTT, on top of the platform's MQTT endpoint (`ingest.mqtt`).

Identity is the session's: a device authenticates once (username = access token, or MQTT basic
credentials) and every topic is relative to it (`v1/devices/me/...`), so a device can only ever
write its own data; a gateway writes only devices of its own enterprise.

PUBACK rules (PUBACK is sent only when this handler returns, i.e. after the durable commit):

| outcome | MQTT 5 reason code | MQTT 3.1.1 |
|---|---|---|
| every reading stored | 0x00 success | PUBACK |
| some or all readings rejected (quarantined with reasons) | 0x99 payload format invalid | PUBACK (3.1.1 has no reason codes; the rejection is counted in quarantine) |
| topic outside the device API, or another enterprise's device | 0x87 not authorised | PUBACK |
| provenance failure: bad signature/MAC, replayed counter, unsigned where required (quarantined, tamper event) | 0x87 not authorised | PUBACK (final: resending the same message cannot help) |
| internal failure (nothing stored) | 0x83 implementation specific error | connection closed, so the client resends |
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from iotfin.api.platform import Platform
from iotfin.core.errors import ValidationError
from iotfin.core.time import now_ms
from iotfin.devices import claims
from iotfin.devices.guard import Verified
from iotfin.devices.provenance import ProvenanceRejected
from iotfin.ingest.group_commit import GroupCommitter
from iotfin.ingest.payloads import (
    MAX_PAYLOAD_BYTES,
    MalformedPayload,
    ParsedTelemetry,
    load_json,
    parse_telemetry,
)
from iotfin.transports.provenance import activity, store_verified, verify_message

log = logging.getLogger(__name__)

SUCCESS, UNSPECIFIED, IMPLEMENTATION_ERROR, NOT_AUTHORIZED, PAYLOAD_INVALID = 0x00, 0x80, 0x83, 0x87, 0x99
TRANSPORT = "mqtt"

TELEMETRY = "v1/devices/me/telemetry"
ATTRIBUTES = "v1/devices/me/attributes"
ATTRIBUTES_REQUEST = "v1/devices/me/attributes/request/"
ATTRIBUTES_RESPONSE = "v1/devices/me/attributes/response/"
RPC_REQUEST = "v1/devices/me/rpc/request/"
RPC_RESPONSE = "v1/devices/me/rpc/response/"
GATEWAY_CONNECT = "v1/gateway/connect"
GATEWAY_DISCONNECT = "v1/gateway/disconnect"
GATEWAY_TELEMETRY = "v1/gateway/telemetry"
GATEWAY_ATTRIBUTES = "v1/gateway/attributes"
CLAIM = "v1/devices/me/claim"
# A device's telemetry messages may be handled together (one group commit for a session's pipelined
# messages; the store orders by timestamp, not arrival). Attributes and gateway connects stay in
# order: two attribute writes of one session must not race.
CONCURRENT_TOPICS = frozenset({TELEMETRY})

# What the ThingsBoard SDKs ask for with the `getSessionLimits` RPC before sending; no rate limits
# here ("" = none), a payload limit equal to ours, and a generous in-flight window.
SESSION_LIMITS = {"maxPayloadSize": MAX_PAYLOAD_BYTES, "maxInflightMessages": 1000,
                  "rateLimits": {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""}}


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    device_id: int


class TokenLookups:
    """Access tokens of connecting devices, resolved in batches, as telemetry is group-committed: the
    tokens that arrive while one lookup runs share the next query (up to `MAX_BATCH`). A reconnect
    storm of 10,000 devices then takes as few as 20 queries and thread hand-offs instead of 10,000
    (and their garbage, whose high-water mark a process's memory keeps). Cached tokens are
    answered at once, on the event loop."""

    MAX_BATCH = 500

    def __init__(self, devices: Any):
        self.devices = devices
        self._waiting: dict[str, list[asyncio.Future[int | None]]] = {}
        self._drainer: asyncio.Task[None] | None = None  # held here: the loop holds tasks weakly

    async def resolve(self, token: str) -> int | None:
        cached = self.devices.cached_token(token)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self._waiting.setdefault(token, []).append(future)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                tokens = list(itertools.islice(self._waiting, self.MAX_BATCH))
                batch = {token: self._waiting.pop(token) for token in tokens}
                try:
                    found = await asyncio.to_thread(self.devices.resolve_tokens, tokens)
                except Exception as exc:  # each waiting connection answers "server unavailable"
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for token, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(token))
        finally:
            self._drainer = None


class DeviceApiHandler:
    def __init__(self, ws: Platform, committer: GroupCommitter | None = None):
        self.ws = ws
        self.committer = committer or GroupCommitter(ws.ingest, TRANSPORT, on_commit=ws.device_runtime.guard.persist)
        # the MQTT servers this handler answers for (`serving`): their sessions are where a revoked
        # device's connections are found, so no per-device index of sessions is kept
        self.servers: list[Any] = []
        self.tokens = TokenLookups(ws.devices)
        self._loop: asyncio.AbstractEventLoop | None = None
        ws.devices.revocation_listeners.append(self._on_revoked)

    # --- MqttHandler ---------------------------------------------------------------------------

    async def authenticate(self, client_id: str, username: str | None, password: bytes | None,
                           protocol_level: int) -> DeviceIdentity | None:
        self._loop = asyncio.get_running_loop()
        if username and not password:  # an access token: cached, or batched with other connections'
            device_id = await self.tokens.resolve(username)
        else:
            device_id = await asyncio.to_thread(self.ws.devices.resolve_mqtt, client_id, username, password)
        return self._connected(device_id, client_id, protocol_level, "access_token" if not password else "mqtt_basic")

    async def authenticate_certificate(self, client_id: str, certificate_der: bytes,
                                       protocol_level: int) -> DeviceIdentity | None:
        """MQTT over TLS with a client certificate: the device is the one holding that X.509 credential."""
        self._loop = asyncio.get_running_loop()
        device_id = await asyncio.to_thread(self.ws.devices.resolve_certificate, certificate_der)
        return self._connected(device_id, client_id, protocol_level, "x509")

    def _connected(self, device_id: int | None, client_id: str, protocol_level: int, how: str) -> DeviceIdentity | None:
        if device_id is None:
            return None
        self.ws.device_runtime.ensure_running()
        self.ws.device_runtime.state.connected(device_id, {"transport": TRANSPORT, "client_id": client_id,
                                                           "mqtt": "5" if protocol_level == 5 else "3.1.1",
                                                           "credential": how})
        return DeviceIdentity(device_id)

    async def on_subscribe(self, session: Any, topic_filter: str, qos: int) -> int:
        allowed = topic_filter.startswith(("v1/devices/me/", "v1/gateway/"))
        return min(qos, 1) if allowed else NOT_AUTHORIZED

    async def on_disconnect(self, session: Any, reason: str) -> None:
        identity = getattr(session, "identity", None)
        if identity is not None:
            self.ws.device_runtime.state.disconnected(identity.device_id, {"transport": TRANSPORT, "reason": reason})

    async def on_publish(self, session: Any, topic: str, payload: bytes, qos: int) -> int:
        device_id = session.identity.device_id
        activity(self.ws, device_id)
        try:
            if topic == TELEMETRY:
                return await self._telemetry(device_id, payload)
            if topic == ATTRIBUTES:
                values = load_json(payload)
                if not isinstance(values, dict) or not values:
                    raise MalformedPayload("malformed_payload", "attributes must be a non-empty object")
                await asyncio.to_thread(self.ws.devices.save_attributes, device_id, "client", values)
                return SUCCESS
            if topic.startswith(ATTRIBUTES_REQUEST):
                return await self._attribute_request(session, device_id, topic.removeprefix(ATTRIBUTES_REQUEST), payload)
            if topic.startswith(RPC_REQUEST):
                return await self._client_rpc(session, topic.removeprefix(RPC_REQUEST), payload)
            if topic.startswith(RPC_RESPONSE):
                return SUCCESS  # a device answering a server-side RPC: accepted (server RPC comes with monitoring)
            if topic == GATEWAY_CONNECT or topic == GATEWAY_DISCONNECT:
                return await self._gateway_connect(device_id, payload, connect=topic == GATEWAY_CONNECT)
            if topic == GATEWAY_TELEMETRY:
                return await self._gateway_telemetry(device_id, payload)
            if topic == GATEWAY_ATTRIBUTES:
                return await self._gateway_attributes(device_id, payload)
            if topic == CLAIM:
                secret, duration = claims.parse_claim_request(load_json(payload) if payload.strip() else None)
                await asyncio.to_thread(claims.announce, self.ws.engine, device_id, secret, duration)
                return SUCCESS
            return NOT_AUTHORIZED
        except ProvenanceRejected:
            return NOT_AUTHORIZED  # quarantined and signalled by verify_message
        except ValidationError as exc:
            await asyncio.to_thread(self.ws.quarantine.put_raw, payload.decode("utf-8", "replace"),
                                    "malformed_payload", TRANSPORT, device_id)
            log.info("device %s: %s", device_id, exc)
            return PAYLOAD_INVALID
        except MalformedPayload as exc:
            await asyncio.to_thread(self.ws.quarantine.put_raw, payload.decode("utf-8", "replace"), exc.reason,
                                    TRANSPORT, device_id)
            return PAYLOAD_INVALID

    # --- topics --------------------------------------------------------------------------------

    async def _telemetry(self, device_id: int, payload: bytes) -> int:
        verified = await verify_message(self.ws, device_id, load_json(payload), payload, TRANSPORT)
        parsed = parse_telemetry(verified.data, device_id, now_ms())
        return await self._store(parsed, device_id, verified)

    async def _store(self, parsed: ParsedTelemetry, device_id: int, verified: Verified) -> int:
        _result, rejected = await store_verified(self.ws, self.committer, parsed, device_id, verified)
        return PAYLOAD_INVALID if rejected else SUCCESS

    async def _attribute_request(self, session: Any, device_id: int, request_id: str, payload: bytes) -> int:
        body = load_json(payload) if payload else {}
        if not isinstance(body, dict):
            raise MalformedPayload("malformed_payload", "attribute request must be an object")

        def keys(name: str) -> list[str] | None:
            value = body.get(name)
            return None if value is None else [k for k in str(value).split(",") if k]

        reply = await asyncio.to_thread(self.ws.devices.attributes, device_id, keys("clientKeys"), keys("sharedKeys"))
        await session.publish(ATTRIBUTES_RESPONSE + request_id, orjson.dumps(reply), qos=1)
        return SUCCESS

    async def _client_rpc(self, session: Any, request_id: str, payload: bytes) -> int:
        body = load_json(payload)
        method = body.get("method") if isinstance(body, dict) else None
        if method == "getSessionLimits":
            reply: dict[str, Any] = SESSION_LIMITS
        elif method == "getCurrentTime":
            reply = {"time": now_ms()}
        else:
            reply = {"error": f"unsupported method {method!r}"}
        await session.publish(RPC_RESPONSE + request_id, orjson.dumps(reply), qos=1)
        return SUCCESS

    async def _gateway_connect(self, gateway_id: int, payload: bytes, connect: bool) -> int:
        body = load_json(payload)
        name = body.get("device") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise MalformedPayload("malformed_payload", 'gateway connect needs {"device": "<name>"}')
        if not connect:
            return SUCCESS
        profile = body.get("type") if isinstance(body.get("type"), str) else "generic"
        device = await asyncio.to_thread(self.ws.devices.ensure_gateway_device, gateway_id, name, profile)
        return SUCCESS if device is not None else NOT_AUTHORIZED

    async def _gateway_names(self, gateway_id: int, payload: bytes,
                             verified: Verified | None = None) -> tuple[dict[str, Any], dict[str, int]]:
        body = verified.data if verified is not None else load_json(payload)
        if not isinstance(body, dict) or not body:
            raise MalformedPayload("malformed_payload", "gateway messages must be an object: device name -> data")
        ids = {}
        for name in body:
            device = await asyncio.to_thread(self.ws.devices.ensure_gateway_device, gateway_id, str(name), "generic")
            if device is not None:
                ids[name] = device
        return body, ids

    async def _gateway_telemetry(self, gateway_id: int, payload: bytes) -> int:
        # one signature (or MAC) for the whole batch of the gateway's devices, verified once
        verified = await verify_message(self.ws, gateway_id, load_json(payload), payload, TRANSPORT)
        body, ids = await self._gateway_names(gateway_id, payload, verified)
        activity(self.ws, *ids.values())
        parsed = ParsedTelemetry()
        now = now_ms()
        for name, data in body.items():
            if name in ids:
                parse_telemetry(data, ids[name], now, parsed)
            else:
                parsed.rejected.append(("unknown_device", str(name), None))
        return await self._store(parsed, gateway_id, verified)

    async def _gateway_attributes(self, gateway_id: int, payload: bytes) -> int:
        body, ids = await self._gateway_names(gateway_id, payload)
        for name, values in body.items():
            if name in ids and isinstance(values, dict) and values:
                await asyncio.to_thread(self.ws.devices.save_attributes, ids[name], "client", values)
        return SUCCESS if len(ids) == len(body) else NOT_AUTHORIZED

    # --- revocation ----------------------------------------------------------------------------

    def serving(self, server: Any) -> None:
        """Called by each MqttServer that starts with this handler."""
        self.servers.append(server)

    def _on_revoked(self, device_id: int) -> None:
        """Called from whatever thread revoked the credential: close that device's live sessions,
        silent ones included (a scan of the servers' sessions: revocations are rare, connections many)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_sessions_of, device_id)

    def _close_sessions_of(self, device_id: int) -> None:
        for server in self.servers:
            for session in server.sessions:
                if session.identity.device_id == device_id:
                    asyncio.ensure_future(session.close(NOT_AUTHORIZED))
