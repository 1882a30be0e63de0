"""Flow control of a `Session` (session.py), as a mixin: when to stop reading, what keeps a connection
alive, and how much the server may send.

* **Reading backpressure.** Reading a socket pauses for any of three reasons (bits, state.py): the
  CONNECT is being authenticated (auth.py), the session's queue of packets for the handler reached
  `PAUSE_READING_AT` (it resumes at `RESUME_READING_AT`), or our send buffer is full
  (asyncio's `pause_writing`: a client that does not read its replies may not make us queue more).
* **Keep-alive.** One deadline per session, on the server's shared timer (deadlines.py): the CONNECT
  deadline first, then 1.5 x the client's keep-alive. Time spent with reading paused by us does not
  count against the client.
* **Outbound QoS 1** (`publish`): at most the client's Receive Maximum of our PUBLISH packets await
  its PUBACK (packet ids in `_inflight`), nothing over its Maximum Packet Size is sent, and a
  full send buffer makes `publish` wait.

The inbound side of Receive Maximum (PUBLISH received and not yet acknowledged, `_unacked`) and
the PUBACK that frees an outbound slot are counted inline where those packets are parsed and
answered (session.py), as they are on the per-message path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from iotfin.transports.mqtt import codec
from iotfin.transports.mqtt import reason_codes as rc
from iotfin.transports.mqtt.state import CLOSING, CONNECTED, PAUSED_FOR_WORK, PAUSED_FOR_WRITE
from iotfin.transports.mqtt.topics import is_valid_topic_name, topic_matches

if TYPE_CHECKING:
    from iotfin.transports.mqtt.server import MqttServer

log = logging.getLogger(__name__)

#: a session's queue of packets awaiting the handler; past this, stop reading its socket
PAUSE_READING_AT = 128
RESUME_READING_AT = 32


class FlowControl:
    """Session's flow control; its slots are declared by `Session`."""

    __slots__ = ()

    # owned here (initialized in Session.__init__)
    _paused: int                                # PAUSED_FOR_* bits
    _keep_alive: int                            # the client's keep-alive, seconds (0 = none); 1.5 x it may pass
    _deadline: float                            # the CONNECT deadline, then keep-alive (0: none)
    _inflight: set[int] | None                  # packet ids of our QoS 1 PUBLISH awaiting PUBACK
    _next_packet_id: int
    _client_receive_max: int                    # from CONNECT (MQTT 5), else 0xFFFF
    _client_max_packet: int                     # from CONNECT (MQTT 5), else 0 = no limit
    _waiters: list[asyncio.Future[None]] | None  # publish() calls waiting for a slot or the buffer

    if TYPE_CHECKING:  # what flow control uses of the rest of Session
        last_activity: float
        protocol_level: int
        peer: object
        _server: MqttServer
        _transport: asyncio.Transport | None
        _state: int
        _subscriptions: dict[str, int] | None

        def _send(self, packet: bytes) -> None: ...
        def _close(self, code: int, reason: str, drop_work: bool) -> None: ...

    # --- outbound QoS 1 --------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Send to the client if it subscribed to a matching filter (else dropped, as MQTT does),
        at the lower of `qos` and the granted QoS. Returns whether it was written; does not wait
        for the client's PUBACK, only for room in the client's receive window and our send buffer."""
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS must be 0, 1 or 2, not {qos!r}")
        if not is_valid_topic_name(topic):
            raise ValueError(f"invalid topic name {topic!r}")
        stats = self._server.stats
        granted = self._granted_qos(topic) if self._state == CONNECTED else None
        if granted is None:
            stats.dropped += 1
            return False
        qos = min(qos, granted)
        v5 = self.protocol_level == codec.MQTT_5
        packet_id = 0
        if qos:
            while self._inflight is not None and len(self._inflight) >= min(self._client_receive_max, 0xFFFE):
                await self._wait_for_change()
                if self._state != CONNECTED:
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
        while self._paused & PAUSED_FOR_WRITE and self._state == CONNECTED:
            await self._wait_for_change()
        return True

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

    # --- reading and writing backpressure ----------------------------------------------------------

    def pause_writing(self) -> None:  # asyncio.Protocol: our send buffer is over its high-water mark
        self._pause(PAUSED_FOR_WRITE)

    def resume_writing(self) -> None:
        self._resume(PAUSED_FOR_WRITE)
        self._wake()

    def _pause(self, why: int) -> None:
        if not self._paused and self._transport is not None:
            self._transport.pause_reading()
        self._paused |= why

    def _resume(self, why: int) -> None:
        if not self._paused & why:
            return
        self._paused &= ~why
        if not self._paused and self._transport is not None and self._state < CLOSING:
            self._transport.resume_reading()

    # --- the CONNECT deadline and keep-alive -------------------------------------------------------

    def _on_timer(self) -> None:
        """The session's deadline came (server._deadlines)."""
        self._deadline = 0.0
        server = self._server
        if self._state < CONNECTED:
            server.stats.connect_timeouts += 1
            log.debug("%s: no CONNACK within %.1f s", self.peer, server.connect_timeout_s)
            self._close(rc.MALFORMED_PACKET, "connect timeout", drop_work=True)
            return
        if self._state != CONNECTED:
            return
        assert server._loop is not None
        now = server._loop.time()
        if self._paused & (PAUSED_FOR_WORK | PAUSED_FOR_WRITE):
            self.last_activity = now  # we stopped reading, so the client's PINGREQs wait in the socket
        idle = now - self.last_activity
        allowed = self._keep_alive * 1.5
        if idle >= allowed:
            server.stats.keep_alive_timeouts += 1
            self._close(rc.KEEP_ALIVE_TIMEOUT, "keep-alive timeout", drop_work=False)
        else:
            self._deadline = now + allowed - idle
            server._deadlines.add(self, self._deadline)
