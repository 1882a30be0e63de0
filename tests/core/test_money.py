"""Money is Decimal yuan: parsed strictly, never from a float, rounded to the fen at booking points."""

from __future__ import annotations

from decimal import Decimal

import pytest

from iotfin.core.errors import ValidationError
from iotfin.core.jsonout import dumps
from iotfin.core.money import FEN, ZERO, quantize_fen, quantize_fen_bankers, to_money


@pytest.mark.parametrize(("value", "expected"), [
    ("125000.00", Decimal("125000.00")),
    ("0.1", Decimal("0.1")),
    (" 42 ", Decimal("42")),
    ("-3.50", Decimal("-3.50")),
    ("1e3", Decimal("1000")),
    (17, Decimal("17")),
    (10**16, Decimal("10000000000000000")),
    (Decimal("9999999999999999.99"), Decimal("9999999999999999.99")),
])
def test_to_money_parses(value: object, expected: Decimal) -> None:
    amount = to_money(value)
    assert isinstance(amount, Decimal) and amount == expected


def test_to_money_keeps_a_decimal_as_is() -> None:
    d = Decimal("12.340")
    assert to_money(d) is d


@pytest.mark.parametrize("value", [0.1, 1.0, float("nan"), True, False])
def test_to_money_refuses_floats_and_booleans(value: object) -> None:
    with pytest.raises(ValidationError, match="not (float|bool)"):
        to_money(value)


@pytest.mark.parametrize("value", ["abc", "", "1,000.00", "¥12", None, [1], "12.3.4"])
def test_to_money_refuses_what_is_not_an_amount(value: object) -> None:
    with pytest.raises(ValidationError, match="not a money amount"):
        to_money(value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", Decimal("sNaN"), Decimal("Inf")])
def test_to_money_refuses_non_finite(value: object) -> None:
    with pytest.raises(ValidationError, match="finite"):
        to_money(value)


@pytest.mark.parametrize("value", ["1e30", Decimal("1E+40"), "123456789012345678901234567.5"])
def test_to_money_refuses_amounts_that_cannot_be_kept_to_the_fen(value: object) -> None:
    # Not a decimal.InvalidOperation escaping later from quantize: a ValidationError (exit 65 / HTTP 422).
    with pytest.raises(ValidationError, match="out of range"):
        to_money(value)
    with pytest.raises(ValidationError):
        quantize_fen(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "half_up", "bankers"), [
    ("0.005", "0.01", "0.00"),
    ("0.015", "0.02", "0.02"),
    ("0.025", "0.03", "0.02"),
    ("-0.005", "-0.01", "-0.00"),
    ("2.675", "2.68", "2.68"),  # a float would say 2.67
    ("1.004999", "1.00", "1.00"),
    ("100", "100.00", "100.00"),
    ("9999999999999999.995", "10000000000000000.00", "10000000000000000.00"),
])
def test_rounding_to_the_fen(value: str, half_up: str, bankers: str) -> None:
    up = quantize_fen(Decimal(value))
    even = quantize_fen_bankers(Decimal(value))
    assert str(up) == half_up and str(even) == bankers
    assert up.as_tuple().exponent == even.as_tuple().exponent == -2


def test_quantize_validates_its_input() -> None:
    assert quantize_fen("12.345") == Decimal("12.35")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        quantize_fen(0.1)  # type: ignore[arg-type]


def test_constants() -> None:
    assert FEN == Decimal("0.01") and str(ZERO) == "0.00"


def test_json_output_keeps_money_as_strings() -> None:
    text = dumps({"b": Decimal("0.10") + Decimal("0.20"), "a": Decimal("9999999999999999.99"), "n": 3})
    assert text == '{"a":"9999999999999999.99","b":"0.30","n":3}'
