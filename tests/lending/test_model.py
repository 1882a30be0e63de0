"""The pure servicing model: published schedules to the fen, and properties over random loan histories."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotfin.core.errors import ValidationError
from iotfin.lending import model as m

D = Decimal


def test_fineract_progressive_emi_12_percent() -> None:
    """Fineract's published example: 100 over 6 months at 12 %, declining balance, 30/360, from 2024-01-01."""
    sched = m.schedule(m.Terms(D("100"), D("0.12"), 6, date(2024, 1, 1), m.Method.EQUAL_INSTALMENT, m.DayCount.D30_360))
    assert [str(i.interest) for i in sched] == ["1.00", "0.84", "0.67", "0.51", "0.34", "0.17"]
    assert [str(i.principal + i.interest) for i in sched] == ["17.25"] * 5 + ["17.28"]
    assert sum(i.interest for i in sched) == D("3.53")
    assert sum(i.principal for i in sched) == D("100")
    assert [i.due for i in sched] == [date(2024, k, 1) for k in range(2, 8)]


def test_fineract_progressive_emi_9_4822_percent() -> None:
    sched = m.schedule(m.Terms(D("100"), D("0.094822"), 6, date(2024, 1, 1)))
    assert [str(i.interest) for i in sched] == ["0.79", "0.66", "0.53", "0.40", "0.27", "0.13"]
    assert [str(i.principal + i.interest) for i in sched[:5]] == ["17.13"] * 5
    assert sum(i.principal for i in sched) == D("100")


def test_day_counts_on_a_leap_year_period() -> None:
    start, end = date(2023, 12, 15), date(2024, 1, 15)  # 17 days in 2023, 14 in leap 2024
    assert m.year_fraction(start, end, m.DayCount.ACT_ACT) == m.Fraction(17, 365) + m.Fraction(14, 366)
    assert m.year_fraction(start, end, m.DayCount.ACT_365) == m.Fraction(31, 365)
    assert m.year_fraction(start, end, m.DayCount.ACT_360) == m.Fraction(31, 360)
    assert m.year_fraction(date(2024, 1, 31), date(2024, 2, 29), m.DayCount.D30_360) == m.Fraction(29, 360)
    assert m.add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)


def test_methods_shapes() -> None:
    start = date(2026, 1, 10)
    equal_principal = m.schedule(m.Terms(D("1000"), D("0.06"), 3, start, m.Method.EQUAL_PRINCIPAL))
    assert [i.principal for i in equal_principal] == [D("333.33"), D("333.33"), D("333.34")]
    balloon = m.schedule(m.Terms(D("1000"), D("0.06"), 3, start, m.Method.INTEREST_ONLY))
    assert [i.principal for i in balloon] == [D("0"), D("0"), D("1000")] and all(i.interest == D("5.00") for i in balloon)
    bullet = m.schedule(m.Terms(D("1000"), D("0.0365"), 3, start, m.Method.BULLET, m.DayCount.ACT_365))
    assert len(bullet) == 1 and bullet[0].due == date(2026, 4, 10) and bullet[0].interest == D("9.00")  # 90 days
    grace = m.schedule(m.Terms(D("1200"), D("0.12"), 4, start, grace_principal=2, grace_interest=1))
    assert [i.principal for i in grace][:2] == [D("0"), D("0")]
    assert grace[0].interest == 0 and grace[1].interest == D("24.00")  # the first month's 12.00 carried


@pytest.mark.parametrize("bad", [dict(principal=D("0")), dict(principal=D("1.001")), dict(annual_rate=D("0.1234567")),
                                 dict(term=0), dict(grace_principal=6), dict(subsidy_rate=D("0.2"))])
def test_bad_terms_are_refused_with_a_reason(bad: dict) -> None:
    base = dict(principal=D("1000"), annual_rate=D("0.1"), term=6, start=date(2026, 1, 1))
    with pytest.raises(ValidationError):
        m.Terms(**(base | bad))


terms_strategy = st.builds(
    m.Terms,
    principal=st.integers(1, 10**10).map(lambda f: D(f) / 100),
    annual_rate=st.integers(0, 360_000).map(lambda p: D(p) / 10**6),
    term=st.integers(1, 60),
    start=st.dates(date(2020, 1, 1), date(2035, 12, 31)),
    method=st.sampled_from(list(m.Method)),
    day_count=st.sampled_from(list(m.DayCount)),
)


@settings(max_examples=400, deadline=None)
@given(terms_strategy)
def test_schedule_is_cent_exact_and_repays_the_principal(terms: m.Terms) -> None:
    sched = m.schedule(terms)
    assert sum(i.principal for i in sched) == terms.principal
    for i in sched:
        assert i.principal >= 0 and i.interest >= 0
        assert i.principal == i.principal.quantize(m.FEN) and i.interest == i.interest.quantize(m.FEN)
        assert i.start < i.due
    if (terms.method is m.Method.EQUAL_INSTALMENT and terms.day_count is m.DayCount.D30_360 and terms.start.day <= 28
            and terms.principal >= 100 * terms.term):  # (tiny loans can run out before the end)
        totals = {i.principal + i.interest for i in sched[:-1]}
        assert len(totals) <= 1  # level instalments; the last absorbs the residue


# --- random loan histories ------------------------------------------------------------------------


def _history(rng: random.Random, loan_id: int) -> tuple[m.LoanState, list[m.JournalEntry], dict]:
    """One loan from booking to settlement (or the end of the horizon), with random behaviour:
    on-time payers, late payers, partial payers, prepayers, defaulters, a relief now and then."""
    start = date(2024, 1, 1) + timedelta(days=rng.randint(0, 700))
    prod = rng.choice(list(m.PRODUCTS.values()))
    rate = D(rng.randint(10_000, 240_000)) / 10**6
    terms = m.Terms(D(rng.randint(10_000, 5_000_000)) / 100, rate, rng.randint(1, 8), start, prod.method,
                    prod.day_count, periodic_fee=prod.periodic_fee,
                    subsidy_rate=(rate * D(rng.choice([0, 0, 25, 50])) / 100).quantize(m.RATE_QUANTUM))
    state = m.new_state(loan_id, terms, prod.penalty_markup, prod.allocation)
    entries = [m.journal("disbursement", start, {"principal": terms.principal}, loan_id)]
    behaviour = rng.choice(["on-time", "late", "partial", "prepay", "default", "relief"])
    lent, repaid_principal = terms.principal, D(0)
    accrued_by_seq: dict[int, Decimal] = defaultdict(lambda: D(0))
    horizon = start + timedelta(days=31 * terms.term + (400 if behaviour in ("late", "default") else 60))
    on = start
    stats = {"restructured": False, "prepaid": False}
    while on < horizon and not state.closed:
        on += timedelta(days=1)
        cur_seq = state.schedule[state.cur].seq if state.cur < len(state.schedule) else None
        result = m.close_day(state, on)
        if cur_seq is not None:
            accrual = sum((ln.debit - ln.credit for e in result.entries if e.event == "accrual" for ln in e.lines
                           if ln.account == m.ACCRUED), D(0))
            accrued_by_seq[cur_seq] += accrual
        state = result.state
        entries += result.entries
        assert state.last_closed == on
        due = state.total_due
        pay = D(0)
        if behaviour == "on-time" and due:
            pay = due
        elif behaviour == "late" and due and state.dpd >= rng.choice([5, 30, 100]):
            pay = due
        elif behaviour == "partial" and due and rng.random() < 0.1:
            pay = max(D("0.01"), (due * D(rng.randint(1, 100)) / 100).quantize(m.FEN))
        elif behaviour == "relief" and state.dpd == 20 and not stats["restructured"]:
            r = m.reschedule(state, on, rate, rng.randint(2, 6), terms.method, terms.day_count, rng.randint(0, 1))
            state, entries = r.state, entries + list(r.entries)
            stats["restructured"] = True
            assert state.tier is not m.Tier.NORMAL and state.restructured_until >= on + timedelta(days=365)
            continue
        if behaviour == "default" and on > start + timedelta(days=40):
            pay = D(0)
        if pay:
            before_state = state
            r, paid = m.repay(state, on, pay)
            _check_allocation_order(before_state, paid)
            state, entries = r.state, entries + list(r.entries)
            repaid_principal += paid.principal
        if behaviour == "prepay" and not stats["prepaid"] and state.cur < len(state.schedule) and rng.random() < 0.05:
            payoff = m.payoff_amount(state, on)
            amount = payoff if rng.random() < 0.5 else max(D("0.01"), (payoff / 3).quantize(m.FEN))
            r, paid = m.repay(state, on, amount, True, terms.method, terms.day_count, rate)
            state, entries = r.state, entries + list(r.entries)
            repaid_principal += paid.principal
            stats["prepaid"] = True
        # principal is conserved: repaid + outstanding == lent, at every step
        assert repaid_principal + state.principal_due + state.principal_not_due == lent
    return state, entries, {"accrued_by_seq": accrued_by_seq, "lent": lent, "repaid": repaid_principal,
                            "behaviour": behaviour, **stats}


def _check_allocation_order(state: m.LoanState, paid: m.Allocation) -> None:
    """Allocation never pays a later bucket while an earlier one is still due."""
    left = {"penalty": paid.penalty, "fee": paid.fee, "interest": paid.interest, "principal": paid.principal}
    buckets = m.allocation_buckets(state)
    total = paid.total
    covered = D(0)
    for _, comp, amount in buckets:
        take = min(amount, total - covered)
        assert left[comp] >= take
        left[comp] -= take
        covered += take
        if take < amount:  # this bucket is not fully paid: nothing after it may be
            assert covered == total
            break


def _subledger(state: m.LoanState) -> dict[str, Decimal]:
    return {m.NOT_DUE: state.principal_not_due, m.PRINCIPAL_DUE: state.principal_due,
            m.ACCRUED: state.accrued_in_period, m.INTEREST_DUE: state.interest_due, m.PENALTY_RECV: state.penalty_due,
            m.FEE_RECV: state.fee_due, m.SUBSIDY_RECV: state.subsidy_due}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32))
def test_random_loan_histories(seed: int) -> None:
    """8 loans an example, 480 histories a run (new seeds every run): the GL balances after every posting, the sub-ledger
    equals the GL, principal repaid equals principal lent, accrual over each period equals the schedule's
    interest for it, and allocation respects the order."""
    rng = random.Random(seed)
    for k in range(8):
        state, entries, info = _history(rng, k + 1)
        for e in entries:
            m.check_balanced(e)
        gl = m.balances(entries)
        for account, amount in _subledger(state).items():
            assert gl.get(account, D(0)) == amount, (account, info["behaviour"])
        if state.closed:
            assert info["repaid"] == info["lent"]
        if not info["prepaid"] and not info["restructured"]:
            billed = {i.seq: i.interest for i in state.schedule[:state.cur]}
            for seq, interest in billed.items():
                assert info["accrued_by_seq"][seq] == interest


def test_close_is_idempotent_and_in_order() -> None:
    terms = m.Terms(D("10000"), D("0.12"), 3, date(2026, 1, 1))
    s = m.new_state(1, terms, D("0.5"))
    day1 = m.close_day(s, date(2026, 1, 2))
    assert day1.entries and m.close_day(day1.state, date(2026, 1, 2)) == m.DayResult(day1.state)
    with pytest.raises(ValidationError, match="close the days before"):
        m.close_day(day1.state, date(2026, 1, 5))


def test_classification_thresholds_and_restructured_floor() -> None:
    assert [m.classify(d).value for d in (0, 1, 90, 91, 270, 271, 360, 361)] == [
        "normal", "special-mention", "special-mention", "substandard", "substandard", "doubtful", "doubtful", "loss"]
    assert m.classify(0, restructured=True) is m.Tier.SPECIAL_MENTION
    assert m.classify(0, restructured=True, floor=m.Tier.SUBSTANDARD) is m.Tier.SUBSTANDARD


def test_subsidy_capped_and_clawed_back_on_default() -> None:
    terms = m.Terms(D("12000"), D("0.06"), 6, date(2026, 1, 1), subsidy_rate=D("0.06"))
    sched = m.schedule(terms)
    assert all(i.subsidy == i.interest for i in sched)  # fully subsidised: capped at the interest
    s = m.new_state(1, terms, D("0.5"))
    entries = []
    on = date(2026, 1, 1)
    while on < date(2026, 4, 15):  # 73 days past the first due date: not yet a default
        on += timedelta(days=1)
        r = m.close_day(s, on)
        s, entries = r.state, entries + list(r.entries)
    assert s.subsidy_due > 0 and not s.subsidy_clawed and s.dpd == (on - date(2026, 2, 1)).days
    unpaid = s.subsidy_due
    s = replace(s, subsidy_due=D(0), subsidy_received=unpaid)  # the payer paid it all
    entries.append(m.journal("subsidy_receipt", on, {"subsidy": unpaid}, 1))
    interest_before = s.interest_due
    while s.dpd < m.DEFAULT_DPD:
        on += timedelta(days=1)
        r = m.close_day(s, on)
        s, entries = r.state, entries + list(r.entries)
    assert s.subsidy_clawed and s.subsidy_received == 0
    assert s.interest_due - interest_before >= unpaid  # the borrower owes what the payer took back
    assert any(e.event == "subsidy_clawback" for e in entries)


def test_repayment_refuses_more_than_due() -> None:
    s = m.new_state(1, m.Terms(D("1000"), D("0.1"), 2, date(2026, 1, 1)), D("0.5"))
    with pytest.raises(ValidationError, match="exceeds"):
        m.repay(s, date(2026, 1, 5), D("10"))
    with pytest.raises(ValidationError, match="whole fen"):
        m.allocate(s, D("0.001"))
