"""Worker processes for the open API (`iotfin serve-api`): N uvicorn servers on one port.

Each worker binds its own listening socket with SO_REUSEPORT, so the kernel spreads new connections
evenly over the workers. uvicorn's own `workers=N` shares one socket instead, and the kernel then
hands most connections to whichever worker accepts first: measured with `bench/api_read.py` (20
keep-alive connections, 2 workers), one worker did 6.8 s of CPU and the other 2.5 s, so the pair
served little more than one process would.

The supervisor (the calling process) restarts a worker that dies, stops them all on SIGTERM or
SIGINT, and — when started by `iotfin serve` — also when that parent process is gone, even if it was
killed without a chance to stop them.

A worker runs FastAPI's sync endpoints, sync dependencies and response validation on its event
loop instead of a thread pool (`run_blocking_inline`), like a pre-fork server's sync worker: the
processes give the concurrency, and each request saves two thread hand-offs and the GIL convoy
between the loop and the pool. Measured (`bench/api_read.py --api-workers 2`, a one-row read at a
target of 1,000 req/s): 574 → 876 req/s served, p50 13.3 → 2.0 ms, p99 121 → 42 ms, server CPU
1.77 → 1.11 ms per request. The cost: one slow request (a write waiting for SQLite's lock) holds up
the requests queued behind it on that worker. `iotfin serve` keeps the thread pool: its loop also
carries device traffic.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading

import fastapi.dependencies.utils as dependencies
import fastapi.routing as routing

log = logging.getLogger(__name__)

APP = "iotfin.app.http:open_api_app"
STOP_TIMEOUT_S = 30


async def _inline(func, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - starlette's signature
    return func(*args, **kwargs)


def run_blocking_inline() -> bool:
    """Make FastAPI call blocking code directly on the event loop in this process (an API worker).
    FastAPI has no setting for it, so its two module-level references to starlette's
    `run_in_threadpool` are replaced; if a FastAPI release renames them, the thread pool stays (and
    a warning says so) — slower, not wrong."""

    if not (hasattr(routing, "run_in_threadpool") and hasattr(dependencies, "run_in_threadpool")):
        log.warning("this FastAPI has no run_in_threadpool hooks: API workers keep the thread pool")
        return False
    routing.run_in_threadpool = _inline
    dependencies.run_in_threadpool = _inline
    return True


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it a small response waited on Nagle and the client's delayed ACK, ~40 ms a request
    # (bench/api_read.py --api-workers 2: p50 42 ms, and 0.3 ms once named)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # one socket per worker, balanced by the kernel
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(host: str, port: int) -> None:
    """One worker: its own SO_REUSEPORT socket and a uvicorn server (SIGTERM stops it gracefully)."""
    import uvicorn  # lazy: uvicorn loads only when this runs

    from iotfin.app.heap import settle_heap  # lazy, with what the worker runs

    config = uvicorn.Config(APP, factory=True, log_level="warning")
    config.load()  # the app built now (the server would build it on start), so that its objects are settled
    settle_heap()
    uvicorn.Server(config).run(sockets=[_listening_socket(host, port)])


def supervise(host: str, port: int, workers: int, parent_pid: int | None = None) -> None:
    """Run `workers` worker processes until SIGTERM/SIGINT (or the parent's end); restart any that die."""
    _listening_socket(host, port).close()  # a port that is taken fails here, with one clear error
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def start() -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=run_worker, args=(host, port), name="iotfin-api-worker")
        proc.start()
        return proc

    procs = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.5):
            if parent_pid is not None and os.getppid() != parent_pid:
                break  # `iotfin serve` is gone
            for i, proc in enumerate(procs):
                if not proc.is_alive():
                    log.warning("open-API worker %s exited with %s; starting another", proc.pid, proc.exitcode)
                    procs[i] = start()
    finally:
        stop_processes(procs)


def stop_processes(procs: list[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM every worker, then wait for each (killing what is still alive after STOP_TIMEOUT_S)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()

