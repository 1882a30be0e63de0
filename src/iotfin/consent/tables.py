"""Tables of consent: the grants enterprises give, and the access log of every read of their data.

The access log is append-only: rows are inserted, never updated or deleted by the platform.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.types import UTCDateTime


class ConsentGrant(Base):
    __tablename__ = "consent_grants"
    __table_args__ = (
        CheckConstraint("window_end >= window_start", name="window"),
        CheckConstraint("expires_at > granted_at", name="expiry"),
        CheckConstraint("reconfirm_days BETWEEN 1 AND 90", name="reconfirm_days"),
        Index("ix_consent_grants_enterprise_recipient", "enterprise_id", "recipient"),
        Index("ix_consent_grants_recipient", "recipient"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"))
    recipient: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reconfirm_days: Mapped[int] = mapped_column(SmallInteger)
    onward_recipients: Mapped[list[str]] = mapped_column(JSON)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConsentAccess(Base):
    """One read (or refused read) of an enterprise's data by someone other than the enterprise."""

    __tablename__ = "consent_access_log"
    # The log is read page by page in id order (keyset), by the enterprise (all of it) and by a lender
    # (its own reads): with these indexes a page reads its rows in order; with the former one on
    # (enterprise, time) every page sorted the enterprise's whole log.
    __table_args__ = (Index("ix_consent_access_log_enterprise_id", "enterprise_id", "id"),
                      Index("ix_consent_access_log_enterprise_recipient_id", "enterprise_id", "recipient", "id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # No foreign key: an attempt to read an enterprise that does not exist is logged too.
    enterprise_id: Mapped[int] = mapped_column(Id)
    recipient: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(32))
    data_start: Mapped[date] = mapped_column(Date)
    data_end: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    allowed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(32))
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("consent_grants.id"), nullable=True)
    onward_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
