"""What the risk engine needs from other contexts, as Protocols; the composition root plugs them in.

Risk never imports the contexts behind these. Consent answers `Consent`: it decides every read the
features make of an enterprise's data and writes each decision to the access log. Devices and the
supply chain answer `FeatureSources`: the rows of theirs the feature SQL reads, each query run in the
connection risk reads the enterprise registry in, so one computation sees one state of the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple, Protocol

from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class ConsentRead:
    """One (scope, purpose, data range) the features read of an enterprise: business dates, inclusive."""

    scope: str
    purpose: str
    start: date
    end: date


class ConsentDecision(Protocol):
    """A consent decision: whether the read is allowed, and why (a reason code, and its zh-CN/en text)."""

    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def zh(self) -> str: ...

    @property
    def en(self) -> str: ...


class Consent(Protocol):
    @property
    def telemetry_scope_of_device(self) -> Mapping[str, str]:
        """Device type -> the scope its telemetry is read under (a device type without one is never read)."""
        ...

    def validate(self, recipient: str, purpose: str) -> None:
        """Refuse (ValidationError) a malformed recipient code or an unknown purpose before any work."""
        ...

    def check_many(self, recipient: str, enterprise_ids: Iterable[int], reads: Mapping[int, Sequence[ConsentRead]],
                   *, detail: str) -> Mapping[int, Sequence[ConsentDecision]]:
        """Per enterprise, the decisions on its reads in their order; every decision is logged."""
        ...


class DeviceRow(NamedTuple):
    id: int
    enterprise_id: int
    device_type: str
    commodity: str | None
    installed_on: date | None
    created_at: datetime
    interval_s: int  # of the device's profile


class DocumentRow(NamedTuple):
    id: int
    doc_type: str
    seller_id: int
    buyer_id: int
    order_id: int | None
    issued_on: date
    due_on: date | None
    amount: Decimal | None
    vehicle_device_id: int | None


class RelationshipRow(NamedTuple):
    supplier_id: int
    buyer_id: int
    core_enterprise_id: int
    since: date | None


class VoucherRow(NamedTuple):
    """One digital debt voucher (receivables): issue, maturity, and when it was paid or cancelled."""

    voucher_id: int
    issuer_id: int
    supplier_id: int
    total_fen: int
    issued_on: date
    matures_on: date
    paid_on: date | None  # fully paid on (business date)
    cancelled_on: date | None


class VoucherReceiptRow(NamedTuple):
    """An enterprise taking (part of) a voucher: issued to it (tier 1), or passed on to it by a transfer
    it accepted (tier 2 from the voucher's supplier, 3 from anyone further up the chain)."""

    voucher_id: int
    enterprise_id: int
    fen: int
    on: date
    tier: int


class FeatureSources(Protocol):
    """The system-of-record rows other contexts own that the features read; `enterprise_ids` None: all."""

    def devices(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[DeviceRow]:
        """The enterprises' devices that are not revoked."""
        ...

    def device_types(self, conn: Connection, enterprise_ids: Sequence[int]) -> Iterable[tuple[int, str]]:
        """The distinct (enterprise, device type) pairs of the enterprises' devices that are not revoked."""
        ...

    def trade_documents(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[DocumentRow]:
        """The trade documents with one of the enterprises as seller or buyer."""
        ...

    def relationships(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[RelationshipRow]:
        """The trading links with one of the enterprises as supplier or buyer."""
        ...

    def vouchers(self, conn: Connection, enterprise_ids: Sequence[int] | None
                 ) -> tuple[Sequence[VoucherRow], Sequence[VoucherReceiptRow]]:
        """The vouchers one of the enterprises issued or took, and every taking of them (all takings of
        those vouchers: the feature SQL keeps the enterprises' own)."""
        ...
