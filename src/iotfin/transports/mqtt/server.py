"""The MQTT server: one `Session` (an asyncio Protocol) per connection, in front of one `MqttHandler`.

Rules this server keeps (the device-API semantics live in the handler, `iotfin.transports.mqtt_device`):

* **Acknowledge only what is durable.** A PUBLISH is handed to `handler.on_publish`; its PUBACK
  (with the returned reason code on MQTT 5) is written only after that coroutine returns.
* **Order.** A session's PUBLISH, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT go through one queue and
  reach the handler one at a time, in the order received, so PUBACKs leave in order
  (MQTT 3.1.1 §4.6) and a subscription is in place before the next request is handled. Reading
  goes on meanwhile (pipelined) until the queue holds `PAUSE_READING_AT` packets. Sessions never
  wait for each other, so a handler's group commit batches across them.
* **MQTT 3.1.1 has no negative PUBACK**, so a nonzero `on_publish` code is turned into:
  a PUBACK (PUBREC for QoS 2) when the rejection is final — 0x87 not authorized, 0x90 topic name
  invalid, 0x99 payload format invalid: the message was handled (quarantined, counted) and
  resending cannot help; otherwise (0x80, 0x83, 0x97, an exception: nothing was stored) the
  connection is closed without a PUBACK, so the client resends after reconnecting — as ThingsBoard
  does. A QoS 0 message gets no reply either way. MQTT 5 always gets the PUBACK with the code.
* **QoS 2.** MQTT 5: CONNACK says Maximum QoS 1, and a QoS 2 PUBLISH gets DISCONNECT 0x9B (QoS not
  supported), as the spec requires after that. MQTT 3.1.1 cannot refuse a QoS, so QoS 2 is
  accepted and answered with the QoS 2 handshake (PUBREC after `on_publish` returns, PUBCOMP on
  PUBREL) — with at-least-once meaning, as no session state outlives a connection. Subscriptions
  are granted at most QoS 1; an invalid topic filter gets a SUBACK failure (MQTT 5 0x8F, 3.1.1
  0x80) rather than a closed connection, and `handler.on_subscribe` decides the rest.
* **A handler exception** in `on_publish` counts as 0x83 (or the code of a typed `IotfinError`,
  see `reason_codes.reason_code_for`): MQTT 5 PUBACK with that code, MQTT 3.1.1 close; the session
  and the server carry on.
* **Bad bytes never crash anything.** A malformed packet or protocol violation closes that
  connection (MQTT 5: DISCONNECT 0x81/0x82/... first, once CONNACK went out); a packet larger than
  `max_packet_size` is refused from its fixed header (MQTT 5: DISCONNECT 0x95) without being
  buffered; the first packet must be a CONNECT of at most `CONNECT_PACKET_LIMIT` bytes, within
  `connect_timeout_s`. Keep-alive: no packet for 1.5 × the client's keep-alive closes the
  connection (MQTT 5: DISCONNECT 0x8D); keep-alive 0 means none (spec).
* **Sessions are not persisted** (the platform is the only subscriber and devices resubscribe on
  connect, as the ThingsBoard SDKs do): CONNACK session-present is always 0 and MQTT 5 clients are
  told Session Expiry Interval 0. A second connection with the same identity and client id takes
  over the first (closed with 0x8E); connections of different identities never touch each other,
  even when devices share a client id. An empty client id gets an assigned one (MQTT 5: Assigned
  Client Identifier); 3.1.1 with clean session 0 and no client id is refused (return code 2).
* **Not supported, on purpose:** will messages are parsed and then ignored (the platform is the only
  subscriber; it learns of a lost device from `on_disconnect`); the retain flag on a device's
  PUBLISH is ignored (no other subscriber could receive a retained message); topic aliases
  (Topic Alias Maximum 0: an alias gets DISCONNECT 0x94); subscription identifiers and shared
  subscriptions (CONNACK says so); enhanced authentication (CONNACK 0x8C). Server-to-client QoS 1
  messages are not retransmitted within a connection (MQTT forbids it); unacknowledged ones are
  lost with the connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl as ssl_module
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from iotfin.core.errors import Unauthorized
from iotfin.transports.mqtt import codec
from iotfin.transports.mqtt import reason_codes as rc
from iotfin.transports.mqtt.codec import MalformedPacket, UnsupportedProtocol
from iotfin.transports.mqtt.topics import is_valid_topic_filter, is_valid_topic_name, topic_matches

log = logging.getLogger(__name__)

#: an unauthenticated client may not make the server buffer more than this for its CONNECT
CONNECT_PACKET_LIMIT = 64 * 1024
#: a session's queue of packets awaiting the handler; past this, stop reading its socket
PAUSE_READING_AT = 128
RESUME_READING_AT = 32
#: at most this many of a session's PUBLISH packets are handled together (see Session._handle_publishes)
MAX_CONCURRENT_PUBLISHES = 64
#: a closing connection that will not take its last bytes is aborted after this long
CLOSE_GRACE_S = 5.0

# session states
_AWAITING_CONNECT, _AUTHENTICATING, _CONNECTED, _CLOSING, _CLOSED = range(5)
# reasons reading is paused (bits)
_PAUSED_FOR_AUTH, _PAUSED_FOR_WORK, _PAUSED_FOR_WRITE = 1, 2, 4
# queued work kinds
_PUBLISH, _SUBSCRIBE, _UNSUBSCRIBE, _DISCONNECT = range(4)


class MqttHandler(Protocol):
    """What the platform implements; every method is awaited on the server's event loop."""

    async def authenticate(self, client_id: str, username: str | None, password: bytes | None,
                           protocol_level: int) -> object | None:
        """An opaque identity for the session, or None to refuse the connection (not authorized)."""

    async def on_publish(self, session: Session, topic: str, payload: bytes, qos: int) -> int:
        """Store or reject one message; return its reason code (0 = success). PUBACK follows the return."""

    async def on_subscribe(self, session: Session, topic_filter: str, qos: int) -> int:
        """The granted QoS (0 or 1), or a failure reason code (0x80 and up)."""

    async def on_disconnect(self, session: Session, reason: str) -> None:
        """Called once per authenticated session, after its last on_publish/on_subscribe returned."""


@dataclass(slots=True)
class ServerStats:
    """Counters, so that nothing refused or dropped goes uncounted."""

    connections: int = 0          # TCP connections accepted
    sessions: int = 0             # CONNACKed with success
    refused: int = 0              # CONNACKed with a failure (bad credentials, bad protocol level, ...)
    protocol_errors: int = 0      # closed for malformed packets or protocol violations
    connect_timeouts: int = 0
    keep_alive_timeouts: int = 0
    publishes: int = 0            # PUBLISH packets handed to on_publish
    publish_failures: int = 0     # on_publish returned nonzero or raised
    handler_errors: int = 0       # a handler coroutine raised
    delivered: int = 0            # server -> client PUBLISH written
    dropped: int = 0              # server -> client PUBLISH with no matching subscription or no connection


class MqttServer:
    """The platform's MQTT endpoint: MQTT 3.1.1 and 5.0 over TCP, for devices."""

    def __init__(self, handler: MqttHandler, host: str = "127.0.0.1", port: int = 1883,
                 max_packet_size: int = 1 << 20, connect_timeout_s: float = 10.0, *,
                 receive_maximum: int = 1000, backlog: int = 1024, ssl: ssl_module.SSLContext | None = None,
                 concurrent_topics: frozenset[str] = frozenset()):
        if not 0 < receive_maximum <= 0xFFFF:
            raise ValueError("receive_maximum must be 1..65535")
        #: topic names whose consecutive PUBLISH packets in one session may be handled together
        #: (see Session._handle_publishes); every other packet waits for the one before it
        self.concurrent_topics = concurrent_topics
        self.handler = handler
        self.host = host
        self.max_packet_size = max_packet_size
        self.connect_timeout_s = connect_timeout_s
        self.receive_maximum = receive_maximum
        self.stats = ServerStats()
        self._port = port
        self._backlog = backlog
        # MQTT over TLS (mqtts): with a context that asks for client certificates, a device may
        # authenticate by its certificate (the handler's optional `authenticate_certificate`)
        self._ssl = ssl
        self._listener: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[Session] = set()
        self._by_identity: dict[tuple[object, str], Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connack_properties = [
            (codec.RECEIVE_MAXIMUM, receive_maximum), (codec.MAXIMUM_QOS, 1),
            (codec.MAXIMUM_PACKET_SIZE, max_packet_size), (codec.SUBSCRIPTION_IDENTIFIER_AVAILABLE, 0),
            (codec.SHARED_SUBSCRIPTION_AVAILABLE, 0)]

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system when 0 was asked for)."""
        return self._port

    @property
    def sessions(self) -> list[Session]:
        """Connected, authenticated sessions."""
        return [s for s in self._connections if s._state == _CONNECTED]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._listener = await self._loop.create_server(
            lambda: Session(self), self.host, self._port, backlog=self._backlog, reuse_address=True, ssl=self._ssl)
        self._port = self._listener.sockets[0].getsockname()[1]
        log.info("MQTT server listening on %s:%d", self.host, self._port)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, close every session (MQTT 5: DISCONNECT 0x8B) and let the handler see them go."""
        if self._listener is None:
            return
        listener, self._listener = self._listener, None
        listener.close()
        assert self._loop is not None
        for session in list(self._connections):
            session._close(rc.SERVER_SHUTTING_DOWN, "server shutting down", drop_work=False)
        deadline = self._loop.time() + timeout_s
        while (self._connections or self._tasks) and self._loop.time() < deadline:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=max(deadline - self._loop.time(), 0))
            else:
                await asyncio.sleep(0.01)
        for session in list(self._connections):
            if session._transport is not None:
                session._transport.abort()
        await asyncio.sleep(0)  # let connection_lost run, which may start on_disconnect
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        await listener.wait_closed()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)
        return task


def _identity_key(identity: object, client_id: str) -> tuple[object, str] | None:
    try:
        hash(identity)
    except TypeError:
        return None
    return identity, client_id


class Session(asyncio.Protocol):
    """One client connection. The handler reads `identity`, `client_id`, `protocol_level`,
    `connected_at` (aware UTC datetime) and `last_activity` (event-loop clock, seconds), and calls
    `publish` and `close`."""

    # slots keep an idle session small (measured in bench/mqtt_server.py)
    __slots__ = ("identity", "client_id", "protocol_level", "connected_at", "last_activity",
                 "_server", "_transport", "_state", "_paused", "_keep_alive_s", "_timer",
                 "_pending", "_need", "_work", "_worker", "_unacked", "_subscriptions", "_inflight",
                 "_next_packet_id", "_client_receive_max", "_client_max_packet", "_out", "_flush_scheduled",
                 "_waiters", "_disconnect_reason", "_identity_key")

    def __init__(self, server: MqttServer):
        self.identity: object = None
        self.client_id = ""
        self.protocol_level = 0
        self.connected_at: datetime | None = None
        self.last_activity = 0.0
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._state = _AWAITING_CONNECT
        self._paused = 0
        self._keep_alive_s = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._pending: bytearray | None = None  # an incomplete packet's bytes so far
        self._need = 0                          # bytes _pending must reach before parsing again
        self._work: deque[tuple[Any, ...]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._unacked = 0                       # QoS>0 PUBLISH received and not yet acknowledged
        self._subscriptions: dict[str, int] | None = None
        self._inflight: set[int] | None = None  # packet ids of our QoS 1 PUBLISH awaiting PUBACK
        self._next_packet_id = 1
        self._client_receive_max = 0xFFFF
        self._client_max_packet = 0             # 0 = no limit
        self._out: list[bytes] | None = None    # packets written this loop iteration, sent together
        self._flush_scheduled = False
        self._waiters: list[asyncio.Future[None]] | None = None
        self._disconnect_reason: str | None = None
        self._identity_key: tuple[object, str] | None = None

    def __repr__(self) -> str:
        return f"<Session {self.client_id!r} v{self.protocol_level} {self.identity!r}>"

    @property
    def peer(self) -> object:
        """The client's (host, port), for logs."""
        return self._transport.get_extra_info("peername") if self._transport else None

    # --- the platform's API -------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Send to the client if it subscribed to a matching filter (else dropped, as MQTT does),
        at the lower of `qos` and the granted QoS. Returns whether it was written; does not wait
        for the client's PUBACK, only for room in the client's receive window and our send buffer."""
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS must be 0, 1 or 2, not {qos!r}")
        if not is_valid_topic_name(topic):
            raise ValueError(f"invalid topic name {topic!r}")
        stats = self._server.stats
        granted = self._granted_qos(topic) if self._state == _CONNECTED else None
        if granted is None:
            stats.dropped += 1
            return False
        qos = min(qos, granted)
        v5 = self.protocol_level == codec.MQTT_5
        packet_id = 0
        if qos:
            while self._inflight is not None and len(self._inflight) >= min(self._client_receive_max, 0xFFFE):
                await self._wait_for_change()
                if self._state != _CONNECTED:
                    stats.dropped += 1
                    return False
            packet_id = self._allocate_packet_id()
        packet = codec.encode_publish(topic, payload, qos, packet_id, v5)
        if self._client_max_packet and len(packet) > self._client_max_packet:
            # MQTT 5 §3.1.2.11.4: a packet over the client's limit is discarded as if sent
            log.warning("%r: %d-byte PUBLISH exceeds the client's maximum packet size; dropped", self, len(packet))
            if packet_id and self._inflight is not None:
                self._inflight.discard(packet_id)
            stats.dropped += 1
            return False
        self._send(packet)
        stats.delivered += 1
        while self._paused & _PAUSED_FOR_WRITE and self._state == _CONNECTED:
            await self._wait_for_change()
        return True

    async def close(self, reason_code: int = rc.NORMAL_DISCONNECTION) -> None:
        """Close the connection (MQTT 5: DISCONNECT with `reason_code` first, e.g. 0x87 when the
        device's credential was revoked); packets not yet handled are dropped unacknowledged."""
        self._close(reason_code, f"closed by the server (0x{reason_code:02x})", drop_work=True)

    def _peer_certificate(self) -> bytes | None:
        """The client's TLS certificate (DER) when it presented one, else None."""
        transport = self._transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        server = self._server
        self._transport = transport
        server._connections.add(self)
        server.stats.connections += 1
        assert server._loop is not None
        self.last_activity = server._loop.time()
        self._timer = server._loop.call_later(server.connect_timeout_s, self._on_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _CLOSED
        server = self._server
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        server._connections.discard(self)
        if self._identity_key is not None and server._by_identity.get(self._identity_key) is self:
            del server._by_identity[self._identity_key]
        if self._disconnect_reason is None:
            self._disconnect_reason = f"connection lost: {exc}" if exc else "connection lost"
        self._pending = None
        self._out = None
        self._wake()
        if self._worker is None:
            self._notify_disconnect()

    def data_received(self, data: bytes) -> None:
        if self._state >= _CLOSING:
            return
        assert self._server._loop is not None
        self.last_activity = self._server._loop.time()
        pending = self._pending
        if pending is not None:
            pending += data
            if len(pending) < self._need or self._state == _AUTHENTICATING:
                if len(pending) > CONNECT_PACKET_LIMIT and self._state == _AUTHENTICATING:
                    self._protocol_error(MalformedPacket("too much data before CONNACK"))
                return
            self._pending = None
            data = bytes(pending)
        elif self._state == _AUTHENTICATING:
            self._stash(data, 0, len(data) + 1)
            return
        try:
            self._parse(data)
        except MalformedPacket as exc:
            self._protocol_error(exc)
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("%r: unexpected error while parsing", self)
            self._protocol_error(MalformedPacket("internal error", rc.IMPLEMENTATION_SPECIFIC_ERROR))

    def eof_received(self) -> bool:
        return False  # half-closed by the client: close our side too

    def pause_writing(self) -> None:
        self._pause(_PAUSED_FOR_WRITE)

    def resume_writing(self) -> None:
        self._resume(_PAUSED_FOR_WRITE)
        self._wake()

    # --- input --------------------------------------------------------------------------------

    def _stash(self, data: bytes, pos: int, need: int) -> None:
        self._pending = bytearray(memoryview(data)[pos:])
        self._need = need

    def _parse(self, data: bytes) -> None:
        pos = 0
        size = len(data)
        while pos < size:
            state = self._state
            if state == _CONNECTED:
                limit = self._server.max_packet_size
            elif state == _AWAITING_CONNECT:
                if data[pos] != 0x10:
                    raise MalformedPacket("the first packet is not a CONNECT")
                limit = min(CONNECT_PACKET_LIMIT, self._server.max_packet_size)
            elif state == _AUTHENTICATING:  # packets pipelined after CONNECT wait for the CONNACK
                self._stash(data, pos, size - pos + 1)
                return
            else:
                return
            first = data[pos]
            # Remaining Length: a Variable Byte Integer of at most 4 bytes
            i = pos + 1
            length = 0
            shift = 0
            while True:
                if i >= size:
                    self._stash(data, pos, size - pos + 1)
                    return
                byte = data[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MalformedPacket("remaining length longer than 4 bytes")
            end = i + length
            if end - pos > limit:
                raise MalformedPacket(f"{end - pos}-byte packet exceeds the maximum of {limit}", rc.PACKET_TOO_LARGE)
            if end > size:
                self._stash(data, pos, end - pos)
                return
            if first >> 4 == codec.PUBLISH and state == _CONNECTED:
                self._on_publish_packet(first, data, i, end)
            else:
                self._on_control_packet(first, data, i, end)
            pos = end

    def _on_publish_packet(self, first: int, data: bytes, start: int, end: int) -> None:
        v5 = self.protocol_level == codec.MQTT_5
        qos = (first >> 1) & 0x03
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        if qos == 2 and v5:
            raise MalformedPacket("QoS 2 is not supported (CONNACK said Maximum QoS 1)", rc.QOS_NOT_SUPPORTED)
        if v5 and qos == 0 and first & 0x08:
            raise MalformedPacket("DUP set on a QoS 0 PUBLISH", rc.PROTOCOL_ERROR)
        topic, packet_id, payload, props = codec.parse_publish(data, start, end, first, v5)
        if props:
            if codec.TOPIC_ALIAS in props:
                raise MalformedPacket("topic aliases are not accepted (Topic Alias Maximum 0)", rc.TOPIC_ALIAS_INVALID)
            if codec.SUBSCRIPTION_IDENTIFIER in props:
                raise MalformedPacket("subscription identifier in a client PUBLISH", rc.PROTOCOL_ERROR)
        if not is_valid_topic_name(topic):
            raise MalformedPacket(f"invalid topic name {topic!r}", rc.TOPIC_NAME_INVALID)
        if qos:
            self._unacked += 1
            if v5 and self._unacked > self._server.receive_maximum:
                raise MalformedPacket("more unacknowledged PUBLISH than Receive Maximum", rc.RECEIVE_MAXIMUM_EXCEEDED)
        self._enqueue((_PUBLISH, topic, payload, qos, packet_id))

    def _on_control_packet(self, first: int, data: bytes, start: int, end: int) -> None:
        kind = first >> 4
        expected_flags = 0x02 if kind in (codec.PUBREL, codec.SUBSCRIBE, codec.UNSUBSCRIBE) else 0
        if first & 0x0F != expected_flags:
            raise MalformedPacket(f"invalid fixed header flags for packet type {kind}")
        if self._state == _AWAITING_CONNECT:
            self._on_connect(data, start, end)
            return
        v5 = self.protocol_level == codec.MQTT_5
        if kind == codec.PUBACK:
            packet_id, _ = codec.parse_ack(data, start, end, codec.PUBACK, v5)
            if self._inflight is not None and packet_id in self._inflight:
                self._inflight.discard(packet_id)
                if self._waiters:
                    self._wake()
        elif kind == codec.PINGREQ:
            if start != end:
                raise MalformedPacket("PINGREQ with a body")
            self._send(codec.PINGRESP_PACKET)
        elif kind == codec.SUBSCRIBE:
            packet_id, filters, props = codec.parse_subscribe(data, start, end, v5)
            if props and codec.SUBSCRIPTION_IDENTIFIER in props:
                raise MalformedPacket("subscription identifiers are not supported",
                                      rc.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
            self._enqueue((_SUBSCRIBE, packet_id, filters))
        elif kind == codec.UNSUBSCRIBE:
            packet_id, topic_filters = codec.parse_unsubscribe(data, start, end, v5)
            self._enqueue((_UNSUBSCRIBE, packet_id, topic_filters))
        elif kind == codec.PUBREL and not v5:
            # the last step of a 3.1.1 QoS 2 exchange: PUBREC went out after the handler returned
            packet_id, _ = codec.parse_ack(data, start, end, codec.PUBREL, v5)
            self._send(codec.encode_pubcomp(packet_id))
        elif kind == codec.DISCONNECT:
            reason = codec.parse_disconnect(data, start, end, v5)
            self._disconnect_reason = "client disconnected" + (f" (0x{reason:02x})" if reason else "")
            self._state = _CLOSING  # nothing after DISCONNECT is read; what came before is handled
            self._enqueue((_DISCONNECT,))
        elif kind == codec.CONNECT:
            raise MalformedPacket("second CONNECT", rc.PROTOCOL_ERROR)
        else:
            raise MalformedPacket(f"unexpected packet type {kind} from a client", rc.PROTOCOL_ERROR)

    def _on_connect(self, data: bytes, start: int, end: int) -> None:
        try:
            packet = codec.parse_connect(data, start, end)
        except UnsupportedProtocol as exc:
            # answered in the 3.1.1 format, which every client level can read
            self._refuse(rc.UNSUPPORTED_PROTOCOL_VERSION, rc.V311_UNACCEPTABLE_PROTOCOL_VERSION, str(exc), v5=False)
            return
        self.protocol_level = packet.protocol_level
        v5 = packet.protocol_level == codec.MQTT_5
        props = packet.properties
        if codec.AUTHENTICATION_METHOD in props:
            self._refuse(rc.BAD_AUTHENTICATION_METHOD, rc.V311_NOT_AUTHORIZED, "enhanced authentication", v5)
            return
        if v5 and packet.will_qos == 2:
            self._refuse(rc.QOS_NOT_SUPPORTED, 0, "will QoS 2", v5)
            return
        assigned = None
        if not packet.client_id:
            if not v5 and not packet.clean_start:
                self._refuse(rc.CLIENT_IDENTIFIER_NOT_VALID, rc.V311_IDENTIFIER_REJECTED, "empty client id", v5)
                return
            assigned = "auto-" + secrets.token_hex(8)
        self._keep_alive_s = packet.keep_alive * 1.5
        self._client_receive_max = int(props.get(codec.RECEIVE_MAXIMUM, 0xFFFF))  # type: ignore[call-overload]
        self._client_max_packet = int(props.get(codec.MAXIMUM_PACKET_SIZE, 0))  # type: ignore[call-overload]
        self._state = _AUTHENTICATING
        self._pause(_PAUSED_FOR_AUTH)
        self._server._spawn(self._authenticate(packet, assigned))

    async def _authenticate(self, packet: codec.Connect, assigned: str | None) -> None:
        server = self._server
        v5 = packet.protocol_level == codec.MQTT_5
        try:
            certificate = self._peer_certificate()
            if certificate is not None and hasattr(server.handler, "authenticate_certificate"):
                identity = await server.handler.authenticate_certificate(packet.client_id, certificate,
                                                                         packet.protocol_level)
            else:
                identity = await server.handler.authenticate(packet.client_id, packet.username, packet.password,
                                                             packet.protocol_level)
        except Unauthorized:
            identity = None
        except Exception:
            log.exception("authenticate failed for client %r", packet.client_id)
            server.stats.handler_errors += 1
            if self._state == _AUTHENTICATING:
                self._refuse(rc.SERVER_UNAVAILABLE, rc.V311_SERVER_UNAVAILABLE, "authentication unavailable", v5)
            return
        if self._state != _AUTHENTICATING:
            return  # the client left or timed out meanwhile
        if identity is None:
            presented = packet.username is not None or packet.password is not None
            self._refuse(rc.BAD_USER_NAME_OR_PASSWORD if presented else rc.NOT_AUTHORIZED,
                         rc.V311_NOT_AUTHORIZED, "not authorized", v5)
            return
        self.identity = identity
        self.client_id = assigned or packet.client_id
        self.connected_at = datetime.now(UTC)
        key = self._identity_key = _identity_key(identity, self.client_id)
        if key is not None:
            previous = server._by_identity.get(key)
            if previous is not None:
                previous._close(rc.SESSION_TAKEN_OVER, "session taken over", drop_work=False)
            server._by_identity[key] = self
        properties = None
        if v5:
            properties = list(server._connack_properties)
            if packet.properties.get(codec.SESSION_EXPIRY_INTERVAL):
                properties.append((codec.SESSION_EXPIRY_INTERVAL, 0))  # no session outlives its connection
            if assigned:
                properties.append((codec.ASSIGNED_CLIENT_IDENTIFIER, assigned))
        self._state = _CONNECTED
        server.stats.sessions += 1
        self._send(codec.encode_connack(v5, 0, False, properties))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._keep_alive_s:
            assert server._loop is not None
            self._timer = server._loop.call_later(self._keep_alive_s, self._on_timer)
        pending, self._pending = self._pending, None
        self._resume(_PAUSED_FOR_AUTH)
        if pending:
            self.data_received(bytes(pending))

    # --- the handler, one packet at a time ------------------------------------------------------

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        work = self._work
        if work is None:
            work = self._work = deque()
        work.append(item)
        if len(work) >= PAUSE_READING_AT:
            self._pause(_PAUSED_FOR_WORK)
        if self._worker is None:
            server = self._server
            assert server._loop is not None
            # not _spawn: a done-callback would cost every message burst another loop iteration
            self._worker = server._loop.create_task(self._run_work())
            server._tasks.add(self._worker)

    async def _run_work(self) -> None:
        work = self._work
        assert work is not None
        try:
            while work:
                item = work.popleft()
                kind = item[0]
                if kind == _PUBLISH and work and item[1] in self._server.concurrent_topics:
                    await self._handle_publishes(item, work)
                elif kind == _PUBLISH:
                    await self._handle_publish(item[1], item[2], item[3], item[4])
                elif kind == _SUBSCRIBE:
                    await self._handle_subscribe(item[1], item[2])
                elif kind == _UNSUBSCRIBE:
                    self._handle_unsubscribe(item[1], item[2])
                else:
                    self._close_transport()
                if not work:
                    self._flush()  # the queue is drained: the replies go now, not an iteration later
                elif self._out is not None:
                    self._schedule_flush()  # the next handler call may wait; these replies must not
                if self._paused & _PAUSED_FOR_WORK and len(work) <= RESUME_READING_AT:
                    self._resume(_PAUSED_FOR_WORK)
        except Exception:  # a bug in the server itself: lose this connection, not the server
            log.exception("%r: unexpected error while handling packets", self)
            self._close(rc.IMPLEMENTATION_SPECIFIC_ERROR, "internal error", drop_work=True)
        finally:
            self._server._tasks.discard(self._worker)  # type: ignore[arg-type]
            self._worker = None
            self._work = None  # an idle session keeps no queue
            if self._state == _CLOSED:
                self._notify_disconnect()

    async def _handle_publishes(self, first: tuple[Any, ...], work: deque[tuple[Any, ...]]) -> None:
        """Consecutive queued PUBLISH packets to the server's `concurrent_topics` (up to
        MAX_CONCURRENT_PUBLISHES): their on_publish calls start in the order received and run
        together, so a handler that group-commits puts all of them in one commit instead of one
        commit per message of the session (bench/ingest_e2e.py: each of a session's pipelined
        messages otherwise waited a whole commit, ~30 ms). Replies still leave in the order
        received, each after its own call returned; a failure that closes the session (3.1.1)
        stops the replies after it."""
        topics = self._server.concurrent_topics
        batch = [first]
        while work and work[0][0] == _PUBLISH and work[0][1] in topics and len(batch) < MAX_CONCURRENT_PUBLISHES:
            batch.append(work.popleft())
        assert self._server._loop is not None
        calls = [self._server._loop.create_task(self._call_on_publish(item[1], item[2], item[3])) for item in batch]
        for item, call in zip(batch, calls, strict=True):
            self._reply_to_publish(await call, item[3], item[4])
            self._schedule_flush()

    async def _handle_publish(self, topic: str, payload: bytes, qos: int, packet_id: int) -> None:
        self._reply_to_publish(await self._call_on_publish(topic, payload, qos), qos, packet_id)

    async def _call_on_publish(self, topic: str, payload: bytes, qos: int) -> int:
        """The handler's reason code for one PUBLISH; never raises."""
        server = self._server
        server.stats.publishes += 1
        try:
            code = await server.handler.on_publish(self, topic, payload, qos)
            if type(code) is not int:
                log.error("on_publish returned %r, not a reason code", code)
                code = rc.IMPLEMENTATION_SPECIFIC_ERROR
        except Exception as exc:
            code = rc.reason_code_for(exc)
            server.stats.handler_errors += 1
            log.exception("%r: on_publish raised on %r; reason code 0x%02x", self, topic, code)
        if code:
            server.stats.publish_failures += 1
        return code

    def _reply_to_publish(self, code: int, qos: int, packet_id: int) -> None:
        if not qos:
            return
        self._unacked -= 1
        # replies from the worker are flushed by the worker (_run_work), not a loop iteration later
        if self.protocol_level == codec.MQTT_5:
            self._queue_packet(codec.encode_puback(packet_id, code if code in rc.PUBACK_CODES else rc.UNSPECIFIED_ERROR))
        elif code < 0x80 or code in rc.FINAL_REJECTIONS:
            self._queue_packet(codec.encode_puback(packet_id, 0, codec.PUBREC if qos == 2 else codec.PUBACK))
        else:
            self._close(code, f"publish failed (0x{code:02x}); closed without PUBACK so the client resends",
                        drop_work=True)

    async def _handle_subscribe(self, packet_id: int, filters: list[tuple[str, int]]) -> None:
        v5 = self.protocol_level == codec.MQTT_5
        handler = self._server.handler
        codes = []
        for topic_filter, qos in filters:
            if not is_valid_topic_filter(topic_filter):
                code = rc.TOPIC_FILTER_INVALID
            elif v5 and topic_filter.startswith("$share/"):
                code = rc.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
            else:
                try:
                    code = await handler.on_subscribe(self, topic_filter, qos)
                    if type(code) is not int:
                        log.error("on_subscribe returned %r, not a reason code", code)
                        code = rc.IMPLEMENTATION_SPECIFIC_ERROR
                except Exception as exc:
                    code = rc.reason_code_for(exc)
                    self._server.stats.handler_errors += 1
                    log.exception("%r: on_subscribe raised on %r", self, topic_filter)
                if code < 0x80:
                    code = min(code, qos, 1)
                    if self._subscriptions is None:
                        self._subscriptions = {}
                    self._subscriptions[topic_filter] = code
                elif code not in rc.SUBACK_FAILURE_CODES:
                    code = rc.UNSPECIFIED_ERROR
            codes.append(code if v5 or code < 0x80 else rc.UNSPECIFIED_ERROR)
        self._queue_packet(codec.encode_suback(v5, packet_id, codes))

    def _handle_unsubscribe(self, packet_id: int, topic_filters: list[str]) -> None:
        codes = []
        subscriptions = self._subscriptions or {}
        for topic_filter in topic_filters:
            codes.append(rc.SUCCESS if subscriptions.pop(topic_filter, None) is not None
                         else rc.NO_SUBSCRIPTION_EXISTED)
        self._queue_packet(codec.encode_unsuback(self.protocol_level == codec.MQTT_5, packet_id, codes))

    def _notify_disconnect(self) -> None:
        if self.connected_at is None:
            return  # never authenticated: the handler never saw this connection
        reason = self._disconnect_reason or "closed"
        handler = self._server.handler

        async def notify() -> None:
            try:
                await handler.on_disconnect(self, reason)
            except Exception:
                self._server.stats.handler_errors += 1
                log.exception("%r: on_disconnect raised", self)

        self._server._spawn(notify())

    # --- output and closing ---------------------------------------------------------------------

    def _send(self, packet: bytes) -> None:
        """Queue a packet; everything queued in one loop iteration goes out in one write."""
        self._queue_packet(packet)
        self._schedule_flush()

    def _queue_packet(self, packet: bytes) -> None:
        if self._out is not None:
            self._out.append(packet)
        elif self._transport is not None and not self._transport.is_closing():
            self._out = [packet]

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._out is not None:
            self._flush_scheduled = True
            assert self._server._loop is not None
            self._server._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        out, self._out = self._out, None
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _protocol_error(self, exc: MalformedPacket) -> None:
        self._server.stats.protocol_errors += 1
        log.debug("%r %s: protocol error: %s", self, self.peer, exc)
        self._close(exc.reason_code, f"protocol error: {exc}", drop_work=True)

    def _refuse(self, code_v5: int, code_v311: int, why: str, v5: bool) -> None:
        self._server.stats.refused += 1
        log.debug("%s: CONNECT refused: %s", self.peer, why)
        self._send(codec.encode_connack(v5, code_v5 if v5 else code_v311))
        self._state = _CLOSING
        self._close_transport()

    def _close(self, code: int, reason: str, drop_work: bool) -> None:
        """Close from our side: MQTT 5 gets DISCONNECT with `code` first (only after a CONNACK)."""
        if self._state >= _CLOSING:
            return
        if self._disconnect_reason is None:
            self._disconnect_reason = reason
        if self._state == _CONNECTED and self.protocol_level == codec.MQTT_5:
            packet = codec.encode_disconnect(code, reason[:200])
            if self._client_max_packet and len(packet) > self._client_max_packet:
                packet = codec.encode_disconnect(code)  # the reason string is what may be left out
            self._send(packet)
        self._state = _CLOSING
        if drop_work and self._work:
            self._work.clear()
        self._close_transport()

    def _close_transport(self) -> None:
        self._state = max(self._state, _CLOSING)
        self._flush()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():  # a client that does not read must not hold us
            assert self._server._loop is not None
            self._server._loop.call_later(CLOSE_GRACE_S, transport.abort)

    def _on_timer(self) -> None:
        self._timer = None
        server = self._server
        if self._state < _CONNECTED:
            server.stats.connect_timeouts += 1
            log.debug("%s: no CONNACK within %.1f s", self.peer, server.connect_timeout_s)
            self._close(rc.MALFORMED_PACKET, "connect timeout", drop_work=True)
            return
        if self._state != _CONNECTED:
            return
        assert server._loop is not None
        now = server._loop.time()
        if self._paused & (_PAUSED_FOR_WORK | _PAUSED_FOR_WRITE):
            self.last_activity = now  # we stopped reading, so the client's PINGREQs wait in the socket
        idle = now - self.last_activity
        if idle >= self._keep_alive_s:
            server.stats.keep_alive_timeouts += 1
            self._close(rc.KEEP_ALIVE_TIMEOUT, "keep-alive timeout", drop_work=False)
        else:
            self._timer = server._loop.call_later(self._keep_alive_s - idle, self._on_timer)

    def _pause(self, why: int) -> None:
        if not self._paused and self._transport is not None:
            self._transport.pause_reading()
        self._paused |= why

    def _resume(self, why: int) -> None:
        if not self._paused & why:
            return
        self._paused &= ~why
        if not self._paused and self._transport is not None and self._state < _CLOSING:
            self._transport.resume_reading()

    # --- outbound QoS 1 --------------------------------------------------------------------------

    def _granted_qos(self, topic: str) -> int | None:
        best = None
        for topic_filter, granted in (self._subscriptions or {}).items():
            if (best is None or granted > best) and topic_matches(topic_filter, topic):
                best = granted
        return best

    def _allocate_packet_id(self) -> int:
        inflight = self._inflight
        if inflight is None:
            inflight = self._inflight = set()
        packet_id = self._next_packet_id
        while packet_id in inflight:
            packet_id = packet_id % 0xFFFF + 1
        self._next_packet_id = packet_id % 0xFFFF + 1
        inflight.add(packet_id)
        return packet_id

    async def _wait_for_change(self) -> None:
        """Until a PUBACK frees a slot, the send buffer drains, or the connection ends."""
        assert self._server._loop is not None
        waiter = self._server._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)
