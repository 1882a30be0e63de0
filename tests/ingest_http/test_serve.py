"""`iotfin serve` as an operator runs it: a device created by the CLI posts over real HTTP, and the
readings are queryable from the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _iotfin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120, env=env)


def test_serve_create_post_query(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(tmp_path)}
    onboard = (("db", "upgrade"), ("enterprises", "create", "--uscc", "91440300MA5G0001XL", "--name", "测试企业", "--name-en", "Test Co",
                "--sector", "energy", "--region-code", "440300", "--founded-on", "2019-01-01", "--registered-capital",
                "1000000", "--legal-rep-name", "张三", "--legal-rep-id-number", "P1234567", "--legal-rep-phone",
                "13800000000"),
               ("sites", "create", "--enterprise", "1", "--name", "plant", "--kind", "factory", "--address",
                "深圳市南山区1号", "--lat", "22.5", "--lon", "113.9"))
    for args in onboard:
        done = _iotfin(env, *args, "--json")
        assert done.returncode == 0, done.stderr
    site = json.loads(done.stdout)["id"]
    refused = _iotfin(env, "devices", "create", "--json")  # no site, no enterprise: no silent default
    assert refused.returncode == 65 and "--site" in refused.stderr
    created = _iotfin(env, "devices", "create", "--site", str(site), "--json")
    assert created.returncode == 0, created.stderr
    device = json.loads(created.stdout)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.3)
        base = f"http://127.0.0.1:{port}/api/v1/{device['token']}/telemetry"
        readings = [{"ts": 1_767_225_600_000 + i * 60_000, "values": {"power_kw": 10.0 + i}} for i in range(120)]
        assert httpx.post(base, json=readings, timeout=10).status_code == 200
        assert httpx.post(base.replace(device["token"], "wrong"), json={"x": 1}, timeout=10).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
    query = _iotfin(env, "telemetry", "query", "--device", str(device["id"]), "--key", "power_kw",
                    "--from", "2026-01-01", "--to", "2026-01-02", "--agg", "1h", "--json")
    assert query.returncode == 0, query.stderr
    rows = json.loads(query.stdout)["rows"]
    assert [r["count"] for r in rows] == [60, 60] and rows[0]["min"] == 10.0 and rows[1]["max"] == 129.0
