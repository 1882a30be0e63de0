"""Queries of identity (its tables are in `iotfin.identity.tables`): partner clients, console users
and the tenants and enterprises they belong to; onboarding's tenants, enterprises and sites. Read
and written on the caller's connection (the service holds the transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, false, func, insert, or_, select, update

from iotfin.db.pagination import PageParams, paginate
from iotfin.identity.tables import (
    ApiClient,
    ConsoleSession,
    ConsoleSignInFailure,
    ConsoleUser,
    Enterprise,
    RecordOwner,
    Site,
    Tenant,
)

# --- partner clients ---------------------------------------------------------------------------


def insert_client(conn: Connection, **values: Any) -> None:
    conn.execute(insert(ApiClient).values(**values))


def deactivate_client(conn: Connection, client_id: str) -> bool:
    """Deactivate a client; False when there is no such client."""
    return bool(conn.execute(update(ApiClient).where(ApiClient.client_id == client_id).values(active=False)).rowcount)


def client(conn: Connection, client_id: str) -> Row | None:
    """The client's stored row (None: no such client)."""
    return conn.execute(select(ApiClient).where(ApiClient.client_id == client_id)).first()


# --- console users -----------------------------------------------------------------------------


def user_exists(conn: Connection, username: str) -> bool:
    return conn.execute(select(ConsoleUser.id).where(ConsoleUser.username == username)).first() is not None


def insert_user(conn: Connection, **values: Any) -> None:
    conn.execute(insert(ConsoleUser).values(**values))


def user(conn: Connection, username: str) -> Row | None:
    """The user's stored row (None: no such user)."""
    return conn.execute(select(ConsoleUser).where(ConsoleUser.username == username)).first()


# --- console sessions --------------------------------------------------------------------------


def insert_session(conn: Connection, **values: Any) -> None:
    conn.execute(insert(ConsoleSession).values(**values))


def open_session(conn: Connection, secret_sha256: str) -> Row | None:
    """The session with this secret that has not ended (None: unknown or ended)."""
    return conn.execute(select(ConsoleSession).where(ConsoleSession.secret_sha256 == secret_sha256,
                                                     ConsoleSession.ended_at.is_(None))).first()


def touch_session(conn: Connection, session_id: int, at: datetime) -> None:
    conn.execute(update(ConsoleSession).where(ConsoleSession.id == session_id).values(last_seen_at=at))


def end_session(conn: Connection, session_id: int, at: datetime, reason: str) -> None:
    conn.execute(update(ConsoleSession).where(ConsoleSession.id == session_id, ConsoleSession.ended_at.is_(None))
                 .values(ended_at=at, ended_reason=reason))


def record_sign_in_failure(conn: Connection, username: str, address: str | None, at: datetime) -> None:
    conn.execute(insert(ConsoleSignInFailure).values(username=username, address=address, at=at))


def sign_in_failures_since(conn: Connection, username: str, since: datetime) -> int:
    return int(conn.execute(select(func.count()).select_from(ConsoleSignInFailure).where(
        ConsoleSignInFailure.username == username, ConsoleSignInFailure.at >= since)).scalar_one())


def clear_sign_in_failures(conn: Connection, username: str) -> None:
    conn.execute(delete(ConsoleSignInFailure).where(ConsoleSignInFailure.username == username))


# --- owners ------------------------------------------------------------------------------------


def tenant_by_code(conn: Connection, code: str) -> Row | None:
    """(id, kind, partner_kind) of the tenant with this code (None: no such tenant)."""
    return conn.execute(select(Tenant.id, Tenant.kind, Tenant.partner_kind).where(Tenant.code == code)).first()


def tenant_by_id(conn: Connection, tenant_id: int) -> Row:
    """(code, kind, partner_kind) of the tenant with this id (NoResultFound if there is none)."""
    return conn.execute(select(Tenant.code, Tenant.kind, Tenant.partner_kind).where(Tenant.id == tenant_id)).one()


def enterprise_exists(conn: Connection, enterprise_id: int) -> bool:
    return conn.execute(select(Enterprise.id).where(Enterprise.id == enterprise_id)).first() is not None


# --- onboarding: tenants, enterprises, sites (iotfin.identity.onboarding) ------------------------


def tenant_code_taken(conn: Connection, code: str) -> bool:
    return conn.execute(select(Tenant.id).where(Tenant.code == code)).first() is not None


def insert_tenant(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(Tenant).values(**values).returning(Tenant.id)).scalar_one())


def tenant_row(conn: Connection, *, code: str | None = None, tenant_id: int | None = None) -> Row | None:
    """The tenant's whole row, by code or id."""
    where = Tenant.code == code if code is not None else Tenant.id == tenant_id
    return conn.execute(select(Tenant).where(where)).first()


def list_users(conn: Connection, tenant_id: int, page: PageParams) -> tuple[Sequence[Row], str | None]:
    """A tenant's console users (never the password hash), in creation order."""
    u = ConsoleUser
    return paginate(conn, select(u.id, u.username, u.display_name, u.roles, u.active, u.created_at)
                    .where(u.tenant_id == tenant_id), u.id, page)


def list_clients(conn: Connection, tenant_id: int, page: PageParams) -> tuple[Sequence[Row], str | None]:
    """A tenant's partner clients (never the secret hash), in creation order."""
    c = ApiClient
    return paginate(conn, select(c.id, c.client_id, c.name, c.scopes, c.active, c.created_at)
                    .where(c.tenant_id == tenant_id), c.id, page)


def list_tenants(conn: Connection, page: PageParams, kind: str | None = None) -> tuple[Sequence[Row], str | None]:
    stmt = select(Tenant)
    if kind is not None:
        stmt = stmt.where(Tenant.kind == kind)
    return paginate(conn, stmt, Tenant.id, page)


def uscc_taken(conn: Connection, uscc: str) -> bool:
    return conn.execute(select(Enterprise.id).where(Enterprise.uscc == uscc)).first() is not None


def insert_enterprise(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(Enterprise).values(**values).returning(Enterprise.id)).scalar_one())


def _onboarded_by() -> Any:
    """(enterprise id, tenant code) of the lender that onboarded each enterprise it onboarded."""
    return (select(RecordOwner.record_id.label("eid"), Tenant.code.label("code"))
            .join(Tenant, Tenant.id == RecordOwner.tenant_id).where(RecordOwner.kind == "enterprise")
            .subquery("onboarded"))


_PUBLIC = (Enterprise.id, Enterprise.uscc, Enterprise.name, Enterprise.name_en, Enterprise.sector,
           Enterprise.subsector, Enterprise.region_code, Enterprise.region, Enterprise.founded_on,
           Enterprise.registered_capital, Enterprise.tax_grade, Enterprise.created_at)


def _enterprises(visible: Any) -> Select:
    """The enterprises' public columns (no personal data) and the onboarding lender, restricted to
    `visible` (a WHERE clause, or None for all)."""
    onboarded = _onboarded_by()
    stmt = select(*_PUBLIC, onboarded.c.code.label("onboarded_by")).outerjoin(onboarded, onboarded.c.eid == Enterprise.id)
    return stmt if visible is None else stmt.where(visible)


def enterprise_public(conn: Connection, enterprise_id: int, visible: Any = None) -> Row | None:
    return conn.execute(_enterprises(visible).where(Enterprise.id == enterprise_id)).first()


def list_enterprises(conn: Connection, page: PageParams, visible: Any = None, *, sector: str | None = None,
                     region_prefix: str | None = None, text: str | None = None) -> tuple[Sequence[Row], str | None]:
    stmt = _enterprises(visible)
    if sector is not None:
        stmt = stmt.where(Enterprise.sector == sector)
    if region_prefix is not None:
        stmt = stmt.where(Enterprise.region_code.like(f"{region_prefix}%") if len(region_prefix) < 6
                          else Enterprise.region_code == region_prefix)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Enterprise.name.ilike(pattern, escape="\\"), Enterprise.name_en.ilike(pattern, escape="\\"),
                              Enterprise.uscc.ilike(pattern, escape="\\")))
    return paginate(conn, stmt, Enterprise.id, page)


def visible_enterprises(kind: str, owner: int | None) -> Any:
    """WHERE clause of the enterprises a caller of this `access.visibility` kind sees (None: all): an
    enterprise itself; a lender its customers (it onboarded them, or owns any record of them)."""
    if kind == "all":
        return None
    if kind == "enterprise":
        return Enterprise.id == owner
    if kind == "tenant":
        return Enterprise.id.in_(select(RecordOwner.enterprise_id).where(RecordOwner.tenant_id == owner))
    return false()


def enterprise_ids(conn: Connection, visible: Any = None) -> list[int]:
    stmt = select(Enterprise.id).order_by(Enterprise.id)
    return [int(i) for i in conn.execute(stmt if visible is None else stmt.where(visible)).scalars()]


def is_customer(conn: Connection, tenant_id: int, enterprise_id: int) -> bool:
    return conn.execute(select(RecordOwner.enterprise_id).where(
        RecordOwner.tenant_id == tenant_id, RecordOwner.enterprise_id == enterprise_id).limit(1)).first() is not None


def site_name_taken(conn: Connection, enterprise_id: int, name: str) -> bool:
    return conn.execute(select(Site.id).where(Site.enterprise_id == enterprise_id, Site.name == name)).first() is not None


def insert_site(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(Site).values(**values).returning(Site.id)).scalar_one())


def site_row(conn: Connection, site_id: int) -> Row | None:
    return conn.execute(select(Site).where(Site.id == site_id)).first()


def list_sites(conn: Connection, enterprise_id: int, page: PageParams) -> tuple[Sequence[Row], str | None]:
    return paginate(conn, select(Site).where(Site.enterprise_id == enterprise_id), Site.id, page)
