"""Probe: asyncio Protocol callbacks versus asyncio streams for an MQTT server's connections.

    .venv/bin/python bench/mqtt_transport_probe.py --idle 10000 --pings 200000

Two minimal servers that answer CONNECT with CONNACK and PINGREQ with PINGRESP, written each way.
Measures resident bytes per idle connection and pipelined PINGREQ round trips per second from one
client. This is why `iotfin.transports.mqtt` is built on Protocol. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import time

from mqtt_server import ServerProcess, connect_packet, measure_idle

PROTOCOL_SERVER = """
import asyncio, sys

class Conn(asyncio.Protocol):
    __slots__ = ("transport", "buffer")
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
    def data_received(self, data):
        buf = self.buffer + data if self.buffer else data
        pos = 0
        while len(buf) - pos >= 2 and len(buf) - pos >= 2 + buf[pos + 1]:
            kind, size = buf[pos], buf[pos + 1]
            if kind == 0x10:
                self.transport.write(b"\\x20\\x02\\x00\\x00")
            elif kind == 0xC0:
                self.transport.write(b"\\xd0\\x00")
            pos += 2 + size
        self.buffer = buf[pos:]

async def main():
    server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", 0, backlog=4096)
    print("READY", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""

STREAMS_SERVER = """
import asyncio, sys

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readexactly(2)
            await reader.readexactly(head[1])
            if head[0] == 0x10:
                writer.write(b"\\x20\\x02\\x00\\x00")
            elif head[0] == 0xC0:
                writer.write(b"\\xd0\\x00")
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=4096)
    print("READY", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def pipelined_pings(port: int, count: int, window: int = 200) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(connect_packet("probe", 600))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        started = time.perf_counter()
        sent = received = 0
        pending = b""
        while received < count:
            if sent - received < window and sent < count:
                batch = min(window - (sent - received), count - sent)
                sock.sendall(b"\xc0\x00" * batch)
                sent += batch
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            pending += chunk
            received += len(pending) // 2
            pending = pending[len(pending) // 2 * 2:]
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--pings", type=int, default=200_000)
    args = parser.parse_args()
    out: dict[str, object] = {"benchmark": "mqtt_transport_probe", "idle_connections": args.idle,
                              "pipelined_pings": args.pings}
    for name, script in (("protocol", PROTOCOL_SERVER), ("streams", STREAMS_SERVER)):
        server = ServerProcess(sys.executable, script)
        try:
            cpu = server.cpu_seconds()
            rate = pipelined_pings(server.port, args.pings)
            result = {"pings_per_second": round(rate),
                      "server_cpu_us_per_ping": round((server.cpu_seconds() - cpu) / args.pings * 1e6, 2)}
        finally:
            server.stop()
        server = ServerProcess(sys.executable, script)
        try:
            result |= measure_idle(server.port, server.rss_bytes, args.idle)
        finally:
            server.stop()
        out[name] = result
    protocol, streams = out["protocol"], out["streams"]
    out["ratio_bytes_per_idle_session"] = round(
        protocol["bytes_per_idle_session"] / max(streams["bytes_per_idle_session"], 1), 3)  # type: ignore[index]
    out["ratio_pings_per_second"] = round(protocol["pings_per_second"] / streams["pings_per_second"], 2)  # type: ignore[index]
    out["machine"] = f"{platform.machine()} {os.cpu_count()} cores {platform.python_implementation()} {platform.python_version()}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
