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
    workers = s["ingest_workers"]  # its stage onboards a few devices of its own to the first enterprise
    assert workers["every_acknowledged_point_stored"] and workers["points_stored"] > 0
    assert s["economy"]["enterprises"] == 40 and s["devices"]["total"] == 400 + workers["devices"]  # 10 each
    assert set(s["economy"]["enterprises_by_sector"]) == {"manufacturing", "logistics", "energy", "agriculture",
                                                          "infrastructure"}
    ingest = s["ingest"]
    # Every simulated reading is plausible: all of it passes validation and is stored.
    assert ingest["offered"] > 100_000 and ingest["accepted"] == ingest["offered"] and ingest["rejected"] == 0
    assert s["telemetry"]["data_points"] == ingest["accepted"] + workers["points_stored"]
    # The last days arrived over the wire: MQTT (device and gateway API) and the HTTP bulk endpoint.
    transports = s["telemetry_transports"]
    assert len(transports["wire_days"]) == 3
    for name in ("http_bulk", "mqtt", "mqtt_gateway"):
        t = transports[name]
        assert t["sent"] > 0 and t["messages"] > 0, name
        assert t["acknowledged"] == t["sent"] == t["stored"] and t["rejected"] == 0, (name, t)
    assert transports["mqtt"]["messages"] >= 300  # a connection per device not behind a gateway
    assert sum(transports[n]["sent"] for n in ("batch_import", "http_bulk", "mqtt", "mqtt_gateway")) == ingest["offered"]
    assert transports["batch_import"]["stored"] == transports["batch_import"]["sent"]
    assert all(s["timings_s"][f"ingest_telemetry.{stage}"] > 0 for stage in ("import_history", "http_bulk", "mqtt"))
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
    lending = s["lending"]  # approved offers booked, closed every day, ledger balanced and reconciled
    assert lending["loans_booked"] > 0 and lending["business_days_closed"] > 0
    assert lending["trial_balance"]["balanced"] and lending["reconciled"]
    assert sum(t["loans"] for t in lending["portfolio"]["by_tier"].values()) == lending["portfolio"]["active_loans"]
    assert lending["key_facts_example"]["key_facts_zh"][0] == "贷款关键信息说明"
    # 30 days hold too few defaults to train on: the risk step says so, and nothing is decided without a model
    assert s["risk"]["trained"] is False and "defaults" in s["risk"]["reason"]
    assert s["decisions"] == {"skipped": "no risk model was trained"}
    api = s["open_api"]  # partner credentials, token, the client, one complaint filed and resolved
    assert api["summary_enterprises_via_client"] == 40 and api["complaint"]["status"] == "resolved"
    assert api["complaint"]["resolution_zh"] and api["complaint"]["overdue"] == []
    assert s["sample_query"]["rows"] and all(r["count"] > 0 for r in s["sample_query"]["rows"])
    monitoring = s["monitoring"]  # the monitor saw the demo's ingest and caught the injected incidents
    assert monitoring["signals"]["readings_seen"] == ingest["accepted"]
    detections = monitoring["detections"]
    assert len(detections) == 6 and all(d["incidents"] >= 2 for d in detections.values())
    assert sum(d["detected"] for d in detections.values()) >= 0.8 * sum(d["incidents"] for d in detections.values())
    assert all(a["reason_zh"] and a["reason_en"] for a in monitoring["example_alerts"])
    vouchers = s["receivables"]  # the simulator's voucher flows replayed; its injected fraud caught
    assert vouchers["vouchers"]["issued"] > 0 and vouchers["parts_tile_issue"] and vouchers["gl_balanced"]
    for kind, e in vouchers["fraud_evaluation"].items():
        assert e["true_positive"] == e["injected"] and e["false_positive"] == 0, (kind, e)
    assert vouchers["fraud_evaluation"]["never_moved_delivery"]["financed_despite_flag"] == 0
    cf = s["consent_features"]  # each enterprise in a chain granted its bank; every decision logged
    assert cf["grants"] > 0 and cf["features_delivered"] > 0 and cf["features_withheld"] > 0 and cf["access_log_rows"] > 0
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
