"""Decisioning's value conventions: Decimal constants, strict parsing of rates and integers from JSON,
JSON-ready copies and percentages. Every amount and rate is a Decimal; floats are refused."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from iotfin.core.errors import ValidationError

ZERO = Decimal("0")
ONE = Decimal("1")
RATE_QUANTUM = Decimal("0.000001")  # rates are kept to 1e-6 (0.0001 %)
BP = Decimal("0.0001")


def to_rate(value: object, what: str) -> Decimal:
    """A rate or ratio as a Decimal. Floats are refused, as for money; ints and strings are fine."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValidationError(f"{what}: must be a decimal string or int, not {type(value).__name__}: {value!r}")
    try:
        rate = value if isinstance(value, Decimal) else Decimal(str(value))
    except Exception:  # noqa: BLE001 - decimal raises several types for garbage
        raise ValidationError(f"{what}: not a number: {value!r}") from None
    if not rate.is_finite():
        raise ValidationError(f"{what}: must be finite: {value!r}")
    return rate


def to_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"{what}: must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{what}: must be an integer, got {value!r}") from None


def plain(value: Any) -> Any:
    """JSON-ready copy: Decimals as strings, dates in ISO 8601, tuples as lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def pct(rate: Decimal, places: int = 2) -> str:
    """0.0435 -> '4.35%'."""
    return f"{(rate * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)}%"
