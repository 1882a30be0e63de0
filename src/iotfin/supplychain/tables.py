"""Tables of the supply-chain context: chains and their members, trading links, trade documents."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.base import one_of as _in
from iotfin.db.types import Money

DOC_TYPES = ("purchase_order", "delivery_note", "invoice", "warehouse_receipt", "payment")


class SupplyChain(Base):
    __tablename__ = "supply_chains"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    core_enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class ChainMember(Base):
    """An enterprise's place in a chain: the core (tier 0), or a supplier/buyer at tier 1, 2, ..."""

    __tablename__ = "chain_members"
    __table_args__ = (
        UniqueConstraint("chain_id", "enterprise_id"),
        CheckConstraint(_in("role", ("core", "supplier", "buyer")), name="role"),
        CheckConstraint("tier >= 0", name="tier"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("supply_chains.id", ondelete="CASCADE"))
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    tier: Mapped[int] = mapped_column(SmallInteger)


class Relationship(Base):
    """A trading link: supplier sells to buyer within a chain, since a date."""

    __tablename__ = "relationships"
    __table_args__ = (
        UniqueConstraint("chain_id", "supplier_id", "buyer_id"),
        CheckConstraint("supplier_id <> buyer_id", name="distinct_parties"),
        CheckConstraint("tier >= 1", name="tier"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("supply_chains.id", ondelete="CASCADE"))
    core_enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    tier: Mapped[int] = mapped_column(SmallInteger)
    since: Mapped[date] = mapped_column(Date)


class TradeDocument(Base):
    __tablename__ = "trade_documents"
    __table_args__ = (
        CheckConstraint(_in("doc_type", DOC_TYPES), name="doc_type"),
        CheckConstraint("amount >= 0", name="amount_nonnegative"),
        CheckConstraint("due_on IS NULL OR due_on >= issued_on", name="due_after_issue"),
        Index("ix_trade_documents_seller_issued", "seller_id", "issued_on"),
        Index("ix_trade_documents_buyer_issued", "buyer_id", "issued_on"),
        Index("ix_trade_documents_invoice", "invoice_code", "invoice_number"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    doc_type: Mapped[str] = mapped_column(String(32))
    chain_id: Mapped[int | None] = mapped_column(ForeignKey("supply_chains.id"), nullable=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"))
    # The purchase order a document descends from (a purchase order points at itself or is NULL).
    order_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    commodity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    quantity: Mapped[float | None] = mapped_column(Float, nullable=True)
    invoice_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    invoice_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    vehicle_device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), nullable=True)
