"""Tables of the devices context beyond the registry core: provenance keys and counters, device
events (tamper signals, connect/disconnect, online/offline), persisted device state, and claims.

Times the ingest path writes are UTC epoch milliseconds (as telemetry is), so a batch of events or
states is written without building datetimes per row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.models import Base, Id
from iotfin.db.types import UTCDateTime

EVENT_KINDS = ("connect", "disconnect", "online", "offline", "bad_signature", "replayed_counter", "unsigned",
               "claimed")
TAMPER_KINDS = ("bad_signature", "replayed_counter", "unsigned")


class DeviceProvenance(Base):
    """A device's message-authentication keys and its counter high-water mark.

    The HMAC secret is a symmetric key the platform must hold to verify, so it is stored as issued
    (like a ThingsBoard access token in its own database); the Ed25519 key is public by nature.
    """

    __tablename__ = "device_provenance"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    hmac_secret: Mapped[str | None] = mapped_column(String(64), nullable=True, comment="hex, 32 bytes")
    ed25519_public: Mapped[str | None] = mapped_column(String(64), nullable=True, comment="hex, 32 bytes")
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    counter: Mapped[int] = mapped_column(BigInteger, default=0, comment="highest accepted counter")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProfileProvenance(Base):
    """A profile that requires every device of it to authenticate its messages."""

    __tablename__ = "profile_provenance"

    profile_id: Mapped[int] = mapped_column(ForeignKey("device_profiles.id", ondelete="CASCADE"), primary_key=True)
    required: Mapped[bool] = mapped_column(Boolean, default=True)


class DeviceEvent(Base):
    """Durable device events: tamper signals for monitoring, and connectivity changes."""

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_device_id_id", "device_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    device_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))
    at_ms: Mapped[int] = mapped_column(BigInteger, comment="UTC epoch ms")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeviceState(Base):
    """Connectivity state, written in batches by the state tracker's sweep (not per message)."""

    __tablename__ = "device_state"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_activity_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_connect_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_disconnect_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DeviceClaim(Base):
    """ThingsBoard device claiming: the device announces a secret; an enterprise claims it with it."""

    __tablename__ = "device_claims"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    expires_ms: Mapped[int] = mapped_column(BigInteger, comment="UTC epoch ms")
