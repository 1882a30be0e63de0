"""The epoll transport (iotfin.transports.mqtt.tcp) against real sockets: what it keeps of asyncio's
transport contract, checked on its own, below the MQTT session. Each test runs one event loop with
the server side and blocking client sockets in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from iotfin.transports.mqtt import tcp

pytestmark = pytest.mark.skipif(not tcp.available(), reason="epoll is Linux only")


class Recorder(asyncio.Protocol):
    """Records every callback; echoes what it reads when asked to."""

    instances: list[Recorder]

    def __init__(self, echo: bool = False, raise_on: bytes | None = None, keep_open_on_eof: bool = False):
        self.echo, self.raise_on, self.keep_open_on_eof = echo, raise_on, keep_open_on_eof
        self.transport: Any = None
        self.received = bytearray()
        self.events: list[str] = []
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        if self.raise_on is not None and self.raise_on in data:
            raise RuntimeError("protocol bug")
        self.received += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        assert not self.lost.done(), "connection_lost called twice"
        self.lost.set_result(exc)


async def serve(factory: Callable[[], Recorder]) -> tuple[tcp.TcpConnections, int, list[Recorder]]:
    loop = asyncio.get_running_loop()
    protocols: list[Recorder] = []

    def make() -> Recorder:
        protocols.append(factory())
        return protocols[-1]

    listeners = tcp.listening_sockets("127.0.0.1", 0, 128, reuse_port=False)
    connections = tcp.TcpConnections(loop, listeners, make)
    return connections, listeners[0].getsockname()[1], protocols


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def in_thread(fn: Callable[[], Any]) -> Awaitable[Any]:
    return asyncio.get_running_loop().run_in_executor(None, fn)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_echo_and_orderly_close_by_the_client() -> None:
    async def scenario() -> None:
        connections, port, protocols = await serve(lambda: Recorder(echo=True))
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"hello")
        assert await in_thread(lambda: client.recv(5)) == b"hello"
        client.shutdown(socket.SHUT_WR)
        assert await protocols[0].lost is None
        assert protocols[0].events == ["made", "eof", "lost"]
        assert await in_thread(lambda: client.recv(1)) == b""  # closed from our side too
        assert protocols[0].transport.get_extra_info("peername") is None  # gone with the socket
        await until(lambda: len(connections) == 0)
        client.close()
        connections.close()

    run(scenario)


def test_close_sends_what_is_buffered_and_pauses_and_resumes_the_writer() -> None:
    big = bytes(range(256)) * 16384  # 4 MiB: more than the socket buffers take at once

    async def scenario() -> None:
        connections, port, protocols = await serve(Recorder)
        client = socket.create_connection(("127.0.0.1", port))
        await until(lambda: protocols)
        transport = protocols[0].transport
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.write(big)
        assert transport.get_write_buffer_size() > tcp.HIGH_WATER
        assert protocols[0].events == ["made", "pause_writing"]
        transport.close()
        assert transport.is_closing()
        assert not protocols[0].lost.done()  # not before the buffer is sent

        def read_all() -> bytes:
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

        assert await in_thread(read_all) == big
        assert await protocols[0].lost is None
        assert protocols[0].events == ["made", "pause_writing", "resume_writing", "lost"]
        client.close()
        connections.close()

    run(scenario)


def test_abort_drops_the_buffer_and_a_reset_reaches_connection_lost() -> None:
    async def scenario() -> None:
        connections, port, protocols = await serve(Recorder)
        aborted = socket.create_connection(("127.0.0.1", port))
        reset = socket.create_connection(("127.0.0.1", port))
        await until(lambda: len(protocols) == 2)
        protocols[0].transport.write(b"x" * (4 << 20))
        protocols[0].transport.abort()
        assert await protocols[0].lost is None
        assert protocols[0].transport.get_write_buffer_size() == 0
        protocols[0].transport.write(b"after")  # ignored, as asyncio does after the connection is lost
        # the client resets its connection (SO_LINGER 0) while we write to it
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        reset.close()
        exc = await protocols[1].lost
        assert exc is None or isinstance(exc, ConnectionError)
        aborted.close()
        await until(lambda: len(connections) == 0)
        connections.close()

    run(scenario)


def test_pause_reading_holds_data_until_resumed() -> None:
    async def scenario() -> None:
        connections, port, protocols = await serve(Recorder)
        client = socket.create_connection(("127.0.0.1", port))
        await until(lambda: protocols)
        protocol = protocols[0]
        protocol.transport.pause_reading()
        assert not protocol.transport.is_reading()
        client.sendall(b"held")
        await asyncio.sleep(0.1)
        assert protocol.received == b""
        protocol.transport.resume_reading()
        await until(lambda: protocol.received == b"held")
        client.close()
        await protocol.lost
        connections.close()

    run(scenario)


def test_a_protocol_that_raises_costs_only_its_own_connection() -> None:
    async def scenario() -> None:
        connections, port, protocols = await serve(lambda: Recorder(echo=True, raise_on=b"boom"))
        bad = socket.create_connection(("127.0.0.1", port))
        good = socket.create_connection(("127.0.0.1", port))
        await until(lambda: len(protocols) == 2)
        bad.sendall(b"boom")
        assert isinstance(await protocols[0].lost, RuntimeError)
        assert await in_thread(lambda: bad.recv(1)) == b""
        good.sendall(b"still here")
        assert await in_thread(lambda: good.recv(64)) == b"still here"
        bad.close()
        good.close()
        await protocols[1].lost
        connections.close()

    run(scenario)


def test_descriptor_numbers_reused_by_new_connections_are_never_confused() -> None:
    """A connection's descriptor number is free again once it is closed; the next connection often
    gets it. Each must reach its own protocol."""

    async def scenario() -> None:
        connections, port, protocols = await serve(lambda: Recorder(echo=True))
        for round_ in range(50):
            client = socket.create_connection(("127.0.0.1", port))
            message = b"round %d" % round_
            client.sendall(message)
            assert await in_thread(lambda c=client, n=len(message): c.recv(n)) == message
            protocols[-1].transport.close()
            await protocols[-1].lost
            client.close()
        assert [bytes(p.received) for p in protocols] == [b"round %d" % i for i in range(50)]
        assert len(connections) == 0
        connections.close()

    run(scenario)


def test_many_connections_at_once() -> None:
    async def scenario() -> None:
        connections, port, protocols = await serve(lambda: Recorder(echo=True))
        done = threading.Event()

        def clients() -> None:
            socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
            for i, sock in enumerate(socks):
                sock.sendall(b"%05d" % i)
            for i, sock in enumerate(socks):
                assert sock.recv(5) == b"%05d" % i
                sock.close()
            done.set()

        await in_thread(clients)
        assert done.is_set() and len(protocols) == 300
        await asyncio.gather(*(p.lost for p in protocols))
        connections.close()

    run(scenario)


def test_close_aborts_connections_and_frees_the_port() -> None:
    async def scenario() -> None:
        connections, port, protocols = await serve(Recorder)
        client = socket.create_connection(("127.0.0.1", port))
        await until(lambda: protocols)
        connections.close()
        await protocols[0].lost
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        client.close()
        again = tcp.listening_sockets("127.0.0.1", port, 16, reuse_port=False)  # the port is free
        for sock in again:
            sock.close()

    run(scenario)


def test_listening_sockets_share_a_port_with_reuse_port() -> None:
    first = tcp.listening_sockets("127.0.0.1", 0, 16, reuse_port=True)
    port = first[0].getsockname()[1]
    second = tcp.listening_sockets("127.0.0.1", port, 16, reuse_port=True)
    assert second[0].getsockname()[1] == port
    with pytest.raises(OSError):
        tcp.listening_sockets("127.0.0.1", port, 16, reuse_port=False)
    for sock in first + second:
        sock.close()


def test_every_address_of_a_name_listens_on_one_port() -> None:
    """A name that resolves to several addresses (localhost: 127.0.0.1 and, where configured, ::1)
    gets a socket for each, all on the port the system chose for the first."""
    sockets = tcp.listening_sockets("localhost", 0, 16, reuse_port=False)
    try:
        assert len({sock.getsockname()[1] for sock in sockets}) == 1
        assert {sock.family for sock in sockets} <= {socket.AF_INET, socket.AF_INET6}
    finally:
        for sock in sockets:
            sock.close()
