"""What the receivables context needs from other contexts, as Protocols; the composition root
(iotfin.app.receivables_ports) plugs in the supply-chain, telemetry, risk, lending, financing and
ledger services. Every port that writes takes the caller's connection, so it commits with the
voucher operation or not at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class Evidence:
    """What backs a payable: the matched trade documents and the IoT delivery checks."""

    level: str  # documents | documents+iot | mismatch
    detail: dict[str, Any]


class TradeEvidence(Protocol):
    def __call__(self, conn: Connection, issuer_id: int, supplier_id: int, document_ids: Sequence[int],
                 amount_fen: int) -> Evidence:
        """Match the purchase order, delivery note and invoice (seller = supplier, buyer = issuer, one
        order, invoiced amount covering the voucher) and check the IoT delivery evidence where there
        is some; ValidationError naming what does not match."""
        ...


class Relations(Protocol):
    def __call__(self, conn: Connection, a: int, b: int) -> bool:
        """Whether enterprises a and b are in one supply chain (a transfer stays in the holder's chain)."""
        ...


class CoreRating(Protocol):
    def __call__(self, conn: Connection, enterprise_id: int) -> tuple[str, float] | None:
        """(grade, PD) of the enterprise's latest rating, or None."""
        ...


class DiscountLoans(Protocol):
    def book(self, conn: Connection, *, enterprise_id: int, lender_tenant_id: int, principal: Decimal,
             annual_rate: Decimal, start: date, months: int, ref: str) -> int:
        """Book the discount loan (the receivable product) in the caller's transaction; its id."""
        ...

    def settle(self, conn: Connection, loan_id: int, amount: Decimal, on: date) -> Decimal:
        """Apply the core enterprise's payment for a financed part to its discount loan; what was applied."""
        ...


class Liens(Protocol):
    def place(self, conn: Connection, *, voucher_number: str, start_fen: int, end_fen: int, issuer_id: int,
              lender_tenant_id: int, amount: Decimal, ref: str) -> int:
        """Place the registry's lien on the range in the caller's transaction; DoubleFinancing (409) if held."""
        ...

    def release(self, conn: Connection, lien_id: int, reason: str) -> None:
        ...


class Settlement(Protocol):
    def __call__(self, conn: Connection, on: date, collected: Decimal, paid_out: Sequence[Decimal], memo: str) -> None:
        """Balanced GL entries of a voucher payment: the collection from the core enterprise and the
        settlement to each holder."""
        ...


class Anchor(Protocol):
    def __call__(self, conn: Connection, items: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Anchor these records — (record type, id, body) — in the ledger in one append, in the
        caller's transaction (a batch's journal events, liens and loan contracts)."""
        ...


class Events(Protocol):
    def __call__(self, conn: Connection, event_type: str, payload: Mapping[str, Any], *,
                 enterprise_id: int | None = None, tenant_id: int | None = None) -> None:
        ...
