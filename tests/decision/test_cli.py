"""`iotfin decision ...` as a real subprocess: dry run, one-line errors with exit codes, publish."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.decision.applications import Application
from iotfin.decision.strategies import default_strategy_text
from tests.decision.conftest import add_enterprises, assessment


def iotfin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_run_decides_an_application_file(tmp_path: Path) -> None:
    strategy = tmp_path / "strategy.json"
    strategy.write_text(default_strategy_text())
    app = tmp_path / "app.json"
    app.write_text(json.dumps({"application": Application(1, "iot-working-capital", 800000, 24).to_json(),
                               "assessment": assessment(1, collateral="1500000", trade="6000000").to_json(),
                               "exposure": {"borrower": "4500000"}}))
    r = iotfin("decision", "run", "--strategy", str(strategy), "--input", str(app), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["decision"] == "approve" and out["offered_amount"] == "500000.00"  # single-borrower headroom binds
    assert out["limit"]["binding"] == "single_borrower" and out["reasons"][0]["code"] == "LIMIT_REDUCED"
    assert out["trace"]["grade-terms"]["matched"] == ["grade-terms-r3"] and "年化利率" in out["disclosure"]["zh"]

    broken = json.loads(default_strategy_text())
    broken["nodes"][3]["content"]["rules"][1]["review-routing-in-pd"] = "> > 0.08"
    strategy.write_text(json.dumps(broken))
    r = iotfin("decision", "run", "--strategy", str(strategy), "--input", str(app), "--json")
    assert r.returncode == 65
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "node 'review-routing'" in lines[0] and "rule 2 [review-routing-r2]" in lines[0]

    app.write_text('{"application": {"enterprise_id": 1}}')
    r = iotfin("decision", "run", "--strategy", str(tmp_path / "missing.json"), "--input", str(app))
    assert r.returncode == 66 and "cannot read" in r.stderr


def test_publish_versions_and_queue_in_a_workspace(tmp_path: Path) -> None:
    data = tmp_path / "ws"
    ws = Workspace(Settings(data_dir=data))
    ws.initialise()
    add_enterprises(ws.engine, range(1, 2))
    key = ws.ledger.verifier_key
    ws.close()
    strategy = tmp_path / "s.json"
    broken = json.loads(default_strategy_text())
    broken["nodes"][2]["content"]["rules"][0]["grade-terms-in-grade"] = '"AAA",,'
    strategy.write_text(json.dumps(broken))
    r = iotfin("decision", "publish", str(strategy), "--by", "risk officer", "--data-dir", str(data), "--json")
    assert r.returncode == 65 and len(r.stderr.strip().splitlines()) == 1
    assert "node 'grade-terms'" in r.stderr and "rule 1 [grade-terms-r1]" in r.stderr and "column" in r.stderr
    strategy.write_text(default_strategy_text())
    r = iotfin("decision", "publish", str(strategy), "--by", "risk officer", "--data-dir", str(data), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == 1
    listing = json.loads(iotfin("decision", "versions", "--data-dir", str(data), "--json").stdout)
    assert listing["versions"][0]["published_by"] == "risk officer" and listing["deployment"]["champion_version"] == 1
    r = iotfin("decision", "rollback", "--by", "x", "--data-dir", str(data))
    assert r.returncode == 75 and "no previous deployment" in r.stderr

    ws = Workspace(Settings(data_dir=data))  # decide one in-process, then prove it from the CLI
    decided = ws.decisions().decide(Application(1, "iot-working-capital", Decimal("200000"), 12), assessment(1))
    ws.ledger.checkpoint()
    ws.close()
    r = iotfin("ledger", "prove", f"credit_decision:{decided['decision_id']}", "--out", str(tmp_path / "b.json"),
               "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    r = iotfin("ledger", "verify", str(tmp_path / "b.json"), "--key", key)
    assert r.returncode == 0, r.stderr
