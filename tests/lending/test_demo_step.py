"""The demo's lending step books the credit decisions approved just before it: term loans and credit
lines with drawdowns, key facts signed, contracts anchored, closed every day, reconciled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.decision.tables import CreditApplication
from iotfin.demo import lending as demo
from iotfin.demo.decision import decide_applications
from iotfin.demo.loader import load_financing_requests, load_master_data
from iotfin.ledger.tables import ledger_anchors
from iotfin.lending.tables import CreditLine, Loan, LoanEvent
from iotfin.sim import SimConfig, SimDataset, generate
from tests.decision.test_demo_step import entity_assess


def test_demo_books_the_approved_decisions(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    ws = sqlite_workspace
    config = SimConfig(enterprises=40, days=60, seed=11, devices=120)
    generate(config, tmp_path / "sim", workers=1)
    ds = SimDataset(tmp_path / "sim")
    load_master_data(ws, ds)
    load_financing_requests(ws, ds)
    offers, source = demo.offers_for_demo(ws, ds)
    assert source.startswith("fallback") and offers  # nothing decided yet: the price list, said so
    decided = decide_applications(ws, ds, entity_assess(ds))
    assert decided["approved"] > 0
    existing = demo.approved_offers_from_financing(ws, ds)
    offers, source = demo.offers_for_demo(ws, ds)
    assert source == demo.EXISTING_BOOK
    with ws.engine.connect() as conn:
        approved = {e: (amount, tenor) for e, amount, tenor in conn.execute(
            select(CreditApplication.enterprise_id, CreditApplication.approved_amount, CreditApplication.tenor_months)
            .where(CreditApplication.status == "approved"))}
    # every approval, as approved; then the existing book of everyone else, nobody twice
    assert {o.enterprise_id: o.principal for o, _ in offers[:decided["approved"]]} == \
        {e: a for e, (a, _) in approved.items()}
    rest = {o.enterprise_id for o, _ in existing} - set(approved)
    assert sorted(o.enterprise_id for o, _ in offers[decided["approved"]:]) == sorted(rest)
    end = config.start_date + timedelta(days=config.days - 1)
    defaults = demo.defaults_from(ds)
    summary = demo.demo_step(ws, offers, end, defaults, source)
    assert summary["offers_source"] == demo.EXISTING_BOOK and summary["offers"] == len(offers)
    # the ground truth's defaulters in the book stop paying: counted once each, relieved or accelerated
    defaulting = {o.enterprise_id for o, on in offers if o.enterprise_id in defaults and on <= defaults[o.enterprise_id] <= end}
    assert defaulting and summary["defaulted_borrowers"] >= 1, (defaulting, summary["defaulted_borrowers"])
    lines = sum(1 for o, _ in offers if o.product == "iot-line")
    terms = len(offers) - lines
    assert summary["credit_lines_opened"] == lines and summary["loans_booked"] == terms + summary["drawdowns"]
    assert summary["trial_balance"]["balanced"] and summary["reconciled"]
    assert summary["business_days_closed"] > 0 and summary["repayments"] + summary["late_repayments"] >= 0
    assert summary["portfolio"]["allowance"] > 0  # provisions booked by the closes
    with ws.engine.connect() as conn:
        booked = conn.execute(select(LoanEvent.detail).where(LoanEvent.kind == "booked")).scalars().all()
        assert len(booked) == summary["loans_booked"]
        assert all(d["signed"]["apr_gross"] and len(d["signed"]["sha256_zh"]) == 64 for d in booked)
        anchored = conn.execute(select(func.count()).select_from(ledger_anchors)
                                .where(ledger_anchors.c.record_type == "loan_contract")).scalar()
        assert anchored == summary["loans_booked"]
        assert conn.execute(select(func.count()).select_from(CreditLine)).scalar() == lines
        drawn = conn.execute(select(func.count()).select_from(Loan).where(Loan.credit_line_id.is_not(None))).scalar()
    assert drawn == summary["drawdowns"] and (lines == 0 or drawn >= lines)
