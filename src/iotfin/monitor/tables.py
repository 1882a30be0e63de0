"""Tables of monitoring: alerts with their audit trail, notifications, and commodity prices."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.types import Money, UTCDateTime
from iotfin.monitor.model import ALERT_STATUSES, Tier


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class MonitorAlert(Base):
    __tablename__ = "monitor_alerts"
    __table_args__ = (CheckConstraint(_in("status", ALERT_STATUSES), name="status"),
                      CheckConstraint(_in("tier", tuple(t.name for t in Tier)), name="tier"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    enterprise_id: Mapped[int] = mapped_column(BigInteger, index=True)
    incident_type: Mapped[str] = mapped_column(String(48))
    tier: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    rule: Mapped[str] = mapped_column(String(32))
    rules_version: Mapped[str] = mapped_column(String(64))
    reason_zh: Mapped[str] = mapped_column(String(500))
    reason_en: Mapped[str] = mapped_column(String(500))
    devices: Mapped[str] = mapped_column(Text, default="[]")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signal_events: Mapped[int] = mapped_column(Integer, default=1)
    assigned_to: Mapped[str | None] = mapped_column(String(128), nullable=True)
    resolution_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MonitorAlertEvent(Base):
    """Audit trail: every change of an alert, by the monitor or an officer."""

    __tablename__ = "monitor_alert_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("monitor_alerts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class MonitorNotification(Base):
    """What the lender and the enterprise are to be told; the webhook worker delivers and stamps them."""

    __tablename__ = "monitor_notifications"
    __table_args__ = (CheckConstraint(_in("audience", ("lender", "enterprise")), name="audience"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("monitor_alerts.id", ondelete="CASCADE"), index=True)
    enterprise_id: Mapped[int] = mapped_column(BigInteger)
    audience: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CommodityPrice(Base):
    __tablename__ = "commodity_prices"
    __table_args__ = (CheckConstraint("price > 0", name="positive"),)

    commodity: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    price: Mapped[Decimal] = mapped_column(Money)
    unit: Mapped[str] = mapped_column(String(8), default="")
