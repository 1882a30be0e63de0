"""Loan servicing on a real database (SQLite and PostgreSQL): booking, the chunked daily close (idempotent,
resumable after a failure between chunks), GL and sub-ledger, relief, monitoring actions, anchoring."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict, ValidationError
from iotfin.lending import model as m
from iotfin.lending import store
from iotfin.lending.service import CloseInterrupted, Offer
from iotfin.lending.tables import CloseRun, GlLine, Loan, LoanEvent
from tests.lending.conftest import make_enterprises

D = Decimal
START = date(2026, 1, 1)


def _snapshot(ws: Workspace) -> tuple:
    with ws.engine.connect() as conn:
        loans = conn.execute(select(Loan).order_by(Loan.id)).all()
        lines = conn.execute(select(func.count(), func.sum(GlLine.debit), func.sum(GlLine.credit))).one()
    return [tuple(r) for r in loans], tuple(lines)


def _book_mix(ws: Workspace, n_batch: int = 30) -> list[int]:
    ents = make_enterprises(ws.engine, 4)
    ids = [ws.lending.book(Offer(ents[0], "iot-term", D("120000"), D("0.072"), 12, subsidy_rate=D("0.02")), START),
           ws.lending.book(Offer(ents[1], "equipment-principal", D("50000"), D("0.06"), 6), START),
           ws.lending.book(Offer(ents[2], "receivable-bullet", D("80000"), D("0.05"), 3), START)]
    offers = [Offer(ents[3], "iot-term", D(1000 + 37 * k), D("0.1"), 1 + k % 6) for k in range(n_batch)]
    ids += ws.lending.book_batch(offers, START).tolist()
    return ids


def test_close_books_reconciles_and_is_idempotent(workspace: Workspace) -> None:
    ids = _book_mix(workspace)
    svc = workspace.lending
    for k in range(1, 46):
        day = START + timedelta(days=k)
        svc.close_day(day, chunk=10)
        if day.day == 1 and day.month == 2:
            due = svc.loan(ids[1])["due"]
            svc.repay(ids[1], sum(due.values()), day)
    tb = svc.trial_balance()
    assert tb["balanced"] and tb["total_debit"] > 0
    assert svc.reconcile() == {"reconciled": True, "differences": []}
    before = _snapshot(workspace)
    again = svc.close_day(START + timedelta(days=45), chunk=10)
    assert again["loans_closed"] == 0 and _snapshot(workspace) == before
    assert svc.loan(ids[1])["tier"] == "normal"  # paid on its due date
    assert svc.loan(ids[0])["tier"] == "special-mention" and svc.loan(ids[0])["dpd"] == 14
    portfolio = svc.portfolio()
    assert sum(portfolio["by_dpd_bucket"].values()) == portfolio["active_loans"]
    assert portfolio["by_dpd_bucket"]["1-30"] >= 1
    assert portfolio["active_loans"] == len(ids) - sum(1 for i in ids if svc.loan(i)["status"] == "settled")
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CloseRun).where(CloseRun.status == "done")).scalar() == 45


def test_close_matches_the_reference_and_resumes_after_a_failure_between_chunks(workspace: Workspace) -> None:
    ids = _book_mix(workspace, n_batch=25)
    svc = workspace.lending
    svc.close_through(date(2026, 1, 31), chunk=50)
    day = date(2026, 2, 1)  # instalments fall due: billing, next instalment fetched
    with workspace.engine.connect() as conn:
        expected = {i: m.close_day(store.load_state(conn, i)[1], day) for i in ids}
    with pytest.raises(CloseInterrupted):
        svc.close_day(day, chunk=6, fail_after_chunks=2)
    with workspace.engine.connect() as conn:
        half = conn.execute(select(func.count()).where(Loan.last_closed == day)).scalar()
        run = conn.execute(select(CloseRun.status, CloseRun.chunks).where(CloseRun.business_date == day)).one()
    assert half == 12 and tuple(run) == ("running", 2)
    rest = svc.close_day(day, chunk=6)
    assert rest["loans_closed"] == len(ids) - 12
    with workspace.engine.connect() as conn:
        for i in ids:
            got = store.load_state(conn, i)[1]
            assert got == expected[i].state, i
        assert conn.execute(select(CloseRun.status).where(CloseRun.business_date == day)).scalar() == "done"
    assert svc.reconcile()["reconciled"] and svc.trial_balance()["balanced"]
    gl = svc.trial_balance()
    ref = m.balances([e for r in expected.values() for e in r.entries])
    assert ref[m.PRINCIPAL_DUE] > 0
    assert {a["account"]: a["balance"] for a in gl["accounts"]}[m.PRINCIPAL_DUE] == ref[m.PRINCIPAL_DUE]


def test_close_refuses_to_skip_a_day(workspace: Workspace) -> None:
    ids = _book_mix(workspace, n_batch=2)
    later = workspace.lending.book(Offer(1, "iot-term", D("5000"), D("0.08"), 3), START)  # ids continue after a batch
    assert later == max(ids) + 1
    with pytest.raises(Conflict, match="close 2026-01-02 first"):
        workspace.lending.close_day(date(2026, 1, 5))
    assert len(workspace.lending.close_through(date(2026, 1, 5))) == 4


def test_credit_line_drawdowns_freeze_and_unfreeze(workspace: Workspace) -> None:
    ent = make_enterprises(workspace.engine, 1)[0]
    svc = workspace.lending
    line = svc.open_line(ent, D("100000"), D("0.06"), date(2027, 1, 1))
    first = svc.book(Offer(ent, "iot-line", D("60000"), D("0.06"), 3, credit_line_id=line), START)
    with pytest.raises(Conflict, match="exceeds what is available"):
        svc.book(Offer(ent, "iot-line", D("40000.01"), D("0.06"), 3, credit_line_id=line), START)
    svc.set_line_status(line, "frozen", "stock level fell below the pledged minimum", START)
    with pytest.raises(Conflict, match="frozen"):
        svc.book(Offer(ent, "iot-line", D("1000"), D("0.06"), 3, credit_line_id=line), START)
    svc.set_line_status(line, "active", "stock restored", START + timedelta(days=2))
    svc.book(Offer(ent, "iot-line", D("40000"), D("0.06"), 3, credit_line_id=line), START + timedelta(days=2))
    with pytest.raises(ValidationError, match="credit line"):
        svc.book(Offer(ent, "iot-line", D("1000"), D("0.06"), 3), START)
    with workspace.engine.connect() as conn:
        kinds = conn.execute(select(LoanEvent.kind).where(LoanEvent.credit_line_id == line).order_by(LoanEvent.id)).scalars().all()
    assert kinds == ["line_opened", "booked", "line_frozen", "line_unfrozen", "booked"]
    assert svc.loan(first)["principal_not_due"] == D("60000.00")


def test_relief_acceleration_margin_call_are_audited(workspace: Workspace) -> None:
    ids = _book_mix(workspace, n_batch=1)
    svc = workspace.lending
    svc.close_through(date(2026, 2, 20))
    with pytest.raises(ValidationError, match="reason"):
        svc.restructure(ids[0], date(2026, 2, 21), 12, 3, reason=" ")
    detail = svc.restructure(ids[0], date(2026, 2, 20), 12, 3, reason="orders collapsed after a flood")
    assert detail["tier_before"] == "special-mention" and detail["tier_after"] == "special-mention"
    assert [i["principal"] for i in detail["schedule_after"][:3]] == [0, 0, 0]  # three months' deferral
    loan = svc.loan(ids[0])
    assert loan["tier"] == "special-mention" and loan["due"]["principal"] == 0
    svc.close_through(date(2026, 2, 25))
    assert svc.loan(ids[0])["tier"] == "special-mention"  # restructured: at least special mention for a year
    svc.margin_call(ids[1], D("5000"), date(2026, 3, 1), "collateral value dropped 30 %", date(2026, 2, 25))
    acc = svc.accelerate(ids[1], date(2026, 2, 25), "collateral removed from the monitored site")
    loan = svc.loan(ids[1])
    assert loan["principal_not_due"] == 0 and loan["due"]["principal"] > 0 and acc["now_due"] > 0
    assert [e["kind"] for e in loan["events"]] == ["booked", "margin_call", "accelerated"]
    assert svc.reconcile()["reconciled"] and svc.trial_balance()["balanced"]
    with pytest.raises(ValidationError, match="closed through"):
        svc.repay(ids[1], D("1"), date(2026, 2, 1))


def test_full_prepayment_settles_and_subsidy_is_received(workspace: Workspace) -> None:
    ids = _book_mix(workspace, n_batch=0)
    svc = workspace.lending
    svc.close_through(date(2026, 2, 10))
    svc.repay(ids[0], svc.loan(ids[0])["due"]["interest"] + svc.loan(ids[0])["due"]["principal"], date(2026, 2, 10))
    subsidy = svc.loan(ids[0])["subsidy_due"]
    assert subsidy > 0 and svc.receive_subsidy(ids[0], subsidy, date(2026, 2, 10)) == subsidy
    with pytest.raises(ValidationError, match="at most"):
        svc.receive_subsidy(ids[0], D("0.01"), date(2026, 2, 10))
    payoff = svc.payoff(ids[0], date(2026, 2, 10))
    with pytest.raises(ValidationError, match="payoff"):
        svc.repay(ids[0], payoff + D("0.01"), date(2026, 2, 10), prepay=True)
    svc.repay(ids[0], payoff, date(2026, 2, 10), prepay=True)
    assert svc.loan(ids[0])["status"] == "settled"
    assert svc.reconcile()["reconciled"] and svc.trial_balance()["balanced"]


def test_signed_contract_is_anchored_and_provable(workspace: Workspace) -> None:
    from iotfin.ledger.evidence import verify_bundle

    ent = make_enterprises(workspace.engine, 1)[0]
    loan_id = workspace.lending.book(Offer(ent, "iot-term", D("30000"), D("0.065"), 6), START, contract_ref="C-2026-0001")
    workspace.ledger.checkpoint()
    bundle = workspace.ledger.prove("loan_contract", str(loan_id))
    proved = verify_bundle(bundle, workspace.ledger.verifier_key)
    assert proved["record_type"] == "loan_contract" and proved["record_id"] == str(loan_id)
    workspace.lending.close_through(date(2026, 1, 10))  # servicing does not touch the signed terms
    assert workspace.ledger.audit()["ok"]
