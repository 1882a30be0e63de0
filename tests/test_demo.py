"""`iotfin demo` end to end, as a user runs it: headless JSON summary, and serving the platform."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _demo(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotfin", "demo", *args], capture_output=True, text=True, timeout=timeout)


def test_headless_demo_prints_one_json_summary(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    done = _demo("--headless", "--json", "--enterprises", "40", "--days", "30", "--workspace", str(ws))
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    assert s["economy"]["enterprises"] == 40 and s["devices"]["total"] == 400  # 10 per enterprise below 200
    assert set(s["economy"]["enterprises_by_sector"]) == {"manufacturing", "logistics", "energy", "agriculture",
                                                          "infrastructure"}
    ingest = s["ingest"]
    # Every simulated reading is plausible: all of it passes validation and is stored.
    assert ingest["offered"] > 100_000 and ingest["accepted"] == ingest["offered"] and ingest["rejected"] == 0
    assert s["telemetry"]["data_points"] == ingest["accepted"]
    assert s["loaded_rows"]["trade_documents"] == s["simulation"]["manifest_counts"]["trade_documents"]
    assert len(s["ground_truth"]["incidents_by_type"]) == 8
    # Every simulated double financing is refused by the registry, and nothing else is.
    fin = s["financing_registry"]
    assert fin["refused"] == s["ground_truth"]["incidents_by_type"]["double_financing"] > 0
    assert fin["placed"] + fin["refused"] == fin["requests"] and fin["released_on_repayment"] >= 0
    assert "already financed" in fin["refused_examples"][0]["reason"]
    ledger = s["ledger"]  # anchored, proved, verified offline, audited
    assert ledger["audit"]["ok"] and ledger["audit"]["leaves"] > s["loaded_rows"]["trade_documents"]
    assert ledger["invoice_evidence"]["record_type"] == "trade_document"
    assert ledger["reading_evidence"]["reading"]["key"] == "power_kw" and ledger["witness_cosignatures"] == 1
    api = s["open_api"]  # partner credentials, token, the client, one complaint filed and resolved
    assert api["summary_enterprises_via_client"] == 40 and api["complaint"]["status"] == "resolved"
    assert api["complaint"]["resolution_zh"] and api["complaint"]["overdue"] == []
    assert s["sample_query"]["rows"] and all(r["count"] > 0 for r in s["sample_query"]["rows"])
    for row in s["trade_documents"].values():  # money crosses JSON as a decimal string, never a float
        assert isinstance(row["amount"], str) and "." in row["amount"]
    assert (ws / "iotfin.db").exists()


def test_demo_refuses_to_wipe_a_folder_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "ledger.csv").write_text("keep me")
    done = _demo("--headless", "--workspace", str(precious))
    assert done.returncode == 78
    assert "not a demo workspace" in done.stderr
    assert (precious / "ledger.csv").read_text() == "keep me"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_serves_the_platform_until_interrupted(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "iotfin", "demo", "--enterprises", "10", "--days", "30",
                             "--workspace", str(tmp_path / "serve"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "demo did not start serving"
                time.sleep(0.5)
        assert health.status_code == 200
        summary = httpx.get(f"http://127.0.0.1:{port}/api/v1/summary", timeout=10).json()
        assert summary["economy"]["enterprises"] == 10
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).json()["openapi"].startswith("3.1")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
