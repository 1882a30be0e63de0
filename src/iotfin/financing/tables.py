"""Tables of the financing registry: assets, liens, external claims, and every financing attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.types import Money, UTCDateTime

LIEN_STATUSES = ("active", "released")
ATTEMPT_OUTCOMES = ("placed", "refused")


def _now() -> datetime:
    return datetime.now(UTC)


class FinanceableAsset(Base):
    """One canonical row per asset, keyed by its fingerprint (see financing.model)."""

    __tablename__ = "financeable_assets"
    __table_args__ = (
        CheckConstraint("kind IN ('receivable', 'warehouse_receipt', 'inventory_lot', 'vehicle', 'equipment')",
                        name="kind"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    identity: Mapped[dict[str, Any]] = mapped_column(JSON, comment="the normalised identifying fields")
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), nullable=True, index=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("trade_documents.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class Lien(Base):
    """A financing placed on an asset. At most one active lien per asset: the partial unique index
    is what makes exactly one of many concurrent attempts win, on SQLite and PostgreSQL alike."""

    __tablename__ = "liens"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'released')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status = 'active' OR released_at IS NOT NULL", name="released_has_time"),
        Index("uq_liens_one_active_per_asset", "asset_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("financeable_assets.id"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    financing_ref: Mapped[str] = mapped_column(String(100), comment="the lender's reference: contract or application")
    amount: Mapped[Decimal] = mapped_column(Money())
    status: Mapped[str] = mapped_column(String(16), default="active")
    registration_no: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                        comment="movable-property financing registration number")
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, comment="debtor notified")
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    release_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ExternalClaim(Base):
    """A claim on the asset made outside this registry (disclosed by the enterprise, or found in
    the public movable-property registry), kept so competing claims can be ranked."""

    __tablename__ = "external_claims"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("financeable_assets.id"), index=True)
    claimant: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Money())
    registration_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class FinancingAttempt(Base):
    """Every attempt to finance an asset, placed or refused: the trail a risk officer reads."""

    __tablename__ = "financing_attempts"
    __table_args__ = (CheckConstraint("outcome IN ('placed', 'refused')", name="outcome"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("financeable_assets.id"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    financing_ref: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Money())
    outcome: Mapped[str] = mapped_column(String(16))
    lien_id: Mapped[int | None] = mapped_column(ForeignKey("liens.id"), nullable=True,
                                                comment="the lien placed, or the one that blocked the attempt")
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
