"""Financeable assets, their fingerprints, and the priority of competing claims. Pure: no I/O.

The fingerprint is what makes the registry stop double financing: two requests naming the same
invoice must produce the same key however the applicant typed it ("No.0123 4567" vs "01234567",
"3702-2612-3451-00" vs "370226123451 00", lower-case USCC, "1000" vs "1000.00"), and two different
assets must never share one. Each kind has a normaliser that keeps exactly the identifying fields
in one canonical spelling; the key is SHA-256 over their RFC 8785 (JCS) JSON.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from iotfin.core.errors import ValidationError
from iotfin.core.ids import is_valid_uscc
from iotfin.core.jsonvalues import jcs
from iotfin.core.money import FEN, quantize_fen, to_money

AssetKind = Literal["receivable", "warehouse_receipt", "inventory_lot", "vehicle", "equipment"]
ASSET_KINDS: tuple[str, ...] = ("receivable", "warehouse_receipt", "inventory_lot", "vehicle", "equipment")
FINGERPRINT_VERSION = 1
KIND_LABELS_ZH = {"receivable": "应收账款", "warehouse_receipt": "仓单", "inventory_lot": "存货", "vehicle": "车辆",
                  "equipment": "设备"}


@dataclass(frozen=True, slots=True)
class AssetKey:
    """The canonical identity of one financeable asset."""

    kind: str
    fields: tuple[tuple[str, str], ...]

    @property
    def canonical(self) -> bytes:
        return jcs({"kind": self.kind, "v": FINGERPRINT_VERSION, **dict(self.fields)})

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, **dict(self.fields)}


def _digits(value: str, what: str, lengths: tuple[int, ...]) -> str:
    digits = re.sub(r"\D", "", value or "")
    if len(digits) not in lengths:
        allowed = " or ".join(str(n) for n in lengths if n) or "no"
        raise ValidationError(f"{what}: expected {allowed} digits, got {value!r}")
    return digits


def _uscc(value: str, what: str) -> str:
    code = re.sub(r"[\s-]", "", value or "").upper()
    if not is_valid_uscc(code):
        raise ValidationError(f"{what}: not a valid unified social credit code: {value!r}")
    return code


def _token(value: str, what: str) -> str:
    """Free-form identifiers (receipt numbers, lot codes, serials): case and separators do not count."""
    token = re.sub(r"[\s\-_/.:#]", "", value or "").upper()
    token = re.sub(r"^NO", "", token) if len(token) > 2 else token
    if not token:
        raise ValidationError(f"{what}: must not be empty")
    return token


def _amount(value: object, what: str) -> str:
    amount = to_money(value)
    if amount <= 0:
        raise ValidationError(f"{what}: must be positive, got {value!r}")
    if amount != amount.quantize(FEN):
        raise ValidationError(f"{what}: more precise than a fen: {value!r}")
    return str(quantize_fen(amount))


def receivable_key(invoice_code: str, invoice_number: str, seller_uscc: str, buyer_uscc: str, amount: object) -> AssetKey:
    """An invoice-backed receivable. VAT invoices have a 10- or 12-digit code and an 8-digit number;
    fully digital invoices (全电发票) have no code and a 20-digit number."""
    number = _digits(invoice_number, "invoice_number", (8, 20))
    code = _digits(invoice_code, "invoice_code", (0, 10, 12) if len(number) == 20 else (10, 12))
    return AssetKey("receivable", (("invoice_code", code), ("invoice_number", number),
                                   ("seller", _uscc(seller_uscc, "seller_uscc")), ("buyer", _uscc(buyer_uscc, "buyer_uscc")),
                                   ("amount", _amount(amount, "amount"))))


def warehouse_receipt_key(issuer_uscc: str, receipt_number: str) -> AssetKey:
    return AssetKey("warehouse_receipt", (("issuer", _uscc(issuer_uscc, "issuer_uscc")),
                                          ("receipt_number", _token(receipt_number, "receipt_number"))))


def inventory_lot_key(holder_uscc: str, site_id: int, lot_code: str) -> AssetKey:
    if site_id <= 0:
        raise ValidationError(f"site_id: must be a positive site id, got {site_id!r}")
    return AssetKey("inventory_lot", (("holder", _uscc(holder_uscc, "holder_uscc")), ("site", str(int(site_id))),
                                      ("lot", _token(lot_code, "lot_code"))))


_VIN_VALUES = {**{str(d): d for d in range(10)}, **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
               **dict(zip("JKLMN", range(1, 6), strict=True)), "P": 7, "R": 9,
               **dict(zip("STUVWXYZ", range(2, 10), strict=True))}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_char(vin: str) -> str:
    """ISO 3779 / GB 16735 check character (position 9) of a 17-character VIN."""
    total = sum(_VIN_VALUES[ch] * w for ch, w in zip(vin, _VIN_WEIGHTS, strict=True))
    return "X" if total % 11 == 10 else str(total % 11)


def vehicle_key(vin: str) -> AssetKey:
    code = re.sub(r"[\s-]", "", vin or "").upper()
    if len(code) != 17 or any(ch not in _VIN_VALUES for ch in code):
        raise ValidationError(f"vin: expected 17 characters without I, O or Q, got {vin!r}")
    if vin_check_char(code) != code[8]:
        raise ValidationError(f"vin: check character does not match: {vin!r}")
    return AssetKey("vehicle", (("vin", code),))


def equipment_key(manufacturer: str, serial: str) -> AssetKey:
    maker = re.sub(r"\s+", " ", (manufacturer or "").strip()).upper()
    if not maker:
        raise ValidationError("manufacturer: must not be empty")
    return AssetKey("equipment", (("manufacturer", maker), ("serial", _token(serial, "serial"))))


# --- competing claims: PRC Civil Code art. 768 ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim on an asset: who, for how much, and what makes it rank."""

    claimant: str
    amount: Decimal
    registered_at: datetime | None = None
    registration_no: str | None = None
    notice_at: datetime | None = None  # when the debtor received notice of the assignment
    ref: str = field(default="", compare=False)


def rank_claims(claims: Sequence[Claim]) -> list[list[Claim]]:
    """Groups of claims in priority order (Civil Code art. 768, for factoring of one receivable):

    registered claims come before unregistered ones, and among registered the earlier registration
    first; among unregistered, the one whose notice reached the debtor first; claims neither
    registered nor notified share pro rata. Claims that tie (same registration or notice time) form
    one group and share pro rata too.
    """
    registered = sorted((c for c in claims if c.registered_at is not None), key=lambda c: c.registered_at)  # type: ignore[arg-type,return-value]
    notified = sorted((c for c in claims if c.registered_at is None and c.notice_at is not None),
                      key=lambda c: c.notice_at)  # type: ignore[arg-type,return-value]
    neither = [c for c in claims if c.registered_at is None and c.notice_at is None]
    groups: list[list[Claim]] = []
    for ordered, when in ((registered, "registered_at"), (notified, "notice_at")):
        first = len(groups)
        for claim in ordered:
            if len(groups) > first and getattr(groups[-1][0], when) == getattr(claim, when):
                groups[-1].append(claim)
            else:
                groups.append([claim])
    if neither:
        groups.append(neither)
    return groups


def allocate(proceeds: object, claims: Sequence[Claim]) -> list[tuple[Claim, Decimal]]:
    """Distribute proceeds by priority; within a group pro rata by amount, in fen. Each share is
    rounded down and the residual fen go to the largest claims first (then the earliest listed),
    so the shares add up to exactly what was distributed and no claim gets more than it is owed."""
    remaining = quantize_fen(to_money(proceeds))
    if remaining < 0:
        raise ValidationError(f"proceeds must not be negative: {proceeds!r}")
    out: list[tuple[Claim, Decimal]] = []
    for group in rank_claims(claims):
        owed = sum((quantize_fen(c.amount) for c in group), Decimal("0"))
        pay = min(remaining, owed)
        if owed == 0:
            out.extend((c, Decimal("0.00")) for c in group)
            continue
        shares = [(pay * quantize_fen(c.amount) / owed).quantize(FEN, rounding=ROUND_DOWN) for c in group]
        residue = int((pay - sum(shares, Decimal("0"))) / FEN)
        order = sorted(range(len(group)), key=lambda i: (-group[i].amount, i))
        for i in order[:residue]:
            shares[i] += FEN
        out.extend(zip(group, shares, strict=True))
        remaining -= pay
    return out
