"""Tenant isolation for queries: every list a router returns goes through `owned_by`; records of
contexts whose tables carry no tenant (loans, credit lines, applications) are owned through
`record_owners` (`set_owner` when a lender creates one, `can_see_record` when it is read)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, false, insert, select

from iotfin.db import prepared
from iotfin.identity.model import Principal
from iotfin.identity.tables import RecordOwner


def owned_by(stmt: Select, who: Principal, tenant_column: Any = None, enterprise_column: Any = None) -> Select:
    """Restrict a query to the rows the caller may see: all for the operator, its own for a lender
    (by `tenant_column`) or an enterprise (by `enterprise_column`). A kind of owner the table does
    not record sees nothing."""
    kind, owner = visibility(who)
    clause = visible_rows(kind, owner, tenant_column, enterprise_column)
    return stmt if clause is None else stmt.where(clause)


def visibility(who: Principal) -> tuple[str, int | None]:
    """Which rows a caller sees, as (kind, owner id): ("all", None) for the operator,
    ("enterprise", id), ("tenant", id), or ("nothing", None)."""
    if who.platform:
        return "all", None
    if who.enterprise_id is not None:
        return "enterprise", who.enterprise_id
    if who.tenant_id is not None:
        return "tenant", who.tenant_id
    return "nothing", None


def visible_rows(kind: str, owner: Any, tenant_column: Any = None, enterprise_column: Any = None) -> Any:
    """The WHERE clause of `owned_by` for a `visibility` kind (None: every row). `owner` may be a
    bound parameter, for statements built once per kind and run with each caller's id."""
    if kind == "all":
        return None
    column = {"enterprise": enterprise_column, "tenant": tenant_column}.get(kind)
    return false() if column is None else column == owner


# --- owners of records whose own tables carry no tenant (loans, credit lines, applications) --------


def record_owner(engine: Engine, kind: str, record_id: int) -> int | None:
    """The lender tenant a record belongs to, or None for the operator's own records."""
    with engine.connect() as conn:
        return conn.execute(select(RecordOwner.tenant_id).where(RecordOwner.kind == kind,
                                                                RecordOwner.record_id == record_id)).scalar()


def set_owner(engine: Engine, kind: str, record_id: int, tenant_id: int, enterprise_id: int) -> None:
    """Record that a lender created this record (idempotent for the same owner)."""
    with engine.begin() as conn:
        set_owner_in(conn, kind, record_id, tenant_id, enterprise_id)


def set_owner_in(conn: Connection, kind: str, record_id: int, tenant_id: int, enterprise_id: int) -> None:
    """`set_owner` inside the caller's transaction: the record and its owner commit together."""
    current = conn.execute(_OWNER_OF, {"kind": kind, "record_id": record_id}).scalar()
    if current is None:
        conn.execute(_INSERT_OWNER, {"kind": kind, "record_id": record_id, "tenant_id": tenant_id,
                                     "enterprise_id": enterprise_id})


# Built once with bound parameters: every booking and every event's recipient look-up runs these
# inside a write transaction (py-spy, bench/receivables_ops.py).
_OWNER_OF = select(RecordOwner.tenant_id).where(RecordOwner.kind == bindparam("kind"),
                                                 RecordOwner.record_id == bindparam("record_id"))
_INSERT_OWNER = insert(RecordOwner.__table__)


def owned_by_tenant(kind: str, tenant_id: int) -> Select:
    """The ids of the records of `kind` a lender created, as a subquery (`id.in_(...)` in a list query)."""
    return select(RecordOwner.record_id).where(RecordOwner.kind == kind, RecordOwner.tenant_id == tenant_id)


def customers_of(tenant_id: int) -> Select:
    """The enterprises a lender has a relationship with (an application or a loan it made), as a
    subquery (`enterprise_id.in_(...)` in a list query)."""

    return select(RecordOwner.enterprise_id).where(RecordOwner.tenant_id == tenant_id)


def is_customer(engine: Engine, tenant_id: int, enterprise_id: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(RecordOwner.enterprise_id).where(
            RecordOwner.tenant_id == tenant_id, RecordOwner.enterprise_id == enterprise_id).limit(1)).first() is not None


def can_see_record(engine: Engine, who: Principal, kind: str, record_id: int, enterprise_id: int | None) -> bool:
    """Tenant isolation for a loan, credit line or application: the operator sees all, the
    enterprise its own, a lender those it created."""
    if who.platform:
        return True
    if who.enterprise_id is not None:
        return enterprise_id == who.enterprise_id
    return who.tenant_id is not None and record_owner(engine, kind, record_id) == who.tenant_id


def record_owners_in(conn: Connection, kind: str, record_ids: Sequence[int]) -> dict[int, int]:
    """`record_owner_in` for many records: record id -> owning tenant (records without one left out)."""
    out: dict[int, int] = {}
    for start in range(0, len(record_ids), 5_000):  # bounded IN lists
        part = list(record_ids[start:start + 5_000])
        out.update(conn.execute(select(RecordOwner.record_id, RecordOwner.tenant_id)
                                .where(RecordOwner.kind == kind, RecordOwner.record_id.in_(part))).tuples().all())
    return out


def record_owner_in(conn: Connection, kind: str, record_id: int) -> int | None:
    """`record_owner` inside the caller's transaction (an owner set earlier in it is seen)."""
    row = prepared.fetch_one(conn, _OWNER_OF, {"kind": kind, "record_id": record_id})
    return None if row is None else row["tenant_id"]
