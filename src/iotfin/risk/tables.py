"""Tables of risk: the stored credit ratings, one row per (enterprise, lender, rating run), with the
three-dimension profile as it was given and the consent reads it drew on. Append-only."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.base import utc_now_column as _now
from iotfin.db.types import UTCDateTime


class CreditRating(Base):
    __tablename__ = "credit_ratings"
    __table_args__ = (Index("ix_credit_ratings_enterprise_lender", "enterprise_id", "lender", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), index=True,
                                                  comment="the lender that asked for the rating (NULL: not a tenant here)")
    lender: Mapped[str] = mapped_column(String(64), comment="consent recipient code the features were read for")
    purpose: Mapped[str] = mapped_column(String(32))
    as_of: Mapped[date] = mapped_column(Date, comment="business date (Asia/Shanghai) the features are as of")
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    model_id: Mapped[str] = mapped_column(String(200))
    pd: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(4))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    reads: Mapped[list[Any]] = mapped_column(JSON, comment="[scope, look-back days] consent reads the features drew on")
    features_withheld: Mapped[int] = mapped_column(Integer, default=0)


class RiskScorecard(Base):
    """One published version of an expert scorecard (the bootstrap scorecard the platform rates with
    before a trained model is champion). Content is immutable; `active` marks the version in force
    (one per name)."""

    __tablename__ = "risk_scorecards"
    __table_args__ = (UniqueConstraint("name", "version"), CheckConstraint("version >= 1", name="version_positive"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, comment="the scorecard (iotfin-bootstrap-scorecard/1)")
    sha256: Mapped[str] = mapped_column(String(64), comment="SHA-256 of the canonical JSON of the content")
    published_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
