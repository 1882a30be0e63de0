"""What an idle authenticated session holds in Python objects, on each transport: a guard on the
epoll transport's point (bench/ingest_e2e.py measures the process's resident memory; this counts
the objects tracemalloc sees, which a code change moves deterministically: ~900 bytes on the epoll
transport, ~2,300 on asyncio's, with this test's handler). The clients are another process, so only
the server's objects are counted."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from tests.ingest_mqtt.conftest import ServerThread, wait_for

SESSIONS = 1_000

CLIENTS = textwrap.dedent("""
    import socket, sys
    sys.path.insert(0, sys.argv[3])
    from tests.ingest_mqtt import rawclient as raw
    socks = []
    for i in range(int(sys.argv[2])):
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        s.sendall(raw.connect(client_id=f"idle-{i}", username=f"dev-{i}", keep_alive=600))
        socks.append(s)
    for s in socks:
        assert s.recv(4) == bytes([0x20, 2, 0, 0])
    print("READY", flush=True)
    sys.stdin.read()
""")


@pytest.mark.parametrize(("transport", "most_bytes"), [("epoll", 1_200), ("asyncio", 3_000)])
def test_bytes_an_idle_session_holds(transport: str, most_bytes: int) -> None:
    server = ServerThread(epoll_transport=transport == "epoll")
    try:
        per_session = held_per_session(server)
    finally:
        server.stop()
    assert per_session <= most_bytes, f"{per_session:.0f} bytes of Python objects per idle session on {transport}"
    if transport == "asyncio":  # the comparison that makes the epoll bound mean something
        assert per_session > 1_800, per_session


def held_per_session(server: ServerThread) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        clients = subprocess.Popen([sys.executable, "-c", CLIENTS, str(server.port), str(SESSIONS),
                                    str(Path(__file__).resolve().parents[2])],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert clients.stdout is not None and clients.stdout.readline().strip() == "READY"
            wait_for(lambda: len(server.server.sessions) == SESSIONS)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            clients.communicate("", timeout=30)
    finally:
        tracemalloc.stop()
    wait_for(lambda: not server.server.sessions)
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / SESSIONS
