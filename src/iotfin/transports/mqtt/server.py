"""The MQTT server: one `Session` (an asyncio Protocol, session.py) per connection, in front of one
`MqttHandler`. Plain-TCP connections run on the lean epoll transport (tcp.py), TLS ones on
asyncio's; every session's CONNECT deadline and keep-alive share one timer (deadlines.py).

Rules this server keeps (the device-API semantics live in the handler, `iotfin.transports.mqtt_device`):

* **Acknowledge only what is durable.** A PUBLISH is handed to `handler.on_publish`; its PUBACK
  (with the returned reason code on MQTT 5) is written only after that coroutine returns.
* **Order.** A session's PUBLISH, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT go through one queue and
  reach the handler one at a time, in the order received, so PUBACKs leave in order
  (MQTT 3.1.1 §4.6) and a subscription is in place before the next request is handled. Reading
  goes on meanwhile (pipelined) until the queue holds `PAUSE_READING_AT` (flow.py) packets. Sessions never
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
  buffered; the first packet must be a CONNECT of at most `CONNECT_PACKET_LIMIT` (session.py) bytes, within
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
import ssl as ssl_module
from dataclasses import dataclass
from typing import Any, Protocol

from iotfin.transports.mqtt import codec, tcp
from iotfin.transports.mqtt import reason_codes as rc
from iotfin.transports.mqtt.auth import Takeovers
from iotfin.transports.mqtt.deadlines import Deadlines
from iotfin.transports.mqtt.session import Session
from iotfin.transports.mqtt.state import CONNECTED

log = logging.getLogger(__name__)


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

    # optional: `authenticate_certificate(client_id, certificate_der, protocol_level)` (auth.py), and
    # `serving(server)`, called when a server starts with this handler (to find its sessions later)


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
                 concurrent_topics: frozenset[str] = frozenset(), reuse_port: bool = False,
                 epoll_transport: bool = True):
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
        # SO_REUSEPORT: several ingest worker processes (`iotfin serve --ingest-workers N`) each listen
        # on the same port and the kernel spreads new connections over them
        self._reuse_port = reuse_port
        # MQTT over TLS (mqtts): with a context that asks for client certificates, a device may
        # authenticate by its certificate (the handler's optional `authenticate_certificate`)
        self._ssl = ssl
        # plain TCP on the lean epoll transport (tcp.py) where the platform has epoll; TLS, and
        # epoll_transport=False, on asyncio's
        self._epoll_transport = epoll_transport and ssl is None and tcp.available()
        self._listener: asyncio.Server | None = None
        self._tcp: tcp.TcpConnections | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines = None  # type: ignore[assignment]  # made in start(), on the running loop
        # sessions on asyncio's transport; the epoll transport's own table holds the others (see _open_sessions)
        self._connections: set[Session] = set()
        self._takeovers = Takeovers()
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
        return [s for s in self._open_sessions() if s._state == CONNECTED]

    def _open_sessions(self) -> list[Session]:
        """Every connection's session, until its connection_lost. On the epoll transport, its table
        of connections is the list: a set of sessions beside it would cost ~50 bytes a connection."""
        if self._tcp is not None:
            return [transport._protocol for transport in self._tcp._transports.values()]  # type: ignore[misc]
        return list(self._connections)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadlines = Deadlines(self._loop)
        if self._epoll_transport:
            listeners = tcp.listening_sockets(self.host, self._port, self._backlog, self._reuse_port)
            self._tcp = tcp.TcpConnections(self._loop, listeners, lambda: Session(self))
            self._port = listeners[0].getsockname()[1]
        else:
            self._listener = await self._loop.create_server(
                lambda: Session(self), self.host, self._port, backlog=self._backlog, reuse_address=True,
                ssl=self._ssl, reuse_port=self._reuse_port or None)
            self._port = self._listener.sockets[0].getsockname()[1]
        serving = getattr(self.handler, "serving", None)
        if serving is not None:
            serving(self)
        log.info("MQTT server listening on %s:%d", self.host, self._port)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, close every session (MQTT 5: DISCONNECT 0x8B) and let the handler see them go."""
        if self._listener is None and self._tcp is None:
            return
        listener, self._listener = self._listener, None
        connections = self._tcp
        if listener is not None:
            listener.close()
        if connections is not None:
            connections.stop_listening()
        assert self._loop is not None
        for session in self._open_sessions():
            session._close(rc.SERVER_SHUTTING_DOWN, "server shutting down", drop_work=False)
        deadline = self._loop.time() + timeout_s
        while (self._open_sessions() or self._tasks) and self._loop.time() < deadline:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=max(deadline - self._loop.time(), 0))
            else:
                await asyncio.sleep(0.01)
        for session in self._open_sessions():
            if session._transport is not None:
                session._transport.abort()
        await asyncio.sleep(0)  # let connection_lost run, which may start on_disconnect
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        if connections is not None:
            connections.close()
            self._tcp = None
            await asyncio.sleep(0)  # their connection_lost, then the epoll's close
            await asyncio.sleep(0)
        if listener is not None:
            await listener.wait_closed()
        self._deadlines.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)
        return task
