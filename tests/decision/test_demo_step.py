"""The demo's decisioning step on a small simulated economy, with an assess built from the
enterprises' registry fields (the risk engine is wired in by the integrator)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.decision.applications import PRODUCTS
from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.tables import CreditApplication
from iotfin.demo.decision import build_applications, decide_applications
from iotfin.demo.loader import load_financing_requests, load_master_data
from iotfin.ledger.tables import ledger_anchors
from iotfin.sim import SimConfig, SimDataset, generate


def entity_assess(ds: SimDataset):  # noqa: ANN201
    """Tax credit grade -> rating band, litigation and key-person changes lower it. Not a risk model."""
    rows = {int(e["enterprise_id"]): e for e in ds.table("enterprises").to_pylist()}

    def assess(enterprise_id: int) -> RiskAssessment:
        e: dict[str, Any] = rows[enterprise_id]
        grade = {"A": "AA", "B": "A", "M": "BBB", "C": "B", "D": "CCC"}[e["tax_grade"]]
        pd = {"AA": "0.006", "A": "0.012", "BBB": "0.025", "B": "0.06", "CCC": "0.2"}[grade]
        score = Decimal(80 - 8 * int(e["key_person_changes"]))
        capital = Decimal(e["registered_capital"])
        return RiskAssessment(enterprise_id, grade, Decimal(pd), {"entity": score, "asset": score, "transaction": score},
                              {"device_coverage": Decimal("0.9"), "history_days": 180,
                               "litigation_count": int(e["litigation_count"]), "blacklisted": False},
                              (), True, datetime.now(UTC), capital * 2, capital * 3)

    return assess


def test_decide_the_simulated_applications(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    ws = sqlite_workspace
    generate(SimConfig(enterprises=40, days=40, seed=11, devices=120), tmp_path / "sim", workers=1)
    ds = SimDataset(tmp_path / "sim")
    load_master_data(ws, ds)
    load_financing_requests(ws, ds)

    apps = build_applications(ds)
    roles = {int(e["enterprise_id"]): e["role"] for e in ds.table("enterprises").to_pylist()}
    assert apps and all(roles[a.enterprise_id] != "core" for a in apps)
    assert {a.product for a in apps} <= set(PRODUCTS) and len({a.product for a in apps}) >= 2
    assert all(PRODUCTS[a.product].min_amount <= a.amount <= PRODUCTS[a.product].max_amount for a in apps)

    summary = decide_applications(ws, ds, entity_assess(ds))
    assert summary["applications"] == len(apps)
    assert summary["approved"] + summary["declined"] + summary["referred"] == len(apps)
    assert summary["approved"] > 0 and summary["declined"] + summary["referred"] > 0
    assert summary["review_queue"] == summary["referred"]
    for outcome, example in summary["examples"].items():
        assert example["reasons"] or outcome == "approve"
        assert all(r["zh"] and r["en"] for r in example["reasons"])
    assert "年化利率" in summary["examples"]["approve"]["disclosure"]["zh"]
    with ws.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CreditApplication)).scalar() == len(apps)
        anchored = conn.execute(select(func.count()).select_from(ledger_anchors)
                                .where(ledger_anchors.c.record_type == "credit_decision")).scalar()
    assert anchored == len(apps)
