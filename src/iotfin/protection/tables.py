"""Tables of customer protection. Personal fields (`*_enc`) hold AES-GCM ciphertext (crypto.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.base import one_of as _in
from iotfin.db.base import utc_now_column as _now
from iotfin.db.types import UTCDateTime
from iotfin.protection.model import COMPLAINT_STATUSES, HARDSHIP_STATUSES

RELIEF_STATUSES = ("not_applicable", "awaiting_lending", "applied")


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (CheckConstraint(_in("status", tuple(COMPLAINT_STATUSES)), name="status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), index=True, comment="lender concerned")
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    contact_name_enc: Mapped[str | None] = mapped_column(String(400))
    contact_phone_enc: Mapped[str | None] = mapped_column(String(400))
    submitted_by: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    ack_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolve_due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    assignee: Mapped[str | None] = mapped_column(String(120))
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalation_reason: Mapped[str | None] = mapped_column(String(1000))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_code: Mapped[str | None] = mapped_column(String(32))
    resolution_text: Mapped[str | None] = mapped_column(Text)


class HardshipRequest(Base):
    __tablename__ = "hardship_requests"
    __table_args__ = (
        CheckConstraint(_in("status", tuple(HARDSHIP_STATUSES)), name="status"),
        CheckConstraint(_in("relief_status", RELIEF_STATUSES), name="relief_status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True, comment="the lender")
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    loan_ref: Mapped[str] = mapped_column(String(100))
    reason_code: Mapped[str] = mapped_column(String(32))
    relief: Mapped[str] = mapped_column(String(32), comment="relief asked for")
    description: Mapped[str] = mapped_column(Text)
    contact_phone_enc: Mapped[str | None] = mapped_column(String(400))
    submitted_by: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    reviewer: Mapped[str | None] = mapped_column(String(120))
    review_note: Mapped[str | None] = mapped_column(String(1000))
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(String(1000))
    relief_status: Mapped[str] = mapped_column(String(20), default="not_applicable")
    relief_ref: Mapped[str | None] = mapped_column(String(100))
