"""Vintage curves: for each origination month (cohort), the share of its principal that has gone bad
by each month on book. Pure: no I/O.

"Bad" is 30+ days past due, or written off; a loan counts from the month on book in which it crossed
that line (overdue since + 30 days, or the write-off date). The book keeps each loan's current
delinquency only (not its history), so a loan that went 30+ past due and then cured does not count:
the curves are a lower bound of the "ever 30+" curves a full delinquency history would give.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from iotfin.core.money import ZERO

BAD_DPD = 30


def months_between(start: date, end: date) -> int:
    """Whole months from `start` to `end` (0 in the month of origination), never negative."""
    months = (end.year - start.year) * 12 + end.month - start.month - (1 if end.day < start.day else 0)
    return max(months, 0)


def bad_since(dpd: int, overdue_since: date | None, status: str, written_off_on: date | None,
              start: date) -> date | None:
    """The date a loan crossed into "bad", or None if it is not bad now."""
    if status == "written_off":
        return written_off_on or start
    if dpd > BAD_DPD and overdue_since is not None:
        return overdue_since + timedelta(days=BAD_DPD + 1)
    return None


def curves(rows: Iterable[Any], as_of: date | None) -> list[dict[str, Any]]:
    """One curve per origination month, oldest first: `points` [[month on book, bad share], ...] up to
    the months the cohort has been observed (as of the last close). Rows: (start_date, principal, dpd,
    overdue_since, status, written_off_on)."""
    if as_of is None:
        return []
    cohorts: dict[str, dict[str, Any]] = {}
    for start, principal, dpd, overdue_since, status, written_off_on in rows:
        if start > as_of:
            continue
        key = f"{start.year:04d}-{start.month:02d}"
        cohort = cohorts.setdefault(key, {"cohort": key, "first": start, "loans": 0, "principal": ZERO, "bad": {}})
        cohort["first"] = min(cohort["first"], start)
        cohort["loans"] += 1
        cohort["principal"] += Decimal(principal)
        went_bad = bad_since(int(dpd or 0), overdue_since, status, written_off_on, start)
        if went_bad is not None:
            mob = months_between(start, min(went_bad, as_of))
            cohort["bad"][mob] = cohort["bad"].get(mob, ZERO) + Decimal(principal)
    out = []
    for key in sorted(cohorts):
        c = cohorts[key]
        observed = months_between(c["first"], as_of)
        bad, points = ZERO, []
        for mob in range(observed + 1):
            bad += c["bad"].get(mob, ZERO)
            points.append([mob, str((bad / c["principal"]).quantize(Decimal("0.0001"))) if c["principal"] else "0"])
        out.append({"cohort": key, "loans": c["loans"], "principal": c["principal"], "points": points})
    return out
