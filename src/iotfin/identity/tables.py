"""Tables of identity and access: who is who on the platform — tenants (lenders, the operator),
enterprises and their sites — and who may call it: partner clients (OAuth2 client credentials) and
console users. Every context refers to these rows; this is the shared kernel."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.base import one_of as _in
from iotfin.db.base import utc_now_column as _now
from iotfin.db.types import Money, UTCDateTime

SECTORS = ("manufacturing", "logistics", "energy", "agriculture", "infrastructure")
TAX_GRADES = ("A", "B", "M", "C", "D")


# --- tenants: lenders and platform operators -------------------------------------------------


TENANT_KINDS = ("bank", "partner", "platform")
#: Alliance partners: IoT vendors (install and provision devices), logistics and warehouse operators.
PARTNER_KINDS = ("iot_vendor", "logistics", "warehouse")


class Tenant(Base):
    """A lender (`bank`), an alliance partner (`partner`, with its `partner_kind`) or the platform
    operator (`platform`). The code is what consents name as the recipient."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(_in("kind", TENANT_KINDS), name="kind"),
        CheckConstraint(f"(kind = 'partner' AND partner_kind IS NOT NULL AND {_in('partner_kind', PARTNER_KINDS)}) OR "
                        "(kind <> 'partner' AND partner_kind IS NULL)", name="partner_kind"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    partner_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The institution's business contact (shown to the operator; not a data subject's personal data).
    contact_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    contact_phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    contact_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
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
    address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    geofence_radius_m: Mapped[float | None] = mapped_column(Float, nullable=True)


# --- partner clients and console users -------------------------------------------------------


class ApiClient(Base):
    """A partner system. Only the argon2 hash of its secret is stored; the secret is shown once."""

    __tablename__ = "api_clients"
    __table_args__ = (CheckConstraint("tenant_id IS NULL OR enterprise_id IS NULL", name="one_owner"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class ConsoleUser(Base):
    """A person using the console; argon2 password hash, one or more roles."""

    __tablename__ = "console_users"
    __table_args__ = (CheckConstraint("tenant_id IS NULL OR enterprise_id IS NULL", name="one_owner"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class ConsoleSession(Base):
    """A console sign-in: the cookie carries a random secret, only its SHA-256 is stored, so a copy
    of the database opens no session. Ended by sign-out, idle timeout or its absolute lifetime."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_reason: Mapped[str | None] = mapped_column(String(20))


class ConsoleSignInFailure(Base):
    """A failed console sign-in, counted per username over a window to throttle password guessing
    across every server process (a per-process counter would multiply the allowance by the workers)."""

    __tablename__ = "console_sign_in_failures"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    __table_args__ = (Index("ix_console_sign_in_failures_username_at", "username", "at"),)


RECORD_KINDS = ("loan", "credit_line", "application", "enterprise")


class RecordOwner(Base):
    """Which lender tenant a record created through the API belongs to (tenant isolation for the
    contexts whose own tables carry no tenant: loans, credit lines, credit applications), and which
    lender onboarded an enterprise (kind `enterprise`, record id = the enterprise's id). A record
    with no row here belongs to the platform operator (booked by the CLI, the demo or an operator)."""

    __tablename__ = "record_owners"
    __table_args__ = (
        CheckConstraint(_in("kind", RECORD_KINDS), name="kind"),
        # a lender's customers, and "is this enterprise a customer of this lender" (every lender read
        # of an alert), from the index alone
        Index("ix_record_owners_tenant_enterprise", "tenant_id", "enterprise_id"),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    enterprise_id: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
