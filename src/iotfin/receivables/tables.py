"""Tables of the receivables context: voucher issues, their fen-range holdings, lender offers and the
append-only event journal (the chain of title, anchored in the ledger one event per leaf)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.base import one_of as _in
from iotfin.db.types import UTCDateTime
from iotfin.receivables.model import EVENT_KINDS

VOUCHER_STATUSES = ("active", "paid", "cancelled")
PART_STATUSES = ("held", "offered", "financed", "paid", "cancelled", "split")
OFFER_STATUSES = ("pending", "accepted", "declined", "withdrawn")


class Voucher(Base):
    """One voucher issue: the core enterprise's confirmed payable to a supplier, [0, total_fen)."""

    __tablename__ = "receivable_vouchers"
    __table_args__ = (
        CheckConstraint("total_fen > 0", name="total_positive"),
        CheckConstraint("matures_on > issued_on", name="matures_after_issue"),
        CheckConstraint(_in("status", VOUCHER_STATUSES), name="status"),
        CheckConstraint(_in("evidence_level", ("documents", "documents+iot", "mismatch")), name="evidence_level"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True, comment="voucher number shown to people")
    issuer_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True, comment="the core enterprise")
    supplier_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True, comment="the first holder")
    total_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    issued_on: Mapped[date] = mapped_column(Date)
    matures_on: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(12), default="active")
    evidence_level: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, comment="matched documents and IoT checks")
    transferred: Mapped[bool] = mapped_column(default=False, comment="a part ever left the first holder")
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VoucherPart(Base):
    """A holding: the fen range [start_fen, end_fen) of a voucher. A split retires the parent
    (status 'split') and adds its children; a live range (held, offered, financed) overlaps no other
    live range of the voucher — kept by moving a part only out of the state it was read in (store)."""

    __tablename__ = "receivable_parts"
    __table_args__ = (
        CheckConstraint("start_fen >= 0 AND end_fen > start_fen", name="range"),
        CheckConstraint(_in("status", PART_STATUSES), name="status"),
        CheckConstraint(_in("holder_kind", ("enterprise", "lender")), name="holder_kind"),
        CheckConstraint("depth >= 0", name="depth"),
        # one live or paid holding starts at a given fen of a voucher (a retired parent shares its start)
        Index("uq_receivable_parts_live_start", "voucher_id", "start_fen", unique=True,
              sqlite_where=text("status <> 'split'"), postgresql_where=text("status <> 'split'")),
        Index("ix_receivable_parts_holder", "holder_kind", "holder_id", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("receivable_vouchers.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    start_fen: Mapped[int] = mapped_column(BigInteger)
    end_fen: Mapped[int] = mapped_column(BigInteger)
    holder_kind: Mapped[str] = mapped_column(String(10))
    holder_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="held")
    depth: Mapped[int] = mapped_column(SmallInteger, default=0)
    loan_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, comment="the discount loan, when financed")
    lien_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, comment="the registry's lien on the range")
    financed_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True,
                                                      comment="the enterprise that sold the part to the lender")
    pending_to_id: Mapped[int | None] = mapped_column(
        BigInteger, nullable=True, index=True,
        comment="a transfer sent and not yet accepted: the receiving enterprise (the part is frozen until then)")
    version: Mapped[int] = mapped_column(Integer, default=0)


class VoucherOffer(Base):
    """A holder's offer of a part to a lender. At most one pending offer per part: the partial unique
    index refuses a part offered to two lenders."""

    __tablename__ = "receivable_offers"
    __table_args__ = (
        CheckConstraint(_in("status", OFFER_STATUSES), name="status"),
        Index("uq_receivable_offers_one_pending", "part_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("receivable_parts.id"), index=True)
    lender_tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    holder_id: Mapped[int] = mapped_column(BigInteger, comment="the enterprise offering the part")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    annual_rate: Mapped[str | None] = mapped_column(String(12), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class VoucherEvent(Base):
    """The journal: every operation on a voucher, append-only, one ledger leaf each."""

    __tablename__ = "receivable_events"
    __table_args__ = (CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("receivable_vouchers.id"), index=True)
    part_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kind: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(60))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
