"""The issue's four properties over thousands of random loan histories, on the pure domain.

- `test_book_histories`: books of random loans (all four methods and day counts, 1–12 months,
  subsidies, periodic and upfront fees) run through `vector.close_book` every day from booking to
  120 days past maturity, with on-time, late and never-paying borrowers and a subsidy payer. After
  every close and every repayment: each journal entry balances, and the GL equals the sub-ledger
  (every control account, the allowance included); for every loan on every day principal repaid +
  outstanding = principal lent (= lent when settled); and interest recognised on each loan equals
  its schedule's interest for the periods billed plus what is accrued on the current one.
- `test_allocation_order`: random sub-ledgers and payments: allocation never pays a later bucket
  while an earlier one is due, and pays exactly the amount.

(The Decimal histories of test_model.py and the vector-vs-reference books of test_vector.py cover
relief, partial payments and prepayments; tests/lending/test_service.py runs the same close through
the real SQLite and PostgreSQL stores.)
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iotfin.lending import model as m
from iotfin.lending import vector as v

D = Decimal
LOANS_PER_BOOK = 1000
BOOKS = 3  # 3,000 loan histories a run
PAD = 13  # instalments per loan at most (12 months) + 1 empty column


def _random_book(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n = LOANS_PER_BOOK
    codes = list(m.PRODUCTS)
    prod = rng.integers(0, len(codes), n)
    term = rng.integers(1, 13, n)
    method = rng.integers(0, len(m.Method), n)
    basis = rng.integers(0, len(m.DayCount), n)
    principal = rng.integers(100_00, 5_000_000_00, n)  # fen
    rate = rng.integers(0, 240_000, n)
    subsidy = np.where(rng.random(n) < 0.3, rate // rng.integers(1, 5, n), 0)
    start = v.day(date(2025, 1, 1)) + rng.integers(0, 60, n)
    fee = np.array([int(m.PRODUCTS[codes[p]].periodic_fee * 100) for p in prod], np.int64)
    sched = {k: np.zeros((n, PAD), np.int64) for k in ("start", "due", "principal", "interest", "fee", "subsidy")}
    sched["due"][:] = v.NONE
    sched["start"][:] = v.NONE
    n_inst = np.zeros(n, np.int64)
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    for i in range(n):
        groups.setdefault((int(method[i]), int(basis[i]), int(term[i]), int(fee[i])), []).append(i)
    for (mi, bi, t, f), members in groups.items():
        idx = np.array(members)
        meth, dc = list(m.Method)[mi], list(m.DayCount)[bi]
        s = v.schedule_batch(principal[idx], rate[idx], start[idx], t, meth, dc, fee=f, subsidy_ppm=subsidy[idx])
        k = s.due.shape[1]
        for name in sched:
            sched[name][idx, :k] = getattr(s, name)
        n_inst[idx] = k
    upfront = np.array([int(m.fen(D(int(a)) / 100 * m.PRODUCTS[codes[p]].upfront_fee_rate) * 100)
                        for a, p in zip(principal, prod, strict=True)], np.int64)
    penalty = np.array([int(m.penalty_rate(D(int(r)) / 10**6, m.PRODUCTS[codes[p]].penalty_markup) * 10**6)
                        for r, p in zip(rate, prod, strict=True)], np.int64)
    zeros = np.zeros(n, np.int64)
    book = {"last_closed": start.copy(), "principal_not_due": principal.copy(), "accrued": zeros.copy(),
            "principal_due": zeros.copy(), "interest_due": zeros.copy(), "fee_due": upfront.copy(),
            "penalty_due": zeros.copy(), "subsidy_due": zeros.copy(), "subsidy_received": zeros.copy(),
            "subsidy_clawed": zeros.copy(), "overdue_since": np.where(upfront > 0, start, v.NONE), "dpd": zeros.copy(),
            "tier": zeros.copy(), "restructured_until": np.full(n, v.NONE), "restructured_floor": zeros.copy(),
            "penalty_ppm": penalty, "cur_seq": np.ones(n, np.int64), "provision": zeros.copy()}
    for k, name in (("start", "cur_start"), ("due", "cur_due"), ("principal", "cur_principal"),
                    ("interest", "cur_interest"), ("fee", "cur_fee"), ("subsidy", "cur_subsidy")):
        book[name] = sched[k][:, 0].copy()
    return {"book": book, "sched": sched, "n_inst": n_inst, "principal": principal, "upfront": upfront,
            "behaviour": rng.choice(["on-time", "late", "never"], n, p=[0.6, 0.3, 0.1]),
            "late_by": rng.choice([3, 30, 100], n)}


def _next(sched: dict) -> v.NextInstalments:
    def fetch(loan_idx: np.ndarray, seqs: np.ndarray) -> dict[str, np.ndarray]:
        col = seqs  # seq k+1 is column k
        out = {"cur_seq": np.where(sched["due"][loan_idx, col] == v.NONE, 0, seqs + 1)}
        for k, name in (("start", "cur_start"), ("due", "cur_due"), ("principal", "cur_principal"),
                        ("interest", "cur_interest"), ("fee", "cur_fee"), ("subsidy", "cur_subsidy")):
            out[name] = sched[k][loan_idx, col]
        return out
    return fetch


def _post(gl: dict[str, int], rule: str, parts: dict[str, int], on: date) -> None:
    """Post one aggregated entry (checked balanced by `journal`) into the running GL, in fen."""
    entry = m.journal(rule, on, {k: D(x) / 100 for k, x in parts.items()})
    if entry is not None:
        m.check_balanced(entry)
        for ln in entry.lines:
            gl[ln.account] = gl.get(ln.account, 0) + int((ln.debit - ln.credit) * 100)


def _check_gl(gl: dict[str, int], b: dict[str, np.ndarray]) -> None:
    sub = {m.NOT_DUE: b["principal_not_due"], m.PRINCIPAL_DUE: b["principal_due"], m.ACCRUED: b["accrued"],
           m.INTEREST_DUE: b["interest_due"], m.PENALTY_RECV: b["penalty_due"], m.FEE_RECV: b["fee_due"],
           m.SUBSIDY_RECV: b["subsidy_due"], m.ALLOWANCE: -b["provision"]}
    assert {a: gl.get(a, 0) for a in sub} == {a: int(x.sum()) for a, x in sub.items()}
    assert sum(gl.values()) == 0  # debits = credits over the whole ledger


@settings(max_examples=BOOKS, deadline=None)
@given(st.integers(0, 2**32))
def test_book_histories(seed: int) -> None:
    w = _random_book(seed)
    b, sched, n_inst, lent = w["book"], w["sched"], w["n_inst"], w["principal"]
    n = lent.size
    gl: dict[str, int] = {}
    day0 = int(b["last_closed"].min())
    _post(gl, "disbursement", {"principal": int(lent.sum())}, v.to_date(day0))
    _post(gl, "fee_charge", {"fee": int(w["upfront"].sum())}, v.to_date(day0))
    _check_gl(gl, b)
    repaid = np.zeros(n, np.int64)
    recognised = np.zeros(n, np.int64)  # interest income recognised per loan: accrual + catch-up at billing
    rng = random.Random(seed)
    last_due = int(sched["due"].max())
    for on in range(day0 + 1, last_due + 121):
        idx = np.flatnonzero(b["last_closed"] == on - 1)  # booked loans (closed from the day after their start)
        sub = {k: x[idx] for k, x in b.items()}
        before_accrued, before_seq = sub["accrued"].copy(), sub["cur_seq"].copy()
        result = v.close_book(sub, on, _next({k: x[idx] for k, x in sched.items()}))
        for k in b:
            b[k][idx] = sub[k]
        when = v.to_date(on)
        for rule, parts in result.totals.items():
            _post(gl, rule, parts, when)
        # interest recognised today per loan: the change of its accrual plus the interest of what it billed
        billed_interest = np.zeros(idx.size, np.int64)
        for j in np.flatnonzero(sub["cur_seq"] != before_seq):
            first, last = before_seq[j] - 1, (sub["cur_seq"][j] - 1) if sub["cur_seq"][j] else n_inst[idx[j]]
            billed_interest[j] = sched["interest"][idx[j], first:last].sum()
        recognised[idx] += sub["accrued"] - before_accrued + billed_interest
        _check_gl(gl, b)
        # the borrowers act: on time, late (from some days past due), never; the subsidy payer settles now and then
        due = b["principal_due"] + b["interest_due"] + b["fee_due"] + b["penalty_due"]
        beh = w["behaviour"]
        pays = (due > 0) & ((beh == "on-time") | ((beh == "late") & (b["dpd"] >= w["late_by"])))
        if pays.any():
            parts = {"penalty": int(b["penalty_due"][pays].sum()), "fee": int(b["fee_due"][pays].sum()),
                     "interest": int(b["interest_due"][pays].sum()), "principal": int(b["principal_due"][pays].sum())}
            _post(gl, "repayment", parts | {"total": sum(parts.values())}, when)
            repaid[pays] += b["principal_due"][pays]
            for k in ("principal_due", "interest_due", "fee_due", "penalty_due"):
                b[k][pays] = 0
            b["overdue_since"][pays] = v.NONE
        if rng.random() < 0.1:
            settle = b["subsidy_due"] > 0
            _post(gl, "subsidy_receipt", {"subsidy": int(b["subsidy_due"][settle].sum())}, when)
            b["subsidy_received"][settle] += b["subsidy_due"][settle]
            b["subsidy_due"][settle] = 0
        _check_gl(gl, b)
        # principal repaid + outstanding = principal lent, for every loan, every day
        assert np.array_equal(repaid + b["principal_not_due"] + b["principal_due"], lent)
    # every loan was billed in full; interest recognised on each equals its schedule's interest
    assert (b["cur_due"] == v.NONE).all() and (b["accrued"] == 0).all()
    assert np.array_equal(recognised, sched["interest"].sum(axis=1))
    settled = (b["principal_not_due"] + b["principal_due"] + b["interest_due"] + b["fee_due"] + b["penalty_due"]) == 0
    assert np.array_equal(repaid[settled], lent[settled]) and settled[w["behaviour"] == "on-time"].all()
    assert (b["tier"][w["behaviour"] == "never"] >= m.tier_index(m.Tier.SUBSTANDARD)).all()  # 120 days past due
    assert gl.get(m.INTEREST_INCOME, 0) == -int(recognised.sum())


_SCHEDULE = m.schedule(m.Terms(D("1000000"), D("0.1"), 3, date(2025, 12, 1)))


def _random_state(rng: random.Random) -> m.LoanState:
    bills = tuple(m.Bill(date(2026, 1, 1) + timedelta(days=30 * k), D(rng.choice([0, 0, rng.randint(1, 5000)])) / 100,
                         D(rng.choice([0, rng.randint(1, 10**6)])) / 100, D(rng.choice([0, rng.randint(1, 10**7)])) / 100)
                  for k in range(rng.randint(0, 5)))
    bills = tuple(b for b in bills if b.total)
    order = rng.choice([("penalty", "fee", "interest", "principal"), ("penalty", "interest", "fee", "principal"),
                        ("principal", "interest", "fee", "penalty")])
    return m.LoanState(1, _SCHEDULE, D("0.15"), date(2026, 6, 1), D("1000"), bills=bills,
                       penalty_due=D(rng.choice([0, rng.randint(1, 10**5)])) / 100, allocation=order)


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 2**32), st.floats(0, 1))
def test_allocation_order(seed: int, share: float) -> None:
    state = _random_state(random.Random(seed))
    if not state.total_due:
        return
    amount = max(D("0.01"), (state.total_due * D(str(share))).quantize(m.FEN))
    after, paid = m.allocate(state, amount)
    assert paid.total == amount and after.total_due == state.total_due - amount
    covered = D(0)
    left = {"penalty": paid.penalty, "fee": paid.fee, "interest": paid.interest, "principal": paid.principal}
    for _, comp, due in m.allocation_buckets(state):  # in payment order: each bucket full before the next
        take = min(due, amount - covered)
        assert left[comp] >= take
        left[comp] -= take
        covered += take
    assert covered == amount and not any(left.values())
