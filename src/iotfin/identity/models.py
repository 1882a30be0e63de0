"""Tables of identity and access: partner clients (OAuth2 client credentials) and console users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.models import Base, Id, _now
from iotfin.db.types import UTCDateTime


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


class RecordOwner(Base):
    """Which lender tenant a record created through the API belongs to (tenant isolation for the
    contexts whose own tables carry no tenant: loans, credit lines, credit applications). A record
    with no row here belongs to the platform operator (booked by the CLI, the demo or an operator)."""

    __tablename__ = "record_owners"
    __table_args__ = (
        CheckConstraint("kind IN ('loan', 'credit_line', 'application')", name="kind"),
        # a lender's customers, and "is this enterprise a customer of this lender" (every lender read
        # of an alert), from the index alone
        Index("ix_record_owners_tenant_enterprise", "tenant_id", "enterprise_id"),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    enterprise_id: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
