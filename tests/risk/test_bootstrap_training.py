"""`iotfin risk train-enterprise`, `promote`, `models`, `rerate` and `scorecard` through the command line,
in real subprocesses on one workspace: training writes a candidate that decides nothing; promotion is
the explicit, ledger-anchored step after which the trained model rates; its reasons are sentences."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from iotfin.app.assessment import BootstrapAssessor, OnlineAssessor
from iotfin.app.workspace import Workspace
from iotfin.consent.model import GrantRequest
from iotfin.core.settings import Settings
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.risk import bootstrap
from tests.risk.test_bootstrap import readable

N = 120


def iotfin(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def _world(root: Path) -> tuple[Workspace, Path]:
    ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{root / 'iotfin.db'}"))
    ws.initialise()
    rng = random.Random(3)
    grades = ["A", "B", "M", "C", "D"]
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant).values(code="bank-a", name="甲银行", name_en="Bank A", kind="bank"))
        conn.execute(insert(Enterprise), [dict(
            id=i, uscc=f"9111000{i:010d}X", name=f"企业{i}", name_en=f"Enterprise {i}", sector="manufacturing",
            subsector="machinery", region_code="110000", region="北京市",
            founded_on=date(2024 - rng.randint(0, 20), 1, 1), registered_capital=Decimal(rng.choice([3, 10, 50, 200]) * 100000),
            legal_rep_name="张三", legal_rep_id_number="1", legal_rep_phone="1", tax_grade=rng.choice(grades),
            litigation_count=rng.choice([0, 0, 0, 1, 2, 4]), key_person_changes=rng.randint(0, 3)) for i in range(1, N + 1)])
    ws.consent.grant(GrantRequest(1, "bank-a", "credit_assessment", ("business_registration", "tax_rating", "credit_report"),
                                  date.today() - timedelta(days=400), date.today() + timedelta(days=30),
                                  datetime.now(UTC) + timedelta(days=90)))
    # imported outcomes: litigation and a poor tax grade default more often
    with ws.engine.connect() as conn:
        ents = conn.execute(Enterprise.__table__.select()).mappings().all()
    lines = ["enterprise_id,as_of,default"]
    for k in range(6):
        as_of = date(2026, 1, 1) + timedelta(days=30 * k)
        for e in ents:
            risk = 0.03 + 0.15 * min(e["litigation_count"], 3) + (0.25 if e["tax_grade"] in ("C", "D") else 0.0)
            lines.append(f"{e['id']},{as_of.isoformat()},{int(rng.random() < risk)}")
    outcomes = root / "outcomes.csv"
    outcomes.write_text("\n".join(lines) + "\n")
    return ws, outcomes


def test_train_enterprise_then_promote_through_the_cli(tmp_path: Path) -> None:
    ws, outcomes = _world(tmp_path)
    ws.close()
    d = ["--data-dir", str(tmp_path)]
    # the book has no outcomes yet: a clear refusal, nothing written
    empty = iotfin("risk", "train-enterprise", *d, ok=False)
    assert empty.returncode != 0 and "bootstrap scorecard" in (empty.stderr + empty.stdout)
    trained = json.loads(iotfin("risk", "train-enterprise", "--outcomes", str(outcomes), *d, "--json").stdout)
    assert trained["status"] == "candidate" and trained["version"] == "v0001" and trained["rows"] == 6 * N
    assert Path(trained["report"]).is_file() and trained["anchor"]["record"].startswith("model_fingerprint:")
    ws = Workspace(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'iotfin.db'}"))
    try:
        assert isinstance(ws.risk_assessor(), BootstrapAssessor)  # training alone changes nothing
        listed = json.loads(iotfin("risk", "models", *d, "--json").stdout)
        assert [m["status"] for m in listed["models"]] == ["candidate"] and listed["in_force"] == "bootstrap-v1"
        missing_by = iotfin("risk", "promote", "v0001", *d, ok=False)
        assert missing_by.returncode != 0
        unknown = iotfin("risk", "promote", "v0009", "--by", "cro", *d, ok=False)
        assert unknown.returncode != 0 and "v0009" in (unknown.stderr + unknown.stdout)
        promoted = json.loads(iotfin("risk", "promote", "v0001", "--by", "cro", "--note", "first model", *d, "--json").stdout)
        assert promoted["promoted_by"] == "cro" and promoted["leaf_index"] >= 0 and promoted["previous"] is None
        assessor = ws.risk_assessor()
        assert isinstance(assessor, OnlineAssessor) and assessor.model.model_id == trained["model"]
        a = assessor(1, "bank-a")
        assert a.features["model"] == trained["model"] and a.grade
        assert all(readable(r.zh) and readable(r.en) for r in a.reasons), a.reasons
        listed = json.loads(iotfin("risk", "models", *d, "--json").stdout)
        assert listed["models"][0]["status"] == "champion" and listed["in_force"] == trained["model"]
        # the promotion is in the ledger, in clear
        with ws.engine.connect() as conn:
            types = {r[0] for r in conn.exec_driver_sql("SELECT record_type FROM ledger_anchors")}
        assert "model_promotion" in types
        rerated = json.loads(iotfin("risk", "rerate", *d, "--json").stdout)
        assert rerated["model"] == trained["model"] and rerated["ratings_stored"] == 1
    finally:
        ws.close()


def test_scorecard_versions_through_the_cli(tmp_path: Path) -> None:
    ws, _ = _world(tmp_path)
    ws.close()
    d = ["--data-dir", str(tmp_path)]
    listed = json.loads(iotfin("risk", "scorecard", "list", *d, "--json").stdout)
    assert [(v["version"], v["active"]) for v in listed] == [(1, True)]
    content = json.loads(bootstrap.shipped_text())
    content["dimensions"]["asset"]["features"]["a_device_coverage_7d"]["edges"] = [0.8, 0.5, 0.95]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    refused = iotfin("risk", "scorecard", "publish", str(bad), "--by", "cro", *d, ok=False)
    assert refused.returncode != 0 and "a_device_coverage_7d" in (refused.stderr + refused.stdout)
    content["dimensions"]["asset"]["features"]["a_device_coverage_7d"]["edges"] = [0.5, 0.8, 0.9]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(content))
    out = json.loads(iotfin("risk", "scorecard", "publish", str(good), "--by", "cro", "--note", "coverage", *d,
                            "--json").stdout)
    assert out["model"] == "bootstrap-v2" and out["active"]
    iotfin("risk", "scorecard", "activate", "1", "--by", "cro", *d)
    listed = json.loads(iotfin("risk", "scorecard", "list", *d, "--json").stdout)
    assert [(v["version"], v["active"]) for v in listed] == [(1, True), (2, False)]
    shown = json.loads(iotfin("risk", "scorecard", "show", "2", *d).stdout)
    assert shown["dimensions"]["asset"]["features"]["a_device_coverage_7d"]["edges"] == [0.5, 0.8, 0.9]
