"""One client connection, `Session`: an asyncio Protocol that parses packets, moves through the
protocol states (state.py) and hands PUBLISH, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT to the
server's handler one at a time, in the order received; the rules it keeps are in server.py.

Two parts of it live beside it as mixins, sharing its slots: the CONNECT and its authentication
(auth.py, `Authentication`) and flow control — backpressure, keep-alive and outbound QoS 1 with
`publish` (flow.py, `FlowControl`). Mixin methods are plain inherited methods, so the per-message
path (data_received -> _parse -> _on_publish_packet -> _enqueue -> _run_work -> _reply_to_publish)
costs what it did in one class.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from iotfin.transports.mqtt import codec
from iotfin.transports.mqtt import reason_codes as rc
from iotfin.transports.mqtt.auth import Authentication
from iotfin.transports.mqtt.codec import MalformedPacket
from iotfin.transports.mqtt.flow import PAUSE_READING_AT, RESUME_READING_AT, FlowControl
from iotfin.transports.mqtt.state import (
    AUTHENTICATING,
    AWAITING_CONNECT,
    CLOSED,
    CLOSING,
    CONNECTED,
    PAUSED_FOR_WORK,
)
from iotfin.transports.mqtt.topics import is_valid_topic_filter, is_valid_topic_name

if TYPE_CHECKING:
    from iotfin.transports.mqtt.server import MqttServer

log = logging.getLogger(__name__)

#: an unauthenticated client may not make the server buffer more than this for its CONNECT
CONNECT_PACKET_LIMIT = 64 * 1024
#: at most this many of a session's PUBLISH packets are handled together (see Session._handle_publishes)
MAX_CONCURRENT_PUBLISHES = 64
#: a closing connection that will not take its last bytes is aborted after this long
CLOSE_GRACE_S = 5.0

# queued work kinds
_PUBLISH, _SUBSCRIBE, _UNSUBSCRIBE, _DISCONNECT = range(4)


class Session(Authentication, FlowControl, asyncio.Protocol):
    """One client connection. The handler reads `identity`, `client_id`, `protocol_level`,
    `connected_at` (aware UTC datetime) and `last_activity` (event-loop clock, seconds), and calls
    `publish` and `close`."""

    # slots keep an idle session small (measured in bench/mqtt_server.py); the mixins have none of
    # their own, so every attribute of a session is declared here, grouped by the part that owns it
    __slots__ = ("protocol_level", "last_activity", "_server", "_transport", "_state", "_pending", "_need",
                 "_work", "_worker", "_unacked", "_subscriptions", "_out", "_flush_scheduled", "_disconnect_reason",
                 # auth.py
                 "identity", "client_id", "_connected_at",
                 # flow.py
                 "_paused", "_keep_alive", "_deadline", "_inflight", "_next_packet_id", "_client_receive_max",
                 "_client_max_packet", "_waiters")

    def __init__(self, server: MqttServer):
        self.identity: object = None
        self.client_id = ""
        self.protocol_level = 0
        self._connected_at = 0.0
        self.last_activity = 0.0
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._state = AWAITING_CONNECT
        self._paused = 0
        self._keep_alive = 0
        self._deadline = 0.0                    # event-loop time of the next CONNECT/keep-alive check; 0 = none
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

    def __repr__(self) -> str:
        return f"<Session {self.client_id!r} v{self.protocol_level} {self.identity!r}>"

    @property
    def peer(self) -> object:
        """The client's (host, port), for logs."""
        return self._transport.get_extra_info("peername") if self._transport else None

    # --- the platform's API (and `publish`, in flow.py) ----------------------------------------

    async def close(self, reason_code: int = rc.NORMAL_DISCONNECTION) -> None:
        """Close the connection (MQTT 5: DISCONNECT with `reason_code` first, e.g. 0x87 when the
        device's credential was revoked); packets not yet handled are dropped unacknowledged."""
        self._close(reason_code, f"closed by the server (0x{reason_code:02x})", drop_work=True)

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        server = self._server
        self._transport = transport
        if server._tcp is None:  # the epoll transport's table already lists this connection
            server._connections.add(self)
        server.stats.connections += 1
        assert server._loop is not None
        self.last_activity = server._loop.time()
        self._deadline = self.last_activity + server.connect_timeout_s
        server._deadlines.add(self, self._deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = CLOSED
        server = self._server
        if self._deadline:
            self._deadline = 0.0
            server._deadlines.discard(self)  # so the timer's buckets do not keep this session alive
        server._connections.discard(self)
        if self._connected_at:
            server._takeovers.unregister(self)
        if self._disconnect_reason is None:
            self._disconnect_reason = f"connection lost: {exc}" if exc else "connection lost"
        self._pending = None
        self._out = None
        self._wake()
        if self._worker is None:
            self._notify_disconnect()

    def data_received(self, data: bytes) -> None:
        if self._state >= CLOSING:
            return
        assert self._server._loop is not None
        self.last_activity = self._server._loop.time()
        pending = self._pending
        if pending is not None:
            pending += data
            if len(pending) < self._need or self._state == AUTHENTICATING:
                if len(pending) > CONNECT_PACKET_LIMIT and self._state == AUTHENTICATING:
                    self._protocol_error(MalformedPacket("too much data before CONNACK"))
                return
            self._pending = None
            data = bytes(pending)
        elif self._state == AUTHENTICATING:
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

    # --- input --------------------------------------------------------------------------------

    def _stash(self, data: bytes, pos: int, need: int) -> None:
        self._pending = bytearray(memoryview(data)[pos:])
        self._need = need

    def _parse(self, data: bytes) -> None:
        pos = 0
        size = len(data)
        while pos < size:
            state = self._state
            if state == CONNECTED:
                limit = self._server.max_packet_size
            elif state == AWAITING_CONNECT:
                if data[pos] != 0x10:
                    raise MalformedPacket("the first packet is not a CONNECT")
                limit = min(CONNECT_PACKET_LIMIT, self._server.max_packet_size)
            elif state == AUTHENTICATING:  # packets pipelined after CONNECT wait for the CONNACK
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
            if first >> 4 == codec.PUBLISH and state == CONNECTED:
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
        if self._state == AWAITING_CONNECT:
            self._on_connect(data, start, end)
            return
        v5 = self.protocol_level == codec.MQTT_5
        if kind == codec.PUBACK:  # frees a slot of flow.py's outbound window (inline: one per message)
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
            self._state = CLOSING  # nothing after DISCONNECT is read; what came before is handled
            self._enqueue((_DISCONNECT,))
        elif kind == codec.CONNECT:
            raise MalformedPacket("second CONNECT", rc.PROTOCOL_ERROR)
        else:
            raise MalformedPacket(f"unexpected packet type {kind} from a client", rc.PROTOCOL_ERROR)

    # --- the handler, one packet at a time ------------------------------------------------------

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        work = self._work
        if work is None:
            work = self._work = deque()
        work.append(item)
        if len(work) >= PAUSE_READING_AT:
            self._pause(PAUSED_FOR_WORK)
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
                if self._paused & PAUSED_FOR_WORK and len(work) <= RESUME_READING_AT:
                    self._resume(PAUSED_FOR_WORK)
        except Exception:  # a bug in the server itself: lose this connection, not the server
            log.exception("%r: unexpected error while handling packets", self)
            self._close(rc.IMPLEMENTATION_SPECIFIC_ERROR, "internal error", drop_work=True)
        finally:
            self._server._tasks.discard(self._worker)  # type: ignore[arg-type]
            self._worker = None
            self._work = None  # an idle session keeps no queue
            if self._state == CLOSED:
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
        if not self._connected_at:
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

    def _close(self, code: int, reason: str, drop_work: bool) -> None:
        """Close from our side: MQTT 5 gets DISCONNECT with `code` first (only after a CONNACK)."""
        if self._state >= CLOSING:
            return
        if self._disconnect_reason is None:
            self._disconnect_reason = reason
        if self._state == CONNECTED and self.protocol_level == codec.MQTT_5:
            packet = codec.encode_disconnect(code, reason[:200])
            if self._client_max_packet and len(packet) > self._client_max_packet:
                packet = codec.encode_disconnect(code)  # the reason string is what may be left out
            self._send(packet)
        self._state = CLOSING
        if drop_work and self._work:
            self._work.clear()
        self._close_transport()

    def _close_transport(self) -> None:
        self._state = max(self._state, CLOSING)
        self._flush()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():  # a client that does not read must not hold us
            assert self._server._loop is not None
            self._server._loop.call_later(CLOSE_GRACE_S, transport.abort)
