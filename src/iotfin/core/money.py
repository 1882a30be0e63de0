"""Money is Decimal yuan, quantised to the fen at booking points. Never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

from iotfin.core.errors import ValidationError

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


def to_money(value: object) -> Decimal:
    """Parse an amount from a Decimal, int or string. Floats are refused: they cannot hold a fen exactly."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValidationError(f"money must be a Decimal, int or string, not {type(value).__name__}: {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValidationError(f"not a money amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValidationError(f"money must be finite: {value!r}")
    try:  # an amount with more digits than the decimal context holds cannot be kept to the fen
        amount.quantize(FEN)
    except InvalidOperation:
        raise ValidationError(f"money amount out of range: {value!r}") from None
    return amount


def quantize_fen(amount: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round to the fen. Half-up is the Chinese banking convention (四舍五入) at booking points."""
    return to_money(amount).quantize(FEN, rounding=rounding)


def quantize_fen_bankers(amount: Decimal) -> Decimal:
    return quantize_fen(amount, ROUND_HALF_EVEN)
