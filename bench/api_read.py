"""Read-endpoint latency under a fixed request rate, from a separate load generator process (wrk).

Starts `iotfin serve` (one uvicorn process) on a fresh workspace with one lender, one enterprise,
a partner client and `--complaints` complaints, then drives each read endpoint with wrk at
`--rate` requests/s (paced by a Lua `delay()` per connection: wrk 4 has no fixed-rate mode) and
reports the latency percentiles wrk measured, plus throughput and non-2xx counts.

    python bench/api_read.py --rate 1000 --duration 20
    python bench/api_read.py --rate 1000 --duration 20 --api-workers 2   # the open API from 2 processes

The server's CPU per request counts the `iotfin serve` process and all its descendants (the
`serve-api` supervisor and its workers).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import insert

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.model import Principal
from iotfin.identity.tables import Enterprise, Tenant

LUA = """
local connections = 0
local pause = %(pause)d
init = function(args)
  connections = connections + 1
end
request = function()
  return wrk.format("GET", nil, {["Authorization"] = "Bearer %(token)s"})
end
delay = function()
  -- uniform on [pause/2, 3 pause/2]: the same mean, but the connections drift apart instead of
  -- firing in lockstep bursts (a fixed pause keeps them synchronised from the first request)
  return math.random(math.floor(pause / 2), math.floor(pause * 3 / 2))
end
done = function(summary, latency, requests)
  local codes = summary.errors.status
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "socket_errors": %%d, '
    .. '"p50_ms": %%.3f, "p90_ms": %%.3f, "p99_ms": %%.3f, "p999_ms": %%.3f, "max_ms": %%.3f, "mean_ms": %%.3f}\\n',
    summary.requests, summary.duration, codes,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, latency.mean / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(data_dir: Path, complaints: int) -> tuple[dict, list[int]]:
    ws = Workspace(Settings(data_dir=data_dir))
    ws.initialise()
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"code": "bank-a", "name": "甲银行", "name_en": "Bank A", "kind": "bank"}])
        conn.execute(insert(Enterprise), [dict(
            id=1, uscc="91440300MA5F000000", name="企业1", name_en="Firm 1", sector="manufacturing", subsector="x",
            region_code="440300", region="深圳", founded_on=date(2018, 5, 1), registered_capital=Decimal("1000000.00"),
            legal_rep_name="李四", legal_rep_id_number="x", legal_rep_phone="x", tax_grade="B", litigation_count=0,
            key_person_changes=0)])
    cred = ws.identity.create_client("bench", "complaints:read financing:read", tenant="bank-a")
    op = Principal(subject="bench:setup", platform=True)
    ids = [ws.protection.submit_complaint(op, category="pricing", subject=f"c{i}", description="d" * 200,
                                          tenant="bank-a", enterprise_id=1, contact_phone="13912345678")["id"]
           for i in range(complaints)]
    ws.close()
    return cred, ids


def run_wrk(url: str, token: str, rate: int, duration: int, connections: int, threads: int, workdir: Path) -> dict:
    script = workdir / "read.lua"
    pause_ms = max(1, round(connections * 1000 / rate))
    script.write_text(LUA % {"pause": pause_ms, "token": token})
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
                          "-s", str(script), url], capture_output=True, text=True, check=True)
    line = next(row for row in out.stdout.splitlines() if row.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["achieved_rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and all its descendants (Linux /proc: the
    `serve-api` supervisor and its workers count too), to judge a run on a shared machine."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _) in stats.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, url: str, token: str, args: argparse.Namespace, workdir: Path) -> dict:
    """One wrk run with the server's CPU time over it: CPU per request is what a quiet machine would pay."""
    before, wall, load = cpu_seconds(pid), time.perf_counter(), os.getloadavg()[0]
    result = run_wrk(url, token, args.rate, args.duration, args.connections, 2, workdir)
    cpu = cpu_seconds(pid) - before
    return result | {"wall_s": round(time.perf_counter() - wall, 2), "server_cpu_s": round(cpu, 2),
                     "server_cpu_ms_per_request": round(1000 * cpu / max(result["requests"], 1), 3),
                     "load_avg_1m_before": load, "load_avg_1m_after": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--complaints", type=int, default=200)
    ap.add_argument("--api-workers", type=int, default=0,
                    help="serve with --api-workers N and drive the open-API worker processes' port")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "ws"
        cred, ids = setup(data_dir, args.complaints)
        port = free_port()
        api_port = free_port() if args.api_workers else port
        extra = ["--api-workers", str(args.api_workers), "--api-port", str(api_port)] if args.api_workers else []
        env = os.environ | {"IOTFIN_RATE_LIMIT_PER_S": "1000000", "IOTFIN_RATE_LIMIT_BURST": "1000000",
                            "IOTFIN_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(port),
                                   "--mqtt-port", str(free_port()), "--data-dir", str(data_dir), *extra],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{api_port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"server did not start: {server.stderr.read().decode()[-2000:] if server.stderr else ''}")
                time.sleep(0.2)
            token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                                             "client_secret": cred["client_secret"]}).json()["access_token"]
            endpoints = {
                "GET /api/v1/me (token check only)": f"{base}/api/v1/me",
                "GET /api/v1/complaints/{id} (token, tenant check, row, decrypt 1 field)": f"{base}/api/v1/complaints/{ids[len(ids) // 2]}",
                "GET /api/v1/complaints?limit=20 (token, tenant-filtered page)": f"{base}/api/v1/complaints?limit=20",
            }
            run_wrk(f"{base}/api/v1/me", token, args.rate, 3, args.connections, 2, Path(tmp))  # warm-up
            figures = {name: measured(server.pid, url, token, args, Path(tmp)) for name, url in endpoints.items()}
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(json.dumps({
        "benchmark": "api_read",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_end": os.getloadavg()},
        "workload": {"target_rps": args.rate, "duration_s": args.duration, "connections": args.connections,
                     "load_generator": "wrk 4 (separate process, 2 threads, Lua-paced)",
                     "server": (f"iotfin serve --api-workers {args.api_workers}: the open API from "
                                f"{args.api_workers} uvicorn worker processes" if args.api_workers else
                                "iotfin serve: one uvicorn process") + ", SQLite",
                     "complaints": args.complaints},
        "figures": figures,
    }, indent=1))


if __name__ == "__main__":
    main()
