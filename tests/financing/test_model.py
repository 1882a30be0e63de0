"""Fingerprints that survive reformatting, and Civil Code art. 768 priority of competing claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotfin.core.errors import ValidationError
from iotfin.financing.model import (
    Claim,
    allocate,
    equipment_key,
    inventory_lot_key,
    rank_claims,
    receivable_key,
    vehicle_key,
    vin_check_char,
    warehouse_receipt_key,
)

SELLER, BUYER = "91350100M000100Y43", "91110000100000585X"


def test_seller_and_buyer_codes_are_valid() -> None:
    from iotfin.core.ids import is_valid_uscc

    assert is_valid_uscc(SELLER) and is_valid_uscc(BUYER)


def test_receivable_fingerprint_survives_reformatting() -> None:
    plain = receivable_key("370226123451", "01234567", SELLER, BUYER, "125000.00")
    for variant in (
        receivable_key("3702-2612-3451", "No.0123 4567", SELLER.lower(), f" {BUYER} ", Decimal("125000")),
        receivable_key("370226123451 ", "01234567", SELLER, BUYER, 125000),
    ):
        assert variant.fingerprint == plain.fingerprint


@pytest.mark.parametrize("change", [
    {"invoice_number": "01234568"}, {"invoice_code": "370226123452"}, {"amount": "125000.01"},
    {"seller_uscc": BUYER, "buyer_uscc": SELLER},
])
def test_any_identifying_change_is_another_asset(change: dict[str, str]) -> None:
    base = {"invoice_code": "370226123451", "invoice_number": "01234567", "seller_uscc": SELLER,
            "buyer_uscc": BUYER, "amount": "125000.00"}
    assert receivable_key(**base).fingerprint != receivable_key(**(base | change)).fingerprint


def test_kinds_never_collide() -> None:
    keys = [warehouse_receipt_key(SELLER, "WR-0001"), inventory_lot_key(SELLER, 1, "WR-0001"),
            equipment_key("Sany", "WR0001")]
    assert len({k.fingerprint for k in keys}) == 3


@pytest.mark.parametrize(("call", "message"), [
    (lambda: receivable_key("3702", "01234567", SELLER, BUYER, "1"), "invoice_code"),
    (lambda: receivable_key("370226123451", "0123", SELLER, BUYER, "1"), "invoice_number"),
    (lambda: receivable_key("370226123451", "01234567", "91350100M000100Y44", BUYER, "1"), "seller_uscc"),
    (lambda: receivable_key("370226123451", "01234567", SELLER, BUYER, "0"), "amount"),
    (lambda: receivable_key("370226123451", "01234567", SELLER, BUYER, 1.5), "float"),
    (lambda: receivable_key("370226123451", "01234567", SELLER, BUYER, "1.005"), "fen"),
    (lambda: vehicle_key("LSVAM4187C2184848"), "check character"),
    (lambda: vehicle_key("LSVAM4187C218484"), "17 characters"),
    (lambda: warehouse_receipt_key(SELLER, " - "), "receipt_number"),
])
def test_bad_identifiers_are_refused_with_the_field_named(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValidationError, match=message):
        call()


def test_fully_digital_invoice_has_no_code() -> None:
    key = receivable_key("", "26372000000012345678", SELLER, BUYER, "88.00")
    assert dict(key.fields)["invoice_code"] == ""


def test_vin_check_character() -> None:
    # The worked example of the North American/ISO 3779 check digit: 1M8GDM9A_KP042788 -> X.
    assert vin_check_char("1M8GDM9AXKP042788") == "X"
    assert vehicle_key("1m8gdm9a-xkp042788").fields == (("vin", "1M8GDM9AXKP042788"),)


T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_art_768_registered_first_then_notice_then_pro_rata() -> None:
    late_reg = Claim("bank-b", Decimal("100"), registered_at=T0 + timedelta(days=2), registration_no="R2")
    early_reg = Claim("bank-c", Decimal("100"), registered_at=T0, registration_no="R1")
    notified = Claim("bank-a", Decimal("100"), notice_at=T0 - timedelta(days=30))
    plain1, plain2 = Claim("f1", Decimal("300")), Claim("f2", Decimal("100"))
    groups = rank_claims([plain1, notified, late_reg, plain2, early_reg])
    assert groups == [[early_reg], [late_reg], [notified], [plain1, plain2]]


def test_same_registration_time_shares_pro_rata() -> None:
    a = Claim("a", Decimal("100"), registered_at=T0, registration_no="R1")
    b = Claim("b", Decimal("300"), registered_at=T0, registration_no="R2")
    assert rank_claims([a, b]) == [[a, b]]
    assert [s for _, s in allocate("200", [a, b])] == [Decimal("50.00"), Decimal("150.00")]


def test_allocation_pays_in_priority_and_splits_the_remainder() -> None:
    first = Claim("first", Decimal("500"), registered_at=T0, registration_no="R1")
    x, y, z = Claim("x", Decimal("100")), Claim("y", Decimal("100")), Claim("z", Decimal("100"))
    shares = dict((c.claimant, s) for c, s in allocate("600.00", [x, first, y, z]))
    assert shares["first"] == Decimal("500.00")
    assert shares["x"] + shares["y"] + shares["z"] == Decimal("100.00")
    assert sorted(shares[n] for n in "xyz") == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]


@given(st.lists(st.integers(1, 10_000_000), min_size=1, max_size=8), st.integers(0, 100_000_000),
       st.lists(st.sampled_from(["reg", "notice", "none"]), min_size=8, max_size=8))
def test_allocation_is_exact_and_never_overpays(amounts_fen: list[int], proceeds_fen: int, kinds: list[str]) -> None:
    claims = []
    for i, fen in enumerate(amounts_fen):
        when = T0 + timedelta(hours=i % 3)
        kind = kinds[i]
        claims.append(Claim(f"c{i}", Decimal(fen) / 100, registered_at=when if kind == "reg" else None,
                            registration_no=f"R{i}" if kind == "reg" else None,
                            notice_at=when if kind == "notice" else None))
    proceeds = Decimal(proceeds_fen) / 100
    out = allocate(proceeds, claims)
    total_owed = sum(c.amount for c in claims)
    assert sum(s for _, s in out) == min(proceeds, total_owed)
    assert all(Decimal(0) <= s <= c.amount for c, s in out)
    assert all(s == s.quantize(Decimal("0.01")) for _, s in out)
