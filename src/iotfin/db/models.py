"""The core domain tables. One section per bounded context; Alembic migrations are derived from here.

Surrogate keys are 64-bit integers: at 11 million devices a compact integer key keeps indexes and
telemetry columns small; public codes (USCC, serials) carry their own unique constraints.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotfin.db.types import Money, UTCDateTime

# Deterministic constraint names so migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger autoincrement works on PostgreSQL (BIGSERIAL-like identity) and SQLite (INTEGER PRIMARY KEY).
Id = BigInteger().with_variant(Integer(), "sqlite")

SECTORS = ("manufacturing", "logistics", "energy", "agriculture", "infrastructure")
TAX_GRADES = ("A", "B", "M", "C", "D")
DOC_TYPES = ("purchase_order", "delivery_note", "invoice", "warehouse_receipt", "payment")
DEVICE_STATUSES = ("active", "inactive", "revoked")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- tenants: lenders and platform operators -------------------------------------------------


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (CheckConstraint(_in("kind", ("bank", "platform")), name="kind"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


# --- supply chain: enterprises, sites, chains, trade documents -------------------------------


class Enterprise(Base):
    __tablename__ = "enterprises"
    __table_args__ = (
        CheckConstraint(_in("sector", SECTORS), name="sector"),
        CheckConstraint(_in("tax_grade", TAX_GRADES), name="tax_grade"),
        CheckConstraint("registered_capital >= 0", name="capital_nonnegative"),
        CheckConstraint("litigation_count >= 0", name="litigation_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True, comment="unified social credit code")
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    sector: Mapped[str] = mapped_column(String(32), index=True)
    subsector: Mapped[str] = mapped_column(String(64))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    region: Mapped[str] = mapped_column(String(100))
    founded_on: Mapped[date] = mapped_column(Date)
    registered_capital: Mapped[Decimal] = mapped_column(Money())
    # Personal data of the legal representative, AES-GCM ciphertext (docs/protection.md).
    legal_rep_name: Mapped[str] = mapped_column(String(512))
    legal_rep_id_number: Mapped[str] = mapped_column(String(512))
    legal_rep_phone: Mapped[str] = mapped_column(String(512))
    tax_grade: Mapped[str] = mapped_column(String(1))
    litigation_count: Mapped[int] = mapped_column(Integer, default=0)
    key_person_changes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    geofence_radius_m: Mapped[float | None] = mapped_column(Float, nullable=True)


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


# --- devices: profiles and the fleet (credentials arrive with the ingest layer) ---------------


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
