"""Tenant isolation for queries: every list a router returns goes through `owned_by`; records of
contexts whose tables carry no tenant (loans, credit lines, applications) are owned through
`record_owners` (`set_owner` when a lender creates one, `can_see_record` when it is read)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, false, insert, select

from iotfin.identity.model import Principal


def owned_by(stmt: Select, who: Principal, tenant_column: Any = None, enterprise_column: Any = None) -> Select:
    """Restrict a query to the rows the caller may see: all for the operator, its own for a lender
    (by `tenant_column`) or an enterprise (by `enterprise_column`). A kind of owner the table does
    not record sees nothing."""
    if who.platform:
        return stmt
    if who.enterprise_id is not None:
        return stmt.where(enterprise_column == who.enterprise_id) if enterprise_column is not None else stmt.where(false())
    if who.tenant_id is not None and tenant_column is not None:
        return stmt.where(tenant_column == who.tenant_id)
    return stmt.where(false())


# --- owners of records whose own tables carry no tenant (loans, credit lines, applications) --------


def record_owner(engine: Engine, kind: str, record_id: int) -> int | None:
    """The lender tenant a record belongs to, or None for the operator's own records."""
    from iotfin.identity.models import RecordOwner

    with engine.connect() as conn:
        return conn.execute(select(RecordOwner.tenant_id).where(RecordOwner.kind == kind,
                                                                RecordOwner.record_id == record_id)).scalar()


def set_owner(engine: Engine, kind: str, record_id: int, tenant_id: int, enterprise_id: int) -> None:
    """Record that a lender created this record (idempotent for the same owner)."""
    from iotfin.identity.models import RecordOwner

    with engine.begin() as conn:
        current = conn.execute(select(RecordOwner.tenant_id).where(RecordOwner.kind == kind,
                                                                   RecordOwner.record_id == record_id)).scalar()
        if current is None:
            conn.execute(insert(RecordOwner).values(kind=kind, record_id=record_id, tenant_id=tenant_id,
                                                    enterprise_id=enterprise_id))


def owned_ids(engine: Engine, kind: str, tenant_id: int) -> set[int]:
    from iotfin.identity.models import RecordOwner

    with engine.connect() as conn:
        return set(conn.execute(select(RecordOwner.record_id).where(RecordOwner.kind == kind,
                                                                    RecordOwner.tenant_id == tenant_id)).scalars())


def customers(engine: Engine, tenant_id: int) -> set[int]:
    """The enterprises a lender has a relationship with: an application or a loan it made."""
    from iotfin.identity.models import RecordOwner

    with engine.connect() as conn:
        return set(conn.execute(select(RecordOwner.enterprise_id).where(RecordOwner.tenant_id == tenant_id)
                                .distinct()).scalars())


def can_see_record(engine: Engine, who: Principal, kind: str, record_id: int, enterprise_id: int | None) -> bool:
    """Tenant isolation for a loan, credit line or application: the operator sees all, the
    enterprise its own, a lender those it created."""
    if who.platform:
        return True
    if who.enterprise_id is not None:
        return enterprise_id == who.enterprise_id
    return who.tenant_id is not None and record_owner(engine, kind, record_id) == who.tenant_id
