"""The API and ingest workers' own listening sockets (SO_REUSEPORT) give connections TCP_NODELAY,
as uvicorn's own sockets do: without it a small response waited on Nagle and the client's delayed
ACK, ~40 ms a request (bench/api_read.py --api-workers 2)."""

from __future__ import annotations

import asyncio
import socket

from iotfin.app.workers import _listening_socket


def test_accepted_connections_have_tcp_nodelay() -> None:
    async def probe() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = _listening_socket("127.0.0.1", 0)
        server = await asyncio.start_server(on_connect, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            return await asyncio.wait_for(accepted, 5)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(probe()) != 0
