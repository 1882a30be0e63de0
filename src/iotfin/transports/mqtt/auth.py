"""A `Session`'s (session.py) CONNECT, as a mixin: from the CONNECT packet to the CONNACK.

The CONNECT is checked (protocol level, enhanced authentication, will QoS, client id) and refused
with a CONNACK failure code where it cannot be served. Otherwise reading pauses and the handler
authenticates: by the client's TLS certificate when it presented one and the handler has
`authenticate_certificate`, else by user name and password (`authenticate`); None or
`Unauthorized` refuses the connection, an exception answers "server unavailable". A session whose
identity and client id are already connected takes that connection over (the older one is closed
with 0x8E). Then CONNACK goes out, the keep-alive timer starts, and the packets the client
pipelined after its CONNECT are parsed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from iotfin.core.errors import Unauthorized
from iotfin.transports.mqtt import codec
from iotfin.transports.mqtt import reason_codes as rc
from iotfin.transports.mqtt.codec import UnsupportedProtocol
from iotfin.transports.mqtt.state import AUTHENTICATING, CLOSING, CONNECTED, PAUSED_FOR_AUTH

if TYPE_CHECKING:
    from iotfin.transports.mqtt.server import MqttServer

log = logging.getLogger(__name__)


def identity_key(identity: object, client_id: str) -> tuple[object, str] | None:
    """The key a session is registered under for takeover, or None for an unhashable identity."""
    try:
        hash(identity)
    except TypeError:
        return None
    return identity, client_id


class Authentication:
    """Session's CONNECT handling; its slots are declared by `Session`."""

    __slots__ = ()

    # owned here (initialized in Session.__init__)
    identity: object
    client_id: str
    connected_at: datetime | None
    _identity_key: tuple[object, str] | None  # the key in MqttServer._by_identity, if hashable

    if TYPE_CHECKING:  # what authentication uses of the rest of Session
        protocol_level: int
        peer: object
        _server: MqttServer
        _transport: asyncio.Transport | None
        _state: int
        _pending: bytearray | None
        _keep_alive_s: float
        _timer: asyncio.TimerHandle | None
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
        self._keep_alive_s = packet.keep_alive * 1.5
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
        self.connected_at = datetime.now(UTC)
        key = self._identity_key = identity_key(identity, self.client_id)
        if key is not None:
            previous = server._by_identity.get(key)
            if previous is not None:
                previous._close(rc.SESSION_TAKEN_OVER, "session taken over", drop_work=False)
            server._by_identity[key] = self  # type: ignore[assignment]  # self is a Session
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._keep_alive_s:
            assert server._loop is not None
            self._timer = server._loop.call_later(self._keep_alive_s, self._on_timer)
        pending, self._pending = self._pending, None
        self._resume(PAUSED_FOR_AUTH)
        if pending:
            self.data_received(bytes(pending))

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
