"""Console page times on the demo workspace: every page each role can reach from its navigation (and
the first detail pages linked from them), and the 90-day telemetry chart of a 15-minute meter.

    .venv/bin/python bench/console_pages.py [--enterprises 300] [--days 180] [--repeat 15]

Builds the demo workspace (`iotfin demo --headless`) and its hourly telemetry rollups (`iotfin
telemetry rollup`, what `iotfin serve` does in the background), runs `iotfin serve`, signs in through the
sign-in form as the operator, a bank's officer, approver and risk manager and one enterprise, and
requests each page `--repeat` times one after another. "server" is the page's own time (its
`Server-Timing` header: session check, the in-process API calls, rendering); "wall" is the client's
time on loopback, an upper bound. Targets (issue 19): server p95 <= 200 ms per page; the 90-day chart
of 15-minute readings <= 300 ms. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

SIDEBAR = re.compile(r'<nav class="sidebar".*?</nav>', re.S)
HREF = re.compile(r'href="(/[^"#?]*)"')
SKIP = ("/docs", "/redoc", "/static", "/lang/", "/signin", "/signout", "/charts/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def sign_in(url: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=120, follow_redirects=True)
    form = client.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    done = client.post("/signin", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=False)
    assert done.status_code == 303, (username, done.status_code, done.text[:300])
    return client


def pages_of(client: httpx.Client, per_list: int = 2) -> list[str]:
    """The user's navigation, and the first detail links of each page it leads to."""
    home = client.get("/")
    nav = [h for h in HREF.findall(SIDEBAR.search(home.text).group(0)) if not h.startswith(SKIP)] if SIDEBAR.search(home.text) else []
    found: list[str] = list(dict.fromkeys(nav))
    for path in nav:
        body = client.get(path).text
        main = body.split('<main id="main">', 1)[-1]
        details = [h for h in HREF.findall(main) if h.startswith(path.rstrip("/") + "/") and not h.startswith(SKIP)]
        for href in list(dict.fromkeys(details))[:per_list]:
            if href not in found:
                found.append(href)
    return found


def timed(client: httpx.Client, path: str, repeat: int) -> dict[str, Any]:
    server, wall, status = [], [], None
    for _ in range(repeat):
        for _attempt in range(10):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 429:
                break
            # a page makes several API calls as its user, under the API's per-user rate limit (50/s,
            # burst 100): a person never meets it, a loop of 15 enterprise pages does. Wait, not counted.
            time.sleep(float(response.headers.get("retry-after", 2)))
        wall.append(elapsed)
        status = response.status_code
        timing = response.headers.get("server-timing", "")
        match = re.search(r"dur=([\d.]+)", timing)
        if match:
            server.append(float(match.group(1)))
    out: dict[str, Any] = {"status": status, "wall_p50_ms": round(statistics.median(wall), 1),
                           "wall_p95_ms": round(quantile(wall, 0.95), 1)}
    if server:
        out |= {"server_p50_ms": round(statistics.median(server), 1), "server_p95_ms": round(quantile(server, 0.95), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=300)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="reuse --workspace if this script built it before")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="console-bench-"))
    workspace = args.workspace or root / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(workspace)}
    started = time.perf_counter()
    saved = workspace / "bench-summary.json"
    if args.reuse and saved.exists():  # a workspace this script built before (see --reuse)
        summary = json.loads(saved.read_text())
    else:
        built = subprocess.run([sys.executable, "-m", "iotfin", "demo", "--headless", "--json", "--workspace",
                                str(workspace), "--enterprises", str(args.enterprises), "--days", str(args.days)],
                               env=env, capture_output=True, text=True, check=True)
        summary = json.loads(built.stdout)
        saved.write_text(json.dumps(summary))
    build_s = time.perf_counter() - started
    # the hourly rollups `iotfin serve` builds in the background at start and after each day: built
    # here first, so the figures are of the steady state and not of a server busy rolling up
    rolled = json.loads(subprocess.run([sys.executable, "-m", "iotfin", "telemetry", "rollup", "--json"], env=env,
                                       capture_output=True, text=True, check=True).stdout)
    password = summary["logins"]["password"]
    users = [u["username"] for u in summary["logins"]["users"]]
    people = [u for u in ("demo-operator", "bank-a-officer", "bank-a-approver", "bank-a-risk") if u in users]
    people += [u for u in users if u.startswith("enterprise-")][:1]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(port), "--mqtt-port",
                               str(free_port())], env=env, stdout=subprocess.DEVNULL, stderr=(root / "serve.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if server.poll() is not None:
                    sys.exit(f"iotfin serve exited: {(root / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.3)
        results: dict[str, dict[str, Any]] = {}
        for username in people:
            client = sign_in(url, username, password)
            for path in pages_of(client):
                timed(client, path, 2)  # warm
                results[f"{username} {path}"] = timed(client, path, args.repeat)
        # the 90-day chart of a 15-minute electricity meter, as the operator and as its house bank's officer
        operator = sign_in(url, "demo-operator", password)
        token = httpx.post(f"{url}/oauth/token", data={"grant_type": "password", "username": "demo-operator",
                                                        "password": password}).json()["access_token"]
        devices = httpx.get(f"{url}/api/v1/devices", params={"limit": 200},
                            headers={"Authorization": f"Bearer {token}"}).json()["items"]
        meter = next(d for d in devices if d["device_type"] == "electricity_meter")  # 15-minute readings
        end = int(time.time() * 1000)
        chart = (f"/charts/telemetry/{meter['enterprise_id']}/{meter['device_id']}.json"
                 f"?key=energy_kwh&from={end - 90 * 86_400_000}&to={end}")
        probe = operator.get(chart)
        assert probe.status_code == 200, (chart, probe.status_code, probe.text[-400:])
        points = sum(len(s["data"]) for s in probe.json()["series"])
        chart_times = {"operator": timed(operator, chart, args.repeat)}
        # ... and as a bank's officer, on the first meter of an enterprise that consented to that bank
        # reading its telemetry for credit assessment (the consent check and access-log row in each read)
        house = next((u["username"] for u in summary["logins"]["users"] if u["username"].endswith("-officer")), None)
        if house:
            officer = sign_in(url, house, password)
            officer_token = httpx.post(f"{url}/oauth/token", data={"grant_type": "password", "username": house,
                                                                   "password": password}).json()["access_token"]
            visible = httpx.get(f"{url}/api/v1/devices", params={"limit": 200, "purpose": "credit_assessment"},
                                headers={"Authorization": f"Bearer {officer_token}"}).json().get("items", [])
            for candidate in [d for d in visible if d["device_type"] == "electricity_meter"][:20]:
                consented = (f"/charts/telemetry/{candidate['enterprise_id']}/{candidate['device_id']}.json"
                             f"?key=energy_kwh&from={end - 90 * 86_400_000}&to={end}&purpose=credit_assessment")
                if officer.get(consented).status_code == 200:
                    chart_times[f"{house} (consent check + access log)"] = timed(officer, consented, args.repeat)
                    break
    finally:
        server.terminate()
        server.wait(timeout=30)
    ok = {k: v for k, v in results.items() if v["status"] == 200}
    worst = max(ok.items(), key=lambda kv: kv[1].get("server_p95_ms", kv[1]["wall_p95_ms"])) if ok else None
    print(json.dumps({
        "benchmark": "console_pages",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
        "workload": {"enterprises": args.enterprises, "days": args.days, "repeat": args.repeat, "users": people,
                     "pages": len(results), "demo_build_s": round(build_s, 1), "hourly_rollup": rolled},
        "pages": results,
        "worst_page": {"page": worst[0], **worst[1]} if worst else None,
        "server_p95_ms_max": max((v.get("server_p95_ms", 0) for v in ok.values()), default=None),
        "target_page_p95_ms": 200,
        "chart_90d_15min": {"points_drawn": points, **chart_times},
        "target_chart_ms": 300,
    }, indent=1))


if __name__ == "__main__":
    main()
