"""Benchmark: the platform's MQTT server (`iotfin.transports.mqtt`) under paho QoS 1 publishers, and idle sessions.

    .venv/bin/python bench/mqtt_server.py --clients 2 --messages 20000 --idle 10000
    .venv/bin/python bench/mqtt_server.py --peer          # also run amqtt (pip install -e '.[bench]')
    .venv/bin/python bench/mqtt_server.py --peer-python /tmp/amqtt-venv/bin/python  # amqtt kept in its own venv

The server runs in its own process with a handler that accepts everything (so this measures the
transport, not storage). K client processes each run one paho-mqtt client (MQTT 3.1.1, so the
amqtt peer can take the same load) publishing ~100-byte JSON at QoS 1 with at most `--window`
unacknowledged; publish -> PUBACK latency is timed per message; then one paho client with a single
message in flight (unloaded round trip). On a 2-core machine paho (~8.5k msg/s per process) is the
limit there, so a raw-socket client with prebuilt packets and 200 in flight then measures the
server's own ceiling; every phase reports the server process's CPU time per message. Last, a fresh
server process gets `--idle` connections (raw sockets from another process: CONNECT, CONNACK, then
silence, keep-alive 600 s) and its resident memory is read before and after. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

IOTFIN_SERVER = """
import asyncio, sys
from iotfin.transports.mqtt import MqttServer

class AcceptAll:
    async def authenticate(self, client_id, username, password, protocol_level):
        return client_id
    async def on_publish(self, session, topic, payload, qos):
        return 0
    async def on_subscribe(self, session, topic_filter, qos):
        return min(qos, 1)
    async def on_disconnect(self, session, reason):
        pass

async def main():
    server = MqttServer(AcceptAll(), port=0, backlog=4096)
    await server.start()
    print("READY", server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()

asyncio.run(main())
"""

AMQTT_SERVER = """
import asyncio, logging, socket, sys
from amqtt.broker import Broker

logging.disable(logging.CRITICAL)

async def main():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 0}},
                     "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}})
    await broker.start()
    print("READY", port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await broker.shutdown()

asyncio.run(main())
"""

TOPIC = b"v1/devices/me/telemetry"
PAYLOAD = json.dumps({"ts": 1_700_000_000_000, "values": {"energy_kwh": 12345.678, "power_kw": 3.21,
                                                          "voltage_v": 229.8, "status": "ok"}}).encode()


class ServerProcess:
    def __init__(self, python: str, script: str):
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        self.proc = subprocess.Popen([python, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"server did not start: {line}")
        self.port = int(line[1])

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def publisher(port: int, index: int, messages: int, window: int, go: mp.Event, results: mp.Queue) -> None:
    import paho.mqtt.client as mqtt

    slots = threading.Semaphore(window)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    done = threading.Event()

    def on_publish(client, userdata, mid, reason_code, properties):  # noqa: ANN001
        latencies.append(time.perf_counter() - sent_at.pop(mid))
        slots.release()
        if len(latencies) == messages:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{index}", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    go.wait()
    started = time.perf_counter()
    for _ in range(messages):
        slots.acquire()
        t0 = time.perf_counter()
        info = client.publish("v1/devices/me/telemetry", PAYLOAD, qos=1)
        sent_at[info.mid] = t0
    done.wait(120)
    finished = time.perf_counter()
    client.disconnect()
    client.loop_stop()
    results.put((len(latencies), started, finished, latencies))


def run_publishers(port: int, clients: int, messages: int, window: int) -> dict[str, float]:
    ctx = mp.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=publisher, args=(port, i, messages, window, go, results)) for i in range(clients)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every client connect
    go.set()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    acked = sum(o[0] for o in outcomes)
    elapsed = max(o[2] for o in outcomes) - min(o[1] for o in outcomes)
    latencies = sorted(x for o in outcomes for x in o[3])
    return {"acked": acked, "seconds": round(elapsed, 3), "msgs_per_second": round(acked / elapsed),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3)}


def varint(n: int) -> bytes:
    """MQTT variable-byte integer (remaining length)."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, keep_alive: int = 600, username: str | None = None) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session), with a username when the server authenticates by token."""
    cid = client_id.encode()
    flags = 0x02 | (0x80 if username else 0)
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + keep_alive.to_bytes(2, "big") + len(cid).to_bytes(2, "big") + cid
    if username:
        user = username.encode()
        body += len(user).to_bytes(2, "big") + user
    return b"\x10" + varint(len(body)) + body


def idle_opener(port: int, count: int, ready: mp.Event, release: mp.Event, failures: mp.Value,
                username: str | list[str] | None = None, hold_seconds: float = 300) -> None:
    """Open `count` MQTT sessions that then stay silent until `release` (the idle-memory probe); with a
    list of user names (access tokens), session i authenticates as username[i % len(username)]."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

    async def open_all() -> list[socket.socket]:
        loop = asyncio.get_running_loop()
        sockets: list[socket.socket] = []
        gate = asyncio.Semaphore(200)

        async def one(i: int) -> None:
            async with gate:
                sock = socket.socket()
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, ("127.0.0.1", port))
                    await loop.sock_sendall(sock, connect_packet(f"idle-{i}", 600, username[i % len(username)] if isinstance(username, list) else username))
                    connack = await loop.sock_recv(sock, 4)
                    if connack != b"\x20\x02\x00\x00":
                        raise RuntimeError(connack)
                    sockets.append(sock)
                except Exception:
                    failures.value += 1
                    sock.close()

        await asyncio.gather(*(one(i) for i in range(count)))
        return sockets

    sockets = asyncio.run(open_all())
    ready.set()
    release.wait(hold_seconds)
    for sock in sockets:
        sock.close()


def measure_idle(port: int, rss_bytes: Callable[[], int], count: int, username: str | list[str] | None = None,
                 settle_before_s: float = 0.5, settle_after_s: float = 1.0, timeout_s: float = 300) -> dict[str, float]:
    """Resident memory of the server process (`rss_bytes`) before and after `count` idle MQTT sessions
    opened from another process (`idle_opener`, with `username`), per session."""
    ctx = mp.get_context("fork")
    ready, release, failures = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    time.sleep(settle_before_s)
    before = rss_bytes()
    opener = ctx.Process(target=idle_opener, args=(port, count, ready, release, failures, username, 2 * timeout_s))
    started = time.perf_counter()
    opener.start()
    if not ready.wait(timeout_s):
        raise RuntimeError("idle connections did not open")
    connect_seconds = time.perf_counter() - started
    time.sleep(settle_after_s)
    after = rss_bytes()
    release.set()
    opener.join()
    opened = count - failures.value
    return {"connections": opened, "connect_seconds": round(connect_seconds, 1),
            "connect_per_second": round(opened / connect_seconds),
            "rss_before_mib": round(before / 2**20, 1), "rss_after_mib": round(after / 2**20, 1),
            "bytes_per_idle_session": round((after - before) / max(opened, 1))}


def publish_packet(packet_id: int) -> bytes:
    body = len(TOPIC).to_bytes(2, "big") + TOPIC + packet_id.to_bytes(2, "big") + PAYLOAD
    assert 128 <= len(body) < 16384
    return bytes([0x32, len(body) & 0x7F | 0x80, len(body) >> 7]) + body  # 128..16383: two length bytes


def raw_pipelined(port: int, messages: int, window: int, results: mp.Queue) -> None:
    """A load generator cheaper than paho: prebuilt packets, `window` QoS 1 PUBLISH in flight."""
    packets = [publish_packet(i % 0xFFFF + 1) for i in range(0xFFFF)]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(connect_packet("raw-load", 600))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        started = time.perf_counter()
        sent = acked = 0
        pending = b""
        while acked < messages:
            if sent - acked < window and sent < messages:
                batch = min(window - (sent - acked), messages - sent)
                sock.sendall(b"".join(packets[(sent + j) % 0xFFFF] for j in range(batch)))
                sent += batch
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            pending += chunk
            acked += len(pending) // 4  # PUBACK is 4 bytes
            pending = pending[len(pending) // 4 * 4:]
        results.put(messages / (time.perf_counter() - started))


def with_server_cpu(measure: dict[str, float], server: ServerProcess, cpu_at_start: float,
                    count_key: str) -> dict[str, float]:
    """Add the server process's CPU time per message over the phase."""
    measure["server_cpu_us_per_msg"] = round((server.cpu_seconds() - cpu_at_start) / measure[count_key] * 1e6, 1)
    return measure


def run(python: str, script: str, args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {}
    server = ServerProcess(python, script)
    try:
        cpu = server.cpu_seconds()
        result["paho_publishers"] = with_server_cpu(
            run_publishers(server.port, args.clients, args.messages, args.window), server, cpu, "acked")
        # unloaded round trip: one client, one message in flight (each message its own read, task and write)
        cpu = server.cpu_seconds()
        result["paho_single_inflight"] = with_server_cpu(
            run_publishers(server.port, 1, args.messages // 10, 1), server, cpu, "acked")
        # the server's own ceiling, with a client that costs less than it does
        ctx = mp.get_context("fork")
        queue: mp.Queue = ctx.Queue()
        cpu = server.cpu_seconds()
        load = ctx.Process(target=raw_pipelined, args=(server.port, args.raw_messages, 200, queue))
        load.start()
        rate = queue.get(timeout=120)
        load.join()
        result["raw_pipelined"] = with_server_cpu(
            {"messages": args.raw_messages, "window": 200, "msgs_per_second": round(rate)}, server, cpu, "messages")
    finally:
        server.stop()
    if args.idle:
        server = ServerProcess(python, script)
        try:
            result["idle"] = measure_idle(server.port, server.rss_bytes, args.idle)
        finally:
            server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=2, help="publisher processes")
    parser.add_argument("--messages", type=int, default=20_000, help="per publisher")
    parser.add_argument("--window", type=int, default=20, help="unacknowledged QoS 1 messages per publisher")
    parser.add_argument("--raw-messages", type=int, default=200_000, help="for the pipelined raw client")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (0: skip)")
    parser.add_argument("--peer", action="store_true", help="also run amqtt (from the [bench] extra) as the peer")
    parser.add_argument("--peer-python", help="run the amqtt peer with this Python (e.g. a separate venv)")
    args = parser.parse_args()
    if args.peer and not args.peer_python:
        args.peer_python = sys.executable
    ours = run(sys.executable, IOTFIN_SERVER, args)
    out: dict[str, object] = {
        "benchmark": "mqtt_server",
        "workload": {"clients": args.clients, "messages_per_client": args.messages, "window": args.window,
                     "qos": 1, "payload_bytes": len(PAYLOAD), "protocol": "MQTT 3.1.1", "idle_connections": args.idle,
                     "handler": "accepts everything (transport only)"},
        "iotfin": ours,
    }
    if args.peer_python:
        peer = run(args.peer_python, AMQTT_SERVER, args)
        out["amqtt"] = peer
        for phase in ("paho_publishers", "raw_pipelined"):
            out[f"ratio_msgs_per_second_{phase}"] = round(
                ours[phase]["msgs_per_second"] / peer[phase]["msgs_per_second"], 2)  # type: ignore[index]
        out["ratio_server_cpu_per_msg"] = round(
            ours["paho_publishers"]["server_cpu_us_per_msg"]  # type: ignore[index]
            / peer["paho_publishers"]["server_cpu_us_per_msg"], 3)  # type: ignore[index]
        if args.idle and "idle" in peer:
            out["ratio_bytes_per_idle_session"] = round(
                ours["idle"]["bytes_per_idle_session"] / max(peer["idle"]["bytes_per_idle_session"], 1), 3)  # type: ignore[index]
    out["machine"] = (f"{platform.machine()} {os.cpu_count()} cores {platform.python_implementation()} "
                      f"{platform.python_version()}")
    out["latency_note"] = "p50/p99: paho publish() call -> on_publish (PUBACK) callback, per message"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
