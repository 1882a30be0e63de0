"""A `Session`'s (session.py) CONNECT, as a mixin: from the CONNECT packet to the CONNACK.

The CONNECT is checked (protocol level, enhanced authentication, will QoS, client id) and refused
with a CONNACK failure code where it cannot be served. Otherwise reading pauses and the handler
authenticates: by the client's TLS certificate when it presented one and the handler has
`authenticate_certificate`, else by user name and password (`authenticate`); None or
`Unauthorized` refuses the connection, an exception answers "server unavailable". A session whose
identity and client id are already connected takes that connection over (the older one is closed
with 0x8E). Then CONNACK goes out, the keep-alive deadline is set, and the packets the client
pipelined after its CONNECT are parsed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from iotfin.core.errors import Unauthorized
from iotfin.transports.mqtt import codec
from iotfin.transports.mqtt import reason_codes as rc
from iotfin.transports.mqtt.codec import UnsupportedProtocol
from iotfin.transports.mqtt.state import AUTHENTICATING, CLOSING, CONNECTED, PAUSED_FOR_AUTH

if TYPE_CHECKING:
    from iotfin.transports.mqtt.server import MqttServer

log = logging.getLogger(__name__)


class Takeovers:
    """Which session holds each identity's client id, so that a new connection with the same identity
    and client id takes the old one over. Keyed by the client id alone, and by (identity, client id)
    only for a client id that another identity holds too: a key tuple per session would cost an
    idle session ~64 bytes."""

    def __init__(self) -> None:
        self._by_client_id: dict[str, Any] = {}
        self._shared: dict[tuple[object, str], Any] = {}

    def __len__(self) -> int:
        return len(self._by_client_id) + len(self._shared)

    def register(self, session: Any) -> Any:
        """Record `session` under its identity and client id; returns the session it takes over, or None."""
        client_id, identity = session.client_id, session.identity
        holder = self._by_client_id.get(client_id)
        try:
            if holder is not None and holder.identity != identity:  # another identity holds the client id
                previous = self._shared.get((identity, client_id))
                self._shared[(identity, client_id)] = session
                return previous
            self._by_client_id[client_id] = session
            if holder is None and self._shared:  # this identity's session may be there from when another held it
                return self._shared.pop((identity, client_id), None)
        except TypeError:  # an unhashable identity sharing a client id: never taken over
            return None
        return holder

    def unregister(self, session: Any) -> None:
        client_id = session.client_id
        if self._by_client_id.get(client_id) is session:
            del self._by_client_id[client_id]
            return
        try:
            if self._shared.get((session.identity, client_id)) is session:
                del self._shared[(session.identity, client_id)]
        except TypeError:
            pass


class Authentication:
    """Session's CONNECT handling; its slots are declared by `Session`."""

    __slots__ = ()

    # owned here (initialized in Session.__init__)
    identity: object
    client_id: str
    _connected_at: float  # wall clock, seconds (a float, not a datetime: 24 bytes less per session); 0 until CONNACK

    if TYPE_CHECKING:  # what authentication uses of the rest of Session
        protocol_level: int
        peer: object
        _server: MqttServer
        _transport: asyncio.Transport | None
        _state: int
        _pending: bytearray | None
        _keep_alive: int
        _deadline: float
        _client_receive_max: int
        _client_max_packet: int

        def data_received(self, data: bytes) -> None: ...
        def _send(self, packet: bytes) -> None: ...
        def _close(self, code: int, reason: str, drop_work: bool) -> None: ...
        def _close_transport(self) -> None: ...
        def _pause(self, why: int) -> None: ...
        def _resume(self, why: int) -> None: ...
        def _on_timer(self) -> None: ...

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
        self._keep_alive = packet.keep_alive
        self._client_receive_max = int(props.get(codec.RECEIVE_MAXIMUM, 0xFFFF))  # type: ignore[call-overload]
        self._client_max_packet = int(props.get(codec.MAXIMUM_PACKET_SIZE, 0))  # type: ignore[call-overload]
        self._state = AUTHENTICATING
        self._pause(PAUSED_FOR_AUTH)
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
            if self._state == AUTHENTICATING:
                self._refuse(rc.SERVER_UNAVAILABLE, rc.V311_SERVER_UNAVAILABLE, "authentication unavailable", v5)
            return
        if self._state != AUTHENTICATING:
            return  # the client left or timed out meanwhile
        if identity is None:
            presented = packet.username is not None or packet.password is not None
            self._refuse(rc.BAD_USER_NAME_OR_PASSWORD if presented else rc.NOT_AUTHORIZED,
                         rc.V311_NOT_AUTHORIZED, "not authorized", v5)
            return
        self.identity = identity
        self.client_id = assigned or packet.client_id
        self._connected_at = time.time()
        previous = server._takeovers.register(self)
        if previous is not None:
            previous._close(rc.SESSION_TAKEN_OVER, "session taken over", drop_work=False)
        properties = None
        if v5:
            properties = list(server._connack_properties)
            if packet.properties.get(codec.SESSION_EXPIRY_INTERVAL):
                properties.append((codec.SESSION_EXPIRY_INTERVAL, 0))  # no session outlives its connection
            if assigned:
                properties.append((codec.ASSIGNED_CLIENT_IDENTIFIER, assigned))
        self._state = CONNECTED
        server.stats.sessions += 1
        self._send(codec.encode_connack(v5, 0, False, properties))
        self._deadline = 0.0
        server._deadlines.discard(self)  # the CONNECT deadline's entry
        if self._keep_alive:
            assert server._loop is not None
            self._deadline = server._loop.time() + self._keep_alive * 1.5
            server._deadlines.add(self, self._deadline)
        pending, self._pending = self._pending, None
        self._resume(PAUSED_FOR_AUTH)
        if pending:
            self.data_received(bytes(pending))

    @property
    def connected_at(self) -> datetime | None:
        """When the CONNACK went out (aware UTC), or None before."""
        return datetime.fromtimestamp(self._connected_at, UTC) if self._connected_at else None

    def _refuse(self, code_v5: int, code_v311: int, why: str, v5: bool) -> None:
        self._server.stats.refused += 1
        log.debug("%s: CONNECT refused: %s", self.peer, why)
        self._send(codec.encode_connack(v5, code_v5 if v5 else code_v311))
        self._state = CLOSING
        self._close_transport()

    def _peer_certificate(self) -> bytes | None:
        """The client's TLS certificate (DER) when it presented one, else None."""
        transport = self._transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
