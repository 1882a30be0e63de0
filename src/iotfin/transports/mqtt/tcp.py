"""Plain-TCP MQTT connections on one epoll of their own: a lean `asyncio.Transport` for idle fleets.

Why by hand, beside asyncio's own transport: a device fleet is mostly idle connections, and
asyncio's `_SelectorSocketTransport` costs ~1.7 KB of Python objects per connection (the transport
and its extra-info dict, peer and socket name tuples, the reader `Handle` with its copied context,
the `SelectorKey`, a weak reference in the loop's transport table). Measured with
bench/ingest_e2e.py's idle phase, that was half of the 3.4 KB an idle authenticated session cost.
uvloop's transport is no leaner (2.5 KB). Here a connection is its socket and one slotted
`TcpTransport` (~100 bytes) in a dict keyed by file descriptor; one `select.epoll` holds every
connection's interest and is itself one reader of the event loop, so a readable socket is found with
one `epoll.poll` and one dict lookup, without a `Handle` per connection.

What it keeps of asyncio's transport contract (what `Session` uses): `write` sends at once when
nothing is buffered, buffers the rest and calls the protocol's `pause_writing` above
`HIGH_WATER` / `resume_writing` below `LOW_WATER`; `pause_reading` / `resume_reading`; `close`
sends what is buffered first, `abort` does not; `connection_lost` is called once, from the event
loop, a loop iteration after the close; end of file calls `eof_received` and closes unless it
returns true; a socket error closes the connection and reaches `connection_lost`.

TLS (mqtts) stays on asyncio's transport, as do platforms without epoll (`available()`).
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import select
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: bytes read per readable event (asyncio reads up to 256 KiB too)
MAX_READ = 256 * 1024
#: write buffer above which the protocol is told to pause writing, and below which to resume
HIGH_WATER = 64 * 1024
LOW_WATER = HIGH_WATER // 4
#: connections accepted per readable event of a listening socket, and readiness events taken per poll:
#: bounded so one busy loop iteration cannot starve the rest of the loop
ACCEPTS_PER_EVENT = 128
EVENTS_PER_POLL = 1024
#: out of file descriptors or memory: stop accepting for this long (as asyncio does)
ACCEPT_RETRY_S = 1.0

_IN, _OUT = select.EPOLLIN if hasattr(select, "EPOLLIN") else 1, select.EPOLLOUT if hasattr(select, "EPOLLOUT") else 4
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# TcpTransport._flags
_READING, _CLOSING, _WRITING_PAUSED, _LOST = 1, 2, 4, 8


def available() -> bool:
    """Whether this platform has epoll (Linux); elsewhere the server uses asyncio's transport."""
    return hasattr(select, "epoll")


def listening_sockets(host: str | None, port: int, backlog: int, reuse_port: bool) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for `host` (every address it resolves to, as
    `loop.create_server` binds them), with SO_REUSEADDR and, when asked, SO_REUSEPORT."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):  # resolvers may repeat an address
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 address has its own socket
            # port 0: the system chooses for the first address, and every other address uses that port
            sock.bind((address[0], port, *address[2:]))
            sock.listen(backlog)
            sock.setblocking(False)
            port = sock.getsockname()[1]
        return sockets
    except BaseException:
        for sock in sockets:
            sock.close()
        raise


class TcpConnections:
    """Listening sockets and the connections accepted from them, on one epoll read by `loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listeners: list[socket.socket],
                 protocol_factory: Callable[[], asyncio.Protocol]):
        self.loop = loop
        self.listeners = listeners
        self._protocol_factory = protocol_factory
        self._epoll = select.epoll()
        self._transports: dict[int, TcpTransport] = {}
        self._accepting = False
        loop.add_reader(self._epoll.fileno(), self._on_events)
        self._start_accepting()

    def __len__(self) -> int:
        return len(self._transports)

    def stop_listening(self) -> None:
        """Stop accepting and close the listening sockets; accepted connections stay."""
        self._stop_accepting()
        for sock in self.listeners:
            sock.close()
        self.listeners = []

    def close(self) -> None:
        """Stop listening and abort every connection (their `connection_lost` follows from the loop);
        the epoll goes once the last of them is gone."""
        self.stop_listening()
        for transport in list(self._transports.values()):
            transport.abort()
        self.loop.call_soon(self._close_epoll)

    def _close_epoll(self) -> None:
        if self._transports:  # a connection_lost is still to come
            self.loop.call_soon(self._close_epoll)
            return
        if not self._epoll.closed:
            self.loop.remove_reader(self._epoll.fileno())
            self._epoll.close()

    # --- accepting -----------------------------------------------------------------------------

    def _start_accepting(self) -> None:
        if not self._accepting and self.listeners:
            self._accepting = True
            for sock in self.listeners:
                self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _stop_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self.listeners:
                self.loop.remove_reader(sock.fileno())

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    raise
                log.error("cannot accept MQTT connections (%s); pausing accepting for %.0f s", exc, ACCEPT_RETRY_S)
                self._stop_accepting()
                self.loop.call_later(ACCEPT_RETRY_S, self._start_accepting)
                return
            # kept as the C-level socket, 56 bytes less per connection than socket.socket's wrapper
            sock = _socket.socket(conn.family, conn.type, conn.proto, conn.detach())
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small PUBACKs must not wait on Nagle
            self._connected(sock)

    def _connected(self, conn: _socket.socket) -> None:
        protocol = self._protocol_factory()
        transport = TcpTransport(self, conn, protocol)
        self._transports[transport._fd] = transport
        try:
            protocol.connection_made(transport)
        except Exception:
            log.exception("connection_made raised; connection aborted")
            transport.abort()
            return
        transport._update_interest()

    # --- readiness -----------------------------------------------------------------------------

    def _on_events(self) -> None:
        transports = self._transports
        for fd, events in self._epoll.poll(0, EVENTS_PER_POLL):
            transport = transports.get(fd)
            if transport is None:
                continue
            try:
                # an error or hang-up is reported whatever was asked for: reading or writing meets it
                if events & _OUT:
                    transport._write_ready()
                if events & ~_OUT and transport._interest & _IN:
                    transport._read_ready()
            except Exception as exc:  # the protocol's bug costs its own connection, not the others
                log.exception("%r: unexpected error; connection aborted", transport._protocol)
                transport._force_close(exc)


class TcpTransport(asyncio.Transport):
    """One accepted TCP connection (see the module docstring for what it keeps of asyncio's contract)."""

    # a connection holds only this object and a C-level `_socket.socket` (48 bytes, not tracked by the
    # garbage collector; a `socket.socket` is 104): an idle fleet is many of them
    __slots__ = ("_connections", "_sock", "_fd", "_protocol", "_buffer", "_interest", "_flags")

    def __init__(self, connections: TcpConnections, sock: _socket.socket, protocol: asyncio.Protocol):
        # asyncio.BaseTransport.__init__ is not called: its extra-info dict is what this class saves
        self._connections = connections
        self._sock: _socket.socket | None = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._buffer: bytearray | None = None  # unsent bytes; None when empty
        self._interest = 0                      # the epoll events registered (0: not registered)
        self._flags = _READING

    def __repr__(self) -> str:
        return f"<TcpTransport fd={self._fd}{' closing' if self._flags & _CLOSING else ''}>"

    # --- asyncio.BaseTransport / ReadTransport / WriteTransport ----------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sock = self._sock
        if sock is None:
            return default
        try:
            if name == "peername":
                return sock.getpeername()
            if name == "sockname":
                return sock.getsockname()
        except OSError:
            return default
        if name == "socket":
            return sock
        return default

    def is_closing(self) -> bool:
        return bool(self._flags & _CLOSING)

    def close(self) -> None:
        if self._flags & _CLOSING:
            return
        self._flags |= _CLOSING
        self._update_interest()
        if not self._buffer:
            self._schedule_connection_lost(None)

    def abort(self) -> None:
        self._force_close(None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return self._flags & (_READING | _CLOSING) == _READING

    def pause_reading(self) -> None:
        if self._flags & _READING:
            self._flags &= ~_READING
            self._update_interest()

    def resume_reading(self) -> None:
        if not self._flags & _READING:
            self._flags |= _READING
            self._update_interest()

    def get_write_buffer_size(self) -> int:
        return len(self._buffer) if self._buffer else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return LOW_WATER, HIGH_WATER

    def can_write_eof(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._flags & _LOST or not data:
            return
        if self._buffer:
            self._buffer += data
        else:
            try:
                sent = self._sock.send(data)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._force_close(exc)
                return
            if sent == len(data):
                return
            self._buffer = bytearray(memoryview(data)[sent:])
            self._update_interest()
        if not self._flags & _WRITING_PAUSED and len(self._buffer) > HIGH_WATER:
            self._flags |= _WRITING_PAUSED
            self._protocol.pause_writing()

    # --- driven by TcpConnections -----------------------------------------------------------------

    def _read_ready(self) -> None:
        try:
            data = self._sock.recv(MAX_READ)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._force_close(exc)
            return
        if data:
            self._protocol.data_received(data)
        elif not self._protocol.eof_received():
            self.close()
        else:
            self.pause_reading()  # half-closed and the protocol keeps writing: nothing more to read

    def _write_ready(self) -> None:
        buffer = self._buffer
        if not buffer or self._flags & _LOST:
            return
        try:
            sent = self._sock.send(buffer)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._force_close(exc)
            return
        del buffer[:sent]
        if self._flags & _WRITING_PAUSED and len(buffer) <= LOW_WATER:
            self._flags &= ~_WRITING_PAUSED
            self._protocol.resume_writing()  # may write again, into this same buffer
        if buffer or self._flags & _LOST:
            return
        self._buffer = None
        self._update_interest()
        if self._flags & _CLOSING:
            self._schedule_connection_lost(None)

    def _update_interest(self) -> None:
        """Register with the epoll exactly what this connection waits for; nothing at all while it
        waits for nothing, as an error or hang-up would otherwise be reported on every poll."""
        flags = self._flags
        if flags & _LOST:
            return
        want = (_IN if flags & (_READING | _CLOSING) == _READING else 0) | (_OUT if self._buffer else 0)
        if want == self._interest:
            return
        epoll = self._connections._epoll
        if not self._interest:
            epoll.register(self._fd, want)
        elif not want:
            epoll.unregister(self._fd)
        else:
            epoll.modify(self._fd, want)
        self._interest = want

    def _force_close(self, exc: BaseException | None) -> None:
        if self._flags & _LOST:
            return
        if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("%r: closed on %r", self, exc)
        self._flags |= _CLOSING
        self._buffer = None
        self._schedule_connection_lost(exc)

    def _schedule_connection_lost(self, exc: BaseException | None) -> None:
        if self._flags & _LOST:
            return
        if self._interest:
            self._connections._epoll.unregister(self._fd)
            self._interest = 0
        self._flags |= _LOST
        self._connections.loop.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            # the descriptor is forgotten before it is closed, so a connection that reuses its number
            # is never mistaken for this one
            self._connections._transports.pop(self._fd, None)
            if self._sock is not None:
                self._sock.close()
                self._sock = None
