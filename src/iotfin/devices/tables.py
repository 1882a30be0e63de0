"""Tables of the devices context: profiles, the fleet and its credentials and attributes; provenance
keys and counters, device events (tamper signals, connect/disconnect, online/offline), persisted device state, and claims.

Times the ingest path writes are UTC epoch milliseconds (as telemetry is), so a batch of events or
states is written without building datetimes per row.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.base import one_of as _in
from iotfin.db.base import utc_now_column as _now
from iotfin.db.types import UTCDateTime

DEVICE_STATUSES = ("active", "inactive", "revoked")
EVENT_KINDS = ("connect", "disconnect", "online", "offline", "bad_signature", "replayed_counter", "unsigned",
               "claimed")
TAMPER_KINDS = ("bad_signature", "replayed_counter", "unsigned")


class DeviceProfile(Base):
    """What a kind of device reports: metrics with type/unit/valid range, interval, inactivity timeout."""

    __tablename__ = "device_profiles"
    __table_args__ = (
        CheckConstraint("interval_s > 0", name="interval"),
        CheckConstraint("inactivity_timeout_s > 0", name="inactivity_timeout"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    device_type: Mapped[str] = mapped_column(String(32))
    interval_s: Mapped[int] = mapped_column(Integer)
    inactivity_timeout_s: Mapped[int] = mapped_column(Integer)
    # {"metric": {"type": "float", "unit": "kWh", "min": 0, "max": 1e9}, ...}; "*" accepts any numeric key.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    # ThingsBoard device provisioning: devices present the profile's key and secret to get credentials.
    provision_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    provision_secret_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint(_in("status", DEVICE_STATUSES), name="status"),
        UniqueConstraint("serial"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), nullable=True, index=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("device_profiles.id"))
    device_type: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    commodity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    installed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    # The name a device provisions itself under (ThingsBoard `deviceName`), unique when present.
    name: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)


CREDENTIAL_KINDS = ("access_token", "mqtt_basic", "x509")


class DeviceCredential(Base):
    """How a device proves who it is. Secrets are stored as hashes: an access token as SHA-256 (it is
    a high-entropy random string, so a fast hash is enough and keeps lookups O(1) by index), an MQTT
    password as scrypt (a human may choose it)."""

    __tablename__ = "device_credentials"
    __table_args__ = (
        CheckConstraint(_in("kind", CREDENTIAL_KINDS), name="kind"),
        CheckConstraint(_in("status", ("active", "revoked")), name="status"),
        UniqueConstraint("token_sha256"),
        UniqueConstraint("mqtt_username"),
        UniqueConstraint("cert_sha256"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mqtt_client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    mqtt_username: Mapped[str | None] = mapped_column(String(128), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    cert_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, comment="rotation grace end")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeviceAttribute(Base):
    """ThingsBoard attributes: client-side (reported by the device), shared (set for the device)."""

    __tablename__ = "device_attributes"
    __table_args__ = (CheckConstraint(_in("scope", ("client", "shared", "server")), name="scope"),)

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


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
