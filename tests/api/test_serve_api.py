"""`iotfin serve --api-workers 2` as an operator runs it: the open API from two worker processes on a
second port (same workspace, same answers), the device endpoints only on the main port, and no
worker left behind when the platform stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.model import Principal
from iotfin.identity.tables import Enterprise, Tenant
from tests.openapi_world import enterprise_row
from tests.services import free_port


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        children = {c for c, p in parents.items() if p == parent} - found
        found |= children
        frontier.extend(children)
    return found


def _wait(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up"
        time.sleep(0.3)


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_open_api_workers_serve_the_same_workspace_without_the_device_endpoints(tmp_path: Path, stop: str) -> None:
    ws = Workspace(Settings(data_dir=tmp_path))
    ws.initialise()
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"code": "bank-a", "name": "甲银行", "name_en": "Bank A", "kind": "bank"}])
        conn.execute(insert(Enterprise), [enterprise_row(1) | {"registered_capital": Decimal("1000000.00"),
                                                                "founded_on": date(2018, 5, 1)}])
    client = ws.identity.create_client("bank A core", "complaints:read", tenant="bank-a")
    complaint = ws.protection.submit_complaint(Principal(subject="test:setup", platform=True), category="pricing",
                                               subject="利率不清楚", description="the APR was not shown",
                                               tenant="bank-a", enterprise_id=1, contact_phone="13912345678")
    ws.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(tmp_path)}
    port, api_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(port), "--mqtt-port",
                               str(free_port()), "--api-workers", "2", "--api-port", str(api_port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", server)
        _wait(f"http://127.0.0.1:{api_port}/healthz", server)
        # the serve-api supervisor and its two workers run under the platform process
        assert len(_descendants(server.pid)) >= 3
        answers = []
        for base in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"):
            token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials",
                                                             "client_id": client["client_id"],
                                                             "client_secret": client["client_secret"]}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            got = httpx.get(f"{base}/api/v1/complaints/{complaint['id']}", headers=headers)
            assert got.status_code == 200, got.text
            answers.append(got.json())
            assert httpx.get(f"{base}/api/v1/complaints/{complaint['id']}").status_code == 401
        assert answers[0] == answers[1] and answers[0]["subject"] == "利率不清楚"
        # many at once (the workers run requests on their loops, one at a time each): all answered
        from concurrent.futures import ThreadPoolExecutor

        url = f"http://127.0.0.1:{api_port}/api/v1/complaints/{complaint['id']}"
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda _: httpx.get(url, headers=headers, timeout=30).status_code, range(64)))
        assert codes == [200] * 64
        # device traffic belongs to the main process (ingest, device sessions, the monitor)
        telemetry = "/api/v1/not-a-device-token/telemetry"
        assert httpx.post(f"http://127.0.0.1:{api_port}{telemetry}", json=[{"values": {"x": 1}}]).status_code == 404
        assert httpx.post(f"http://127.0.0.1:{port}{telemetry}", json=[{"values": {"x": 1}}]).status_code == 401
        assert "/api/v1/{token}/telemetry" not in httpx.get(f"http://127.0.0.1:{api_port}/openapi.json").json()["paths"]
    finally:
        getattr(server, stop)()  # SIGTERM: a clean stop; SIGKILL: the platform gets no chance to stop them
        server.wait(timeout=60)
    # the workers stop with the platform (SIGTERM here; a watchdog also covers a killed platform)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1)
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline, "the open-API workers outlived the platform"
        time.sleep(0.3)
