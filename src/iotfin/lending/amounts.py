"""Amounts and rates: the one rounding rule, and the bounds that keep the vectorised path exact.

Every amount is computed exactly (rational arithmetic) and rounded half-up (四舍五入) to the fen
once, where it is booked; the last instalment absorbs the residue, so instalment principals always
sum to the principal lent. Rates carry at most six decimal places (0.0001 %), which makes the
vectorised int64 path in `iotfin.lending.vector` exact.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from iotfin.core.money import FEN

RATE_QUANTUM = Decimal("0.000001")  # rates carry at most six decimals (0.0001 %)
MAX_PRINCIPAL = Decimal("100000000.00")  # 100 M yuan per loan keeps int64 fen arithmetic exact
MAX_RATE = Decimal("1")  # 100 % a year


def fen(value: Fraction | Decimal | int) -> Decimal:
    """Round an exact amount in yuan half-up to the fen (the one rounding rule)."""
    q = Fraction(value) * 100
    n = (q.numerator * 2 + q.denominator) // (2 * q.denominator)  # floor(q + 1/2): half-up for q >= 0
    if q < 0:
        n = -((-q.numerator * 2 + q.denominator) // (2 * q.denominator))
    return (Decimal(n) / 100).quantize(FEN)
