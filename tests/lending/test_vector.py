"""The vectorised int64 path agrees with the Decimal reference to the fen: schedules and the daily close."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotfin.lending import model as m
from iotfin.lending import vector as v

D = Decimal


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(list(m.Method)), day_count=st.sampled_from(list(m.DayCount)), term=st.integers(1, 48),
       seed=st.integers(0, 2**32), grace=st.integers(0, 3))
def test_vector_schedules_equal_the_reference(method: m.Method, day_count: m.DayCount, term: int, seed: int,
                                              grace: int) -> None:
    rng = random.Random(seed)
    n = 20
    principal = np.array([rng.choice([1, 99, 10**10, rng.randint(1, 10**10)]) for _ in range(n)], np.int64)
    rate = np.array([rng.choice([0, 1, 1_000_000, rng.randint(0, 400_000)]) for _ in range(n)], np.int64)
    subsidy = np.array([rng.randint(0, int(r)) for r in rate], np.int64)
    starts = [date(2019, 1, 1) + timedelta(days=rng.randint(0, 6000)) for _ in range(n)]
    gp, gi = min(grace, term - 1), min(grace // 2, term - 1)
    fee = rng.choice([0, 1000])
    got = v.schedule_batch(principal, rate, np.array([v.day(s) for s in starts]), term, method, day_count, gp, gi,
                           fee, subsidy)
    for j in range(n):
        ref = m.schedule(m.Terms(D(int(principal[j])) / 100, D(int(rate[j])) / 10**6, term, starts[j], method, day_count,
                                 gp, gi, D(fee) / 100, D(int(subsidy[j])) / 10**6))
        assert [(v.to_date(got.due[j, k]), int(got.principal[j, k]), int(got.interest[j, k]), int(got.subsidy[j, k]))
                for k in range(len(ref))] == [(i.due, int(i.principal * 100), int(i.interest * 100),
                                               int(i.subsidy * 100)) for i in ref]


def _fen(x: Decimal) -> int:
    return int(x * 100)


def _book(states: list[m.LoanState]) -> dict[str, np.ndarray]:
    """The arrays the store reads from the loan rows, built from reference states."""
    cols: dict[str, list[int]] = {k: [] for k in v.BOOK_COLUMNS}
    for s in states:
        cur = s.schedule[s.cur] if s.cur < len(s.schedule) else None
        since = s.overdue_since
        row = {"last_closed": v.day(s.last_closed), "principal_not_due": _fen(s.principal_not_due),
               "accrued": _fen(s.accrued_in_period), "principal_due": _fen(s.principal_due),
               "interest_due": _fen(s.interest_due), "fee_due": _fen(s.fee_due), "penalty_due": _fen(s.penalty_due),
               "subsidy_due": _fen(s.subsidy_due), "subsidy_received": _fen(s.subsidy_received),
               "subsidy_clawed": int(s.subsidy_clawed), "overdue_since": v.day(since) if since else v.NONE,
               "dpd": s.dpd, "tier": m.tier_index(s.tier),
               "restructured_until": v.day(s.restructured_until) if s.restructured_until else v.NONE,
               "restructured_floor": m.tier_index(s.restructured_floor), "penalty_ppm": int(s.penalty_rate * 10**6),
               "cur_seq": cur.seq if cur else 0, "cur_start": v.day(cur.start) if cur else v.NONE,
               "cur_due": v.day(cur.due) if cur else v.NONE, "cur_principal": _fen(cur.principal) if cur else 0,
               "cur_interest": _fen(cur.interest) if cur else 0, "cur_fee": _fen(cur.fee) if cur else 0,
               "cur_subsidy": _fen(cur.subsidy) if cur else 0, "provision": _fen(s.provision)}
        for k in v.BOOK_COLUMNS:
            cols[k].append(row[k])
    return {k: np.array(vals, np.int64) for k, vals in cols.items()}


def _next_from(states: list[m.LoanState]) -> v.NextInstalments:
    def fetch(loan_idx: np.ndarray, seqs: np.ndarray) -> dict[str, np.ndarray]:
        out = {k: np.zeros(len(loan_idx), np.int64) for k in v.CUR_COLUMNS}
        for j, (i, seq) in enumerate(zip(loan_idx.tolist(), seqs.tolist(), strict=True)):
            nxt = next((x for x in states[i].schedule if x.seq == seq + 1), None)
            if nxt is None:
                out["cur_start"][j] = out["cur_due"][j] = v.NONE
                continue
            out["cur_seq"][j], out["cur_start"][j], out["cur_due"][j] = nxt.seq, v.day(nxt.start), v.day(nxt.due)
            out["cur_principal"][j], out["cur_interest"][j] = _fen(nxt.principal), _fen(nxt.interest)
            out["cur_fee"][j], out["cur_subsidy"][j] = _fen(nxt.fee), _fen(nxt.subsidy)
        return out

    return fetch


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32))
def test_vector_close_equals_the_reference_over_random_books(seed: int) -> None:
    """A book of 40 random loans closed day by day for ~8 months both ways, with random repayments
    (applied through the reference, as the service does), restructurings and subsidies: same
    balances, bills, tiers and GL totals every day."""
    rng = random.Random(seed)
    start = date(2025, 1, 1)
    states = []
    for i in range(40):
        prod = rng.choice(list(m.PRODUCTS.values()))
        rate = D(rng.randint(20_000, 200_000)) / 10**6
        terms = m.Terms(D(rng.randint(50_000, 10_000_000)) / 100, rate, rng.randint(1, 6),
                        start - timedelta(days=rng.randint(0, 20)), prod.method, prod.day_count,
                        periodic_fee=prod.periodic_fee, subsidy_rate=(rate / rng.choice([2, 4, 10**9])).quantize(m.RATE_QUANTUM))
        s = m.new_state(i, terms, prod.penalty_markup)
        while s.last_closed < start:
            s = m.close_day(s, s.last_closed + timedelta(days=1)).state
        states.append(s)
    payers = [rng.choice(["good", "late", "never"]) for _ in states]
    on = start
    for _ in range(240):
        on += timedelta(days=1)
        book = _book(states)
        result = v.close_book(book, v.day(on), _next_from(states))
        ref = [m.close_day(s, on) for s in states]
        states = [r.state for r in ref]
        expected = _book(states)
        for k in v.BOOK_COLUMNS:
            assert np.array_equal(book[k], expected[k]), (k, on)
        ref_gl = m.balances([e for r in ref for e in r.entries])
        got_gl = m.balances(v.totals_to_entries(result.totals, on))
        assert {a: x for a, x in ref_gl.items() if x} == {a: x for a, x in got_gl.items() if x}
        for i, s in enumerate(states):  # the borrowers act between closes, through the reference
            if s.total_due and (payers[i] == "good" or (payers[i] == "late" and s.dpd > rng.choice([3, 40, 120]))):
                states[i] = m.repay(s, on, s.total_due)[0].state
            elif payers[i] == "never" and s.dpd == 30 and s.restructured_until is None and rng.random() < 0.5:
                states[i] = m.reschedule(s, on, D("0.05"), 3, m.Method.EQUAL_INSTALMENT, m.DayCount.ACT_360, 1).state
            if states[i].subsidy_due and rng.random() < 0.05:
                states[i] = replace(states[i], subsidy_due=D(0), subsidy_received=states[i].subsidy_received
                                      + states[i].subsidy_due)


def test_close_refuses_a_gap_and_skips_loans_already_closed() -> None:
    s = m.new_state(0, m.Terms(D("1000"), D("0.1"), 3, date(2026, 1, 1)), D("0.5"))
    book = _book([s])
    with pytest.raises(m.ValidationError, match="close the earlier days"):
        v.close_book(book, v.day(date(2026, 1, 3)), _next_from([s]))
    v.close_book(book, v.day(date(2026, 1, 2)), _next_from([s]))
    again = {k: a.copy() for k, a in book.items()}
    result = v.close_book(again, v.day(date(2026, 1, 2)), _next_from([s]))
    assert result.closed == 0 and all(np.array_equal(again[k], book[k]) for k in book)
