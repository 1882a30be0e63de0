"""The Loan Prime Rate curve: fixings with effective dates, and the base rate for a tenor. Data, not logic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.decision.values import to_rate


@dataclass(frozen=True, slots=True)
class LprFixing:
    effective: date
    one_year: Decimal
    five_year: Decimal


# Loan Prime Rate fixings published by the National Interbank Funding Center under the PBoC since the
# August 2019 reform, as (effective date, 1Y, 5Y+). Only the dates on which a rate changed are listed;
# a fixing holds until the next one. Last entry known to this code: 20 May 2025. Append newer
# fixings (or pass a curve of your own, see docs/decisioning.md) — the curve is data, not logic.
LPR_HISTORY: tuple[LprFixing, ...] = tuple(LprFixing(date.fromisoformat(d), Decimal(a), Decimal(b)) for d, a, b in (
    ("2019-08-20", "0.0425", "0.0485"),
    ("2019-09-20", "0.0420", "0.0485"),
    ("2019-11-20", "0.0415", "0.0480"),
    ("2020-02-20", "0.0405", "0.0475"),
    ("2020-04-20", "0.0385", "0.0465"),
    ("2021-12-20", "0.0380", "0.0465"),
    ("2022-01-20", "0.0370", "0.0460"),
    ("2022-05-20", "0.0370", "0.0445"),
    ("2022-08-22", "0.0365", "0.0430"),
    ("2023-06-20", "0.0355", "0.0420"),
    ("2023-08-21", "0.0345", "0.0420"),
    ("2024-02-20", "0.0345", "0.0395"),
    ("2024-07-22", "0.0335", "0.0385"),
    ("2024-10-21", "0.0310", "0.0360"),
    ("2025-05-20", "0.0300", "0.0350"),
))


@dataclass(frozen=True, slots=True)
class LprCurve:
    fixings: tuple[LprFixing, ...] = LPR_HISTORY

    def __post_init__(self) -> None:
        if not self.fixings:
            raise ValidationError("an LPR curve needs at least one fixing")
        days = [f.effective for f in self.fixings]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValidationError("LPR fixings must be in strictly increasing effective-date order")

    def fixing_on(self, day: date) -> LprFixing:
        current = None
        for fixing in self.fixings:
            if fixing.effective > day:
                break
            current = fixing
        if current is None:
            raise ValidationError(f"no LPR fixing in effect on {day} (the curve starts {self.fixings[0].effective})")
        return current

    def base_rate(self, day: date, tenor_months: int) -> tuple[Decimal, str]:
        """The reference rate for a loan of this tenor: the 1-year LPR up to 5 years, the 5-year-plus
        LPR above (the PBoC's convention: loans over five years reference the 5Y LPR)."""
        fixing = self.fixing_on(day)
        if tenor_months > 60:
            return fixing.five_year, f"LPR 5Y+ {fixing.effective}"
        return fixing.one_year, f"LPR 1Y {fixing.effective}"

    @classmethod
    def from_json(cls, rows: Sequence[Mapping[str, Any]]) -> LprCurve:
        try:
            return cls(tuple(LprFixing(date.fromisoformat(str(r["effective"])), to_rate(r["one_year"], "one_year"),
                                       to_rate(r["five_year"], "five_year")) for r in rows))
        except (KeyError, ValueError) as exc:
            raise ValidationError(f"LPR curve: bad fixing ({exc})") from None
