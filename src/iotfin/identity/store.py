"""Queries of identity's principals (its tables are in `iotfin.identity.tables`): partner clients,
console users and the tenants and enterprises they belong to, read and written on the caller's
connection (the service holds the transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from iotfin.identity.tables import ApiClient, ConsoleUser, Enterprise, Tenant

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


# --- owners ------------------------------------------------------------------------------------


def tenant_by_code(conn: Connection, code: str) -> Row | None:
    """(id, kind) of the tenant with this code (None: no such tenant)."""
    return conn.execute(select(Tenant.id, Tenant.kind).where(Tenant.code == code)).first()


def tenant_by_id(conn: Connection, tenant_id: int) -> Row:
    """(code, kind) of the tenant with this id (NoResultFound if there is none)."""
    return conn.execute(select(Tenant.code, Tenant.kind).where(Tenant.id == tenant_id)).one()


def enterprise_exists(conn: Connection, enterprise_id: int) -> bool:
    return conn.execute(select(Enterprise.id).where(Enterprise.id == enterprise_id)).first() is not None
