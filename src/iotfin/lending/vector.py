"""The vectorised path: schedules and the daily close for a whole book, in numpy int64 fen.

Same rules and the same numbers as the Decimal reference in `iotfin.lending.model` (the tests check
them against each other to the fen over random books). Amounts are integer fen, rates integer
parts per million (rates carry six decimals), dates are days since 1970-01-01. Every division that
rounds is an exact integer division: half-up is floor((2·num + den) / (2·den)) on non-negative
numbers, and products that could pass 2^63 are split with divmod first (see `_mul_div_half_up`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy as np

from iotfin.core.errors import ValidationError
from iotfin.lending import model as m

EPOCH = date(1970, 1, 1)
NONE = -1  # "no date" in day-number columns
PPM = 1_000_000
I64 = np.int64


def day(d: date) -> int:
    return (d - EPOCH).days


def to_date(n: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + int(n))


def half_up_div(num: np.ndarray, den: int | np.ndarray) -> np.ndarray:
    """round-half-up(num / den) for num >= 0, den > 0."""
    return (2 * num + den) // (2 * den)


def _mul_div_half_up(q: np.ndarray, days: np.ndarray, den: int) -> np.ndarray:
    """round-half-up(q · days / den) without forming q · days (q up to 1e16, days up to 1e4)."""
    a, r = np.divmod(q, den)
    return a * days + half_up_div(r * days, den)


# --- calendars --------------------------------------------------------------------------------


# first day (days since 1970) and length of every month from 1970-01 to 2299-12: calendar arithmetic by lookup
_MONTHS = np.arange(np.datetime64("1970-01"), np.datetime64("2300-01"), dtype="datetime64[M]")
_MONTH_START = _MONTHS.astype("datetime64[D]").astype(I64)
_MONTH_LEN = np.diff(np.append(_MONTH_START, (_MONTHS[-1] + 1).astype("datetime64[D]").astype(I64)))


def month_parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(months since 1970-01, day of month - 1) of each date."""
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(I64)
    return months, days - _MONTH_START[months]


def add_months(start: np.ndarray, k: int, parts: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Same day k months later, clamped to the month's end (as model.add_months)."""
    months, dom = parts if parts is not None else month_parts(start)
    target = months + k
    return _MONTH_START[target] + np.minimum(dom, _MONTH_LEN[target] - 1)


def _is_leap(y: np.ndarray) -> np.ndarray:
    return ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)


def _leap_days_before(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Days before `days` (since 1970) that lie in leap years."""
    y = months // 12 + 1970
    prev = y - 1
    leaps = (prev // 4 - prev // 100 + prev // 400) - (1969 // 4 - 1969 // 100 + 1969 // 400)
    start_of_year = _MONTH_START[(y - 1970) * 12]
    return 366 * leaps + np.where(_is_leap(y), days - start_of_year, 0)


Parts = tuple[np.ndarray, np.ndarray]


def interest(balance: np.ndarray, rate_ppm: np.ndarray, start: np.ndarray, end: np.ndarray,
             basis: m.DayCount, start_parts: Parts | None = None, end_parts: Parts | None = None) -> np.ndarray:
    """round-half-up(balance × rate × year_fraction(start, end)) in fen, as model.year_fraction."""
    q = balance * rate_ppm  # fen·ppm, <= 1e10 · 1e6
    if basis is m.DayCount.ACT_365:
        return _mul_div_half_up(q, end - start, 365 * PPM)
    if basis is m.DayCount.ACT_360:
        return _mul_div_half_up(q, end - start, 360 * PPM)
    m1, d1 = start_parts if start_parts is not None else month_parts(start)
    m2, d2 = end_parts if end_parts is not None else month_parts(end)
    if basis is m.DayCount.D30_360:
        days = 30 * (m2 - m1) + (np.minimum(d2 + 1, 30) - np.minimum(d1 + 1, 30))
        return _mul_div_half_up(q, days, 360 * PPM)
    leap = _leap_days_before(end, m2) - _leap_days_before(start, m1)
    plain = (end - start) - leap
    a1, r1 = np.divmod(q, 365 * PPM)
    a2, r2 = np.divmod(q, 366 * PPM)
    frac = r1 * plain * 366 + r2 * leap * 365  # over 365 · 366 · 1e6
    return a1 * plain + a2 * leap + half_up_div(frac, 365 * 366 * PPM)


# --- schedules ----------------------------------------------------------------------------------


@dataclass
class Schedules:
    """Instalments of n loans with the same term, as (n, periods) arrays."""

    start: np.ndarray
    due: np.ndarray
    principal: np.ndarray
    interest: np.ndarray
    fee: np.ndarray
    subsidy: np.ndarray


def _emi(principal: np.ndarray, rate_ppm: np.ndarray, n: int) -> np.ndarray:
    """Equal instalment in fen, half-up. In float64 (1 − (1+r)^−n computed as −expm1(−n·log1p(r)), no
    cancellation for small r) the error is below 1e-5 fen; within 1e-4 fen of a half the Decimal
    reference decides (a handful of loans in a million)."""
    r = rate_ppm / (12 * PPM)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(r > 0, principal * r / -np.expm1(-n * np.log1p(r)), principal / n)
    out = np.floor(x + 0.5).astype(I64)
    near = np.abs(x - np.floor(x) - 0.5) < 1e-4
    for i in np.flatnonzero(near):
        exact = m.emi(Decimal(int(principal[i])) / 100, Fraction(int(rate_ppm[i]), 12 * PPM), n)
        out[i] = int(exact * 100)
    return out


def schedule_batch(principal: np.ndarray, rate_ppm: np.ndarray, start: np.ndarray, term: int, method: m.Method,
                   day_count: m.DayCount, grace_principal: int = 0, grace_interest: int = 0, fee: int = 0,
                   subsidy_ppm: np.ndarray | None = None) -> Schedules:
    """Schedules of loans sharing term, method and day count (the reference: model.schedule)."""
    principal = np.asarray(principal, I64)
    rate_ppm = np.asarray(rate_ppm, I64)
    start = np.asarray(start, I64)
    n_loans = principal.shape[0]
    subsidy_ppm = np.zeros(n_loans, I64) if subsidy_ppm is None else np.asarray(subsidy_ppm, I64)
    parts0 = month_parts(start)
    months = [term] if method is m.Method.BULLET else list(range(1, term + 1))
    dues = [add_months(start, k, parts0) for k in months]
    due_parts = [(parts0[0] + k, dues[j] - _MONTH_START[parts0[0] + k]) for j, k in enumerate(months)]
    n = len(dues)
    amortising = n - grace_principal
    if method is m.Method.EQUAL_INSTALMENT:
        level = _emi(principal, rate_ppm, amortising)
    elif method is m.Method.EQUAL_PRINCIPAL:
        level = half_up_div(principal, amortising)
    else:
        level = np.zeros(n_loans, I64)
    shape = (n_loans, n)
    out = Schedules(*(np.zeros(shape, I64) for _ in range(6)))
    balance = principal.copy()
    carried = np.zeros(n_loans, I64)
    carried_sub = np.zeros(n_loans, I64)
    subsidised = bool(subsidy_ppm.any())
    zeros = np.zeros(n_loans, I64)
    period_start, start_parts = start, parts0
    for k, due in enumerate(dues):
        i = interest(balance, rate_ppm, period_start, due, day_count, start_parts, due_parts[k])
        s = (np.minimum(i, interest(balance, subsidy_ppm, period_start, due, day_count, start_parts, due_parts[k]))
             if subsidised else zeros)
        if k == n - 1:
            p = balance
        elif k < grace_principal or method in (m.Method.INTEREST_ONLY, m.Method.BULLET):
            p = np.zeros(n_loans, I64)
        elif method is m.Method.EQUAL_INSTALMENT:
            p = np.minimum(balance, np.maximum(0, level - i))
        else:
            p = np.minimum(balance, level)
        if k < grace_interest:
            carried += i
            carried_sub += s
            i = np.zeros(n_loans, I64)
            s = np.zeros(n_loans, I64)
        else:
            i, s = i + carried, s + carried_sub
            carried[:] = 0
            carried_sub[:] = 0
        out.start[:, k], out.due[:, k], out.principal[:, k] = period_start, due, p
        out.interest[:, k], out.subsidy[:, k], out.fee[:, k] = i, s, fee
        balance = balance - p
        period_start, start_parts = due, due_parts[k]
    return out


# --- the daily close over a book ---------------------------------------------------------------

BOOK_COLUMNS = ("last_closed", "principal_not_due", "accrued", "principal_due", "interest_due", "fee_due",
                "penalty_due", "subsidy_due", "subsidy_received", "subsidy_clawed", "overdue_since", "dpd", "tier",
                "restructured_until", "restructured_floor", "penalty_ppm", "cur_seq", "cur_start", "cur_due",
                "cur_principal", "cur_interest", "cur_fee", "cur_subsidy", "provision")
CUR_COLUMNS = ("cur_seq", "cur_start", "cur_due", "cur_principal", "cur_interest", "cur_fee", "cur_subsidy")

# thresholds of model.DPD_THRESHOLDS, ascending: tier index = number of thresholds <= dpd, minus one
_THRESHOLDS = np.array(sorted(t for t, _ in m.DPD_THRESHOLDS), I64)
_SPECIAL = m.tier_index(m.Tier.SPECIAL_MENTION)

# next instalment after (loan index, seq): arrays for CUR_COLUMNS, cur_due = NONE when there is none
NextInstalments = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


@dataclass
class CloseResult:
    closed: int
    totals: dict[str, dict[str, int]]  # booking rule -> component -> fen
    bills: dict[str, np.ndarray]  # new bills: loan (index), due, fee, interest, principal
    changed: np.ndarray  # indices of loans whose instalment, bills or subsidy changed


def provision_ppm(rates: dict[m.Tier, Decimal] = m.PROVISION_RATES) -> np.ndarray:
    """The provision rate of each tier index, in parts per million."""
    return np.array([int(rates[t] * PPM) for t in m.TIER_ORDER], I64)


_DEFAULT_PROVISION_PPM = provision_ppm()


def close_book(book: dict[str, np.ndarray], on: int, next_instalments: NextInstalments,
               provision_rates_ppm: np.ndarray = _DEFAULT_PROVISION_PPM) -> CloseResult:
    """Close business day `on` for every loan in `book` not yet closed for it (in place).

    Loans already closed for `on` are left alone; a loan last closed before the day before is an error
    (the caller closes the days in order).
    """
    todo = book["last_closed"] < on
    if np.any(book["last_closed"][todo] != on - 1):
        raise ValidationError(f"loans last closed before {to_date(on - 1)}: close the earlier days first")
    idx = np.flatnonzero(todo)
    b = {k: v[idx] for k, v in book.items()}
    totals: dict[str, dict[str, int]] = {}

    def add(rule: str, **components: np.ndarray) -> None:
        t = totals.setdefault(rule, {})
        for name, values in components.items():
            t[name] = t.get(name, 0) + int(values.sum())

    has_cur = b["cur_due"] != NONE
    days = np.where(has_cur, b["cur_due"] - b["cur_start"], 1)
    elapsed = np.clip(on - b["cur_start"], 0, days)
    target = np.where(has_cur, np.where(days > 0, b["cur_interest"] * elapsed // np.maximum(days, 1),
                                        b["cur_interest"]), b["accrued"])
    add("accrual", interest=target - b["accrued"])
    b["accrued"] = target

    new_bills: list[dict[str, np.ndarray]] = []
    changed = np.zeros(idx.shape[0], bool)
    while True:
        due_now = np.flatnonzero((b["cur_due"] != NONE) & (b["cur_due"] <= on))
        if due_now.size == 0:
            break
        changed[due_now] = True
        g = {k: b[k][due_now] for k in CUR_COLUMNS}
        add("accrual", interest=g["cur_interest"] - b["accrued"][due_now])
        borrower = g["cur_interest"] - g["cur_subsidy"]
        add("billing", principal=g["cur_principal"], interest=g["cur_interest"], borrower_interest=borrower,
            subsidy=g["cur_subsidy"], fee=g["cur_fee"])
        b["principal_not_due"][due_now] -= g["cur_principal"]
        b["principal_due"][due_now] += g["cur_principal"]
        b["interest_due"][due_now] += borrower
        b["fee_due"][due_now] += g["cur_fee"]
        b["subsidy_due"][due_now] += g["cur_subsidy"]
        total = g["cur_principal"] + borrower + g["cur_fee"]
        billed = total > 0
        since = b["overdue_since"][due_now]
        b["overdue_since"][due_now] = np.where((since == NONE) & billed, g["cur_due"], since)
        new_bills.append({"loan": idx[due_now][billed], "due": g["cur_due"][billed], "fee": g["cur_fee"][billed],
                          "interest": borrower[billed], "principal": g["cur_principal"][billed]})
        b["accrued"][due_now] = 0
        nxt = next_instalments(idx[due_now], g["cur_seq"])
        for k in CUR_COLUMNS:
            b[k][due_now] = nxt[k]

    since = b["overdue_since"]
    dpd = np.where((since != NONE) & (since < on), on - since, 0)
    penalty = np.where(dpd > 0, half_up_div(b["principal_due"] * b["penalty_ppm"], 360 * PPM), 0)
    add("penalty", penalty=penalty)
    b["penalty_due"] += penalty

    claw = np.flatnonzero((dpd >= m.DEFAULT_DPD) & (b["subsidy_clawed"] == 0)
                          & ((b["subsidy_due"] + b["subsidy_received"]) > 0))
    if claw.size:
        changed[claw] = True
        unpaid, refunded = b["subsidy_due"][claw], b["subsidy_received"][claw]
        add("subsidy_clawback", interest=unpaid + refunded, unpaid=unpaid, refunded=refunded)
        b["interest_due"][claw] += unpaid + refunded
        new_bills.append({"loan": idx[claw], "due": np.full(claw.size, on, I64), "fee": np.zeros(claw.size, I64),
                          "interest": unpaid + refunded, "principal": np.zeros(claw.size, I64)})
        b["subsidy_due"][claw] = 0
        b["subsidy_received"][claw] = 0
        b["subsidy_clawed"][claw] = 1

    tier = np.searchsorted(_THRESHOLDS, dpd, side="right") - 1
    restructured = (b["restructured_until"] != NONE) & (on <= b["restructured_until"])
    tier = np.where(restructured, np.maximum(np.maximum(tier, _SPECIAL), b["restructured_floor"]), tier)
    b["dpd"], b["tier"], b["last_closed"] = dpd, tier, np.full(idx.shape[0], on, I64)
    # the allowance each loan needs (fen × ppm stays below 1e17): one aggregated charge or release
    target = half_up_div((b["principal_not_due"] + b["principal_due"]) * provision_rates_ppm[tier], PPM)
    add("provision", provision=target - b["provision"])
    b["provision"] = target
    for k, v in b.items():
        book[k][idx] = v
    bills = {k: np.concatenate([nb[k] for nb in new_bills]) if new_bills else np.zeros(0, I64)
             for k in ("loan", "due", "fee", "interest", "principal")}
    return CloseResult(int(idx.size), totals, bills, idx[changed])


def totals_to_entries(totals: dict[str, dict[str, int]], on: date, memo: str = "") -> list[m.JournalEntry]:
    """One balanced journal entry per booking rule for a close's aggregated amounts."""
    out = []
    for rule, parts in totals.items():
        entry = m.journal(rule, on, {k: (Decimal(v) / 100).quantize(m.FEN) for k, v in parts.items()}, memo=memo)
        if entry is not None:
            out.append(entry)
    return out
