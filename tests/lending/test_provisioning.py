"""Loan-loss provisioning by tier in the daily close, release on repayment, write-off against the
allowance and recovery, and the hardship relief port, on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.jsonvalues import jsonable
from iotfin.lending import model as m
from iotfin.lending.service import LendingService, Offer
from iotfin.lending.tables import GlEntry, Loan
from tests.lending.conftest import make_enterprises

D = Decimal
START = date(2026, 1, 1)


def _gl(svc: LendingService, account: str) -> Decimal:
    return next((r["balance"] for r in svc.trial_balance()["accounts"] if r["account"] == account), D(0))


def _outstanding(svc: LendingService, loan_id: int) -> Decimal:
    loan = svc.loan(loan_id)
    return loan["principal_not_due"] + loan["due"]["principal"]


def test_provisions_follow_the_tier_are_released_on_repayment_and_loss_loans_are_written_off(
        sqlite_workspace: Workspace) -> None:
    """400 daily closes (SQLite only; the provision column's SQL runs on PostgreSQL in test_service.py and
    in the tests below)."""
    workspace = sqlite_workspace
    ents = make_enterprises(workspace.engine, 2)
    svc = workspace.lending
    good = svc.book(Offer(ents[0], "equipment-principal", D("12000"), D("0.06"), 6), START)
    bad = svc.book(Offer(ents[1], "receivable-bullet", D("10000"), D("0.05"), 1, subsidy_rate=D("0.01")), START)
    with pytest.raises(Conflict, match="active, not written off|not written off"):
        svc.recover(good, D("1"), START)
    svc.close_day(START + timedelta(days=1))
    assert svc.loan(good)["provision"] == D("120.00") and svc.loan(bad)["provision"] == D("100.00")  # normal: 1 %
    assert _gl(svc, m.ALLOWANCE) == D("-220.00") and _gl(svc, m.PROVISION_EXPENSE) == D("220.00")
    seen: dict[str, Decimal] = {}
    day = START + timedelta(days=1)
    while day < START + timedelta(days=31 + 365):
        day += timedelta(days=1)
        svc.close_day(day, simulate=True)  # through 2027: ahead of today
        loan = svc.loan(bad)
        seen.setdefault(loan["tier"], loan["provision"])
        if day.day == 1:  # the good borrower pays what fell due: its allowance falls with its principal
            due = svc.loan(good)["due"]
            if sum(due.values()):
                svc.repay(good, sum(due.values()), day)
                assert svc.loan(good)["provision"] == (_outstanding(svc, good) / 100).quantize(m.FEN)
        if loan["tier"] == "doubtful" and "doubtful" not in seen:
            with pytest.raises(ValidationError, match="not loss"):
                svc.write_off(bad, day, "no hope")
    # the bad loan went through every tier, provisioned at the documented rate of each
    assert seen == {"normal": D("100.00"), "special-mention": D("200.00"), "substandard": D("2500.00"),
                    "doubtful": D("5000.00"), "loss": D("10000.00")}
    assert svc.loan(good)["status"] == "settled" and svc.loan(good)["provision"] == 0  # released in full
    assert svc.reconcile() == {"reconciled": True, "differences": []}
    assert _gl(svc, m.ALLOWANCE) == D("-10000.00")
    before = svc.loan(bad)
    claims = before["principal_not_due"] + sum(before["due"].values())
    with pytest.raises(ValidationError, match="reason"):
        svc.write_off(bad, day, " ")
    wo = svc.write_off(bad, day, "borrower insolvent, collateral sold", actor="credit-committee")
    assert wo["principal"] == D("10000.00") and wo["allowance_used"] == D("10000.00")
    assert wo["total"] == claims and wo["charged_to_impairment_loss"] == claims - D("10000.00")
    after = svc.loan(bad)
    assert after["status"] == "written_off" and after["written_off"] == claims and after["provision"] == 0
    assert _gl(svc, m.ALLOWANCE) == 0 and _gl(svc, m.NOT_DUE) == 0 and _gl(svc, m.PRINCIPAL_DUE) == 0
    assert svc.reconcile()["reconciled"] and svc.trial_balance()["balanced"]
    with pytest.raises(Conflict, match="written_off"):
        svc.write_off(bad, day, "again")
    with pytest.raises(Conflict, match="written_off"):
        svc.repay(bad, D("1"), day)
    # the close leaves a written-off loan alone
    assert svc.close_day(day + timedelta(days=1), simulate=True)["loans_closed"] == 0
    # recovery after write-off: income of the day, capped at what is still written off
    rec = svc.recover(bad, D("1500.50"), day + timedelta(days=1))
    assert rec["recovered_total"] == D("1500.50") and _gl(svc, m.RECOVERY_INCOME) == D("-1500.50")
    with pytest.raises(ValidationError, match="at most"):
        svc.recover(bad, claims, day + timedelta(days=2))
    with pytest.raises(ValidationError, match="positive"):
        svc.recover(bad, D("0"), day + timedelta(days=2))
    svc.recover(bad, claims - D("1500.50"), day + timedelta(days=2))
    with pytest.raises(ValidationError, match="at most the 0.00"):
        svc.recover(bad, D("0.01"), day + timedelta(days=3))
    portfolio = svc.portfolio()
    assert portfolio["written_off"] == {"loans": 1, "amount": claims, "recovered": claims}
    assert svc.reconcile()["reconciled"] and svc.trial_balance()["balanced"]
    assert [e["kind"] for e in svc.loan(bad)["events"]][-3:] == ["written_off", "recovery", "recovery"]
    with workspace.engine.connect() as conn:
        events = {e for (e,) in conn.execute(select(GlEntry.event).where(GlEntry.loan_id == bad))}
        closes = {e for (e,) in conn.execute(select(GlEntry.event).where(GlEntry.loan_id.is_(None)))}
    assert {"write_off", "recovery"} <= events and "provision" in closes  # the close posts per chunk


def test_provision_rates_are_configurable_and_checked(workspace: Workspace) -> None:
    rates = dict(m.PROVISION_RATES) | {m.Tier.NORMAL: D("0.015")}
    svc = LendingService(workspace.engine, provision_rates=rates)
    ents = make_enterprises(workspace.engine, 1)
    loan = svc.book(Offer(ents[0], "receivable-bullet", D("10000"), D("0.05"), 3), START)
    svc.close_day(START + timedelta(days=1))
    assert svc.loan(loan)["provision"] == D("150.00")
    assert svc.portfolio()["by_tier"]["normal"]["provision_rate"] == D("0.015")
    for bad, message in (({m.Tier.NORMAL: D("0.01")}, "every tier"),
                         (rates | {m.Tier.DOUBTFUL: D("0.2")}, "must not fall"),
                         (rates | {m.Tier.LOSS: D("0.9")}, "in full"),
                         (rates | {m.Tier.NORMAL: D("-0.01")}, "between 0 and 1"),
                         (rates | {m.Tier.NORMAL: D("0.0000001")}, "6 decimals")):
        with pytest.raises(ValidationError, match=message):
            LendingService(workspace.engine, provision_rates=bad)


def test_grant_relief_port_deferral_reschedule_idempotent(workspace: Workspace) -> None:
    ents = make_enterprises(workspace.engine, 1)
    svc = workspace.lending
    loan = svc.book(Offer(ents[0], "equipment-principal", D("60000"), D("0.06"), 6), START)
    svc.close_through(date(2026, 2, 10))  # the first instalment is 9 days overdue
    with pytest.raises(ValidationError, match="deferral or reschedule"):
        svc.grant_relief(loan, "forgiveness", date(2026, 2, 10), "flood", "protection:officer-7")
    with pytest.raises(ValidationError, match="new term"):
        svc.grant_relief(loan, "reschedule", date(2026, 2, 10), "flood", "protection:officer-7")
    with pytest.raises(ValidationError, match="reason"):
        svc.grant_relief(loan, "deferral", date(2026, 2, 10), "", "protection:officer-7")
    with pytest.raises(NotFound):
        svc.grant_relief(999_999, "deferral", date(2026, 2, 10), "flood", "protection:officer-7", request_ref="H-0")
    first = svc.grant_relief(loan, "deferral", date(2026, 2, 10), "warehouse flooded", "protection:officer-7",
                             months=3, request_ref="H-1")
    assert not first["already_granted"] and first["relief_kind"] == "deferral" and first["grace_principal"] == 3
    # the five instalments left plus three months' deferral; the first three pay no principal
    assert first["term"] == 8 and [i["principal"] for i in first["schedule_after"][:4]] == [0, 0, 0, D("12000.00")]
    again = svc.grant_relief(loan, "deferral", date(2026, 2, 11), "warehouse flooded", "protection:officer-7",
                             months=3, request_ref="H-1")
    assert again["already_granted"] and again["schedule_after"] == jsonable(first["schedule_after"])  # as recorded
    state = svc.loan(loan)
    assert state["tier"] == "special-mention" and [e["kind"] for e in state["events"]].count("restructured") == 1
    later = svc.grant_relief(loan, "reschedule", date(2026, 2, 10), "orders lost", "protection:officer-7", term=12,
                             request_ref="H-2")
    assert later["term"] == 12 and len(later["schedule_after"]) == 12
    assert svc.reconcile()["reconciled"] and svc.trial_balance()["balanced"]
    with workspace.engine.connect() as conn:
        assert conn.execute(select(Loan.status).where(Loan.id == loan)).scalar() == "active"
