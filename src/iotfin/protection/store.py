"""Queries of customer protection (its tables are in `iotfin.protection.tables`): complaints,
hardship requests, and the encrypted personal fields they and the enterprise rows hold, read and
written on the caller's connection (the service holds the transaction).

A read is one statement per kind of caller and filter, built once (`functools.cache`) and run with
the caller's values as bound parameters; the rows come back with the API's field names and the
timestamps already in RFC 3339 (`utc_iso`). Measured on a 20-item complaints page: building the
statement per request, SQLAlchemy's result map for ORM-annotated columns and a datetime parsed and
formatted per cell were three quarters of the service's CPU (bench/api_read.py, docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, func, insert, or_, select, update

from iotfin.db.pagination import PageParams, fetch_page, keyset_page
from iotfin.db.types import UTCDateTime, utc_iso
from iotfin.identity.access import visible_rows
from iotfin.identity.crypto import PREFIX
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.protection.tables import Complaint, HardshipRequest

_C = Complaint.__table__.c
_H = HardshipRequest.__table__.c
_OWNER = bindparam("owner")
_NOW = bindparam("now", type_=UTCDateTime())

#: A complaint's deadlines, as SQL so that a page both reports and filters on them: acknowledgement
#: is late while a submitted complaint is unacknowledged past its due time; resolution is late while
#: the complaint is unresolved past its due time.
_LATE = {
    "acknowledgement": and_(_C.status == "submitted", _C.acknowledged_at.is_(None), _C.ack_due_at < _NOW),
    "resolution": and_(_C.status != "resolved", _C.resolve_due_at < _NOW),
}
#: The deadlines a complaint row reports as `late_<deadline>` booleans.
DEADLINES = tuple(_LATE)

_COMPLAINT_FIELDS = (
    _C.id, _C.tenant_id, _C.enterprise_id, _C.category, _C.subject, _C.description, _C.status,
    utc_iso(_C.submitted_at).label("submitted_at"), utc_iso(_C.ack_due_at).label("acknowledge_by"),
    utc_iso(_C.resolve_due_at).label("resolve_by"), utc_iso(_C.acknowledged_at).label("acknowledged_at"),
    _C.assignee, utc_iso(_C.escalated_at).label("escalated_at"), _C.escalation_reason,
    utc_iso(_C.resolved_at).label("resolved_at"), _C.resolution_code, _C.resolution_text.label("resolution_note"),
    *(late.label(f"late_{deadline}") for deadline, late in _LATE.items()),
)
_HARDSHIP_FIELDS = (
    _H.id, _H.tenant_id, _H.enterprise_id, _H.loan_ref, _H.reason_code, _H.relief, _H.description, _H.status,
    utc_iso(_H.submitted_at).label("submitted_at"), _H.reviewer, _H.review_note, _H.decided_by,
    utc_iso(_H.decided_at).label("decided_at"), _H.decision_reason, _H.relief_status, _H.relief_ref,
)

_COMPLAINT_PERSONAL = (_C.contact_name_enc, _C.contact_phone_enc)
_HARDSHIP_PERSONAL = (_H.contact_phone_enc,)
# Row -> dict by position: SQLAlchemy's Row._asdict rebuilds its key list for every row.
#: The keys of a complaint row, in column order (the personal fields last, in reads by id only).
COMPLAINT_KEYS = tuple(column.key for column in (*_COMPLAINT_FIELDS, *_COMPLAINT_PERSONAL))
#: The keys of a hardship request row, in column order (the personal field last, in reads by id only).
HARDSHIP_KEYS = tuple(column.key for column in (*_HARDSHIP_FIELDS, *_HARDSHIP_PERSONAL))

_ENTERPRISE_EXISTS = select(Enterprise.id).where(Enterprise.id == bindparam("id"))
_TENANT_BY_CODE = select(Tenant.id).where(Tenant.code == bindparam("code"))
_COMPLAINT = select(Complaint).where(Complaint.id == bindparam("id"))
_HARDSHIP = select(HardshipRequest).where(HardshipRequest.id == bindparam("id"))


@cache
def _complaints_query(kind: str, *, by_id: bool = False, by_status: bool = False, overdue_only: bool = False,
                      after: bool = False) -> Select:
    """Complaints a caller of this `visibility` kind sees: one by `id` (with the encrypted contact
    fields), or a page (`status`, overdue only)."""
    stmt = select(*_COMPLAINT_FIELDS, *_COMPLAINT_PERSONAL) if by_id else select(*_COMPLAINT_FIELDS)
    stmt = _visible(stmt, kind, _C, by_id, by_status)
    if overdue_only:
        stmt = stmt.where(or_(*_LATE.values()))
    return stmt if by_id else keyset_page(stmt, _C.id, after=after)


@cache
def _hardship_query(kind: str, *, by_id: bool = False, by_status: bool = False, after: bool = False) -> Select:
    """Hardship requests a caller of this `visibility` kind sees: one by `id` (with the encrypted
    phone), or a page (`status`)."""
    stmt = select(*_HARDSHIP_FIELDS, *_HARDSHIP_PERSONAL) if by_id else select(*_HARDSHIP_FIELDS)
    stmt = _visible(stmt, kind, _H, by_id, by_status)
    return stmt if by_id else keyset_page(stmt, _H.id, after=after)


def _visible(stmt: Select, kind: str, table: Any, by_id: bool, by_status: bool) -> Select:
    clause = visible_rows(kind, _OWNER, table.tenant_id, table.enterprise_id)
    if clause is not None:
        stmt = stmt.where(clause)
    if by_id:
        stmt = stmt.where(table.id == bindparam("id"))
    if by_status:
        stmt = stmt.where(table.status == bindparam("status"))
    return stmt


# --- lookups -----------------------------------------------------------------------------------


def tenant_id(conn: Connection, code: str) -> int | None:
    """The id of the tenant with this code (None: no such tenant)."""
    return conn.execute(_TENANT_BY_CODE, {"code": code}).scalar()


def enterprise_exists(conn: Connection, enterprise_id: int) -> bool:
    return conn.execute(_ENTERPRISE_EXISTS, {"id": enterprise_id}).first() is not None


# --- complaints --------------------------------------------------------------------------------


def insert_complaint(conn: Connection, **values: Any) -> int:
    """Store a new complaint; its id."""
    return conn.execute(insert(Complaint).values(**values).returning(Complaint.id)).scalar_one()


def complaint_row(conn: Connection, kind: str, owner: Any, complaint_id: int, now: datetime) -> Row | None:
    """One complaint as a caller of this `visibility` kind sees it (with the encrypted contact fields), in
    `COMPLAINT_KEYS` order."""
    return conn.execute(_complaints_query(kind, by_id=True), {"id": complaint_id, "owner": owner, "now": now}).first()


def complaints_page(conn: Connection, kind: str, owner: Any, page: PageParams, *, status: str | None,
                    overdue_only: bool, now: datetime) -> tuple[Sequence[Row], str | None]:
    """A page of the complaints a caller of this `visibility` kind sees, and the next page's cursor."""
    stmt = _complaints_query(kind, by_status=bool(status), overdue_only=overdue_only, after=page.after is not None)
    return fetch_page(conn, stmt, {"owner": owner, "status": status, "now": now}, page)


def complaint(conn: Connection, complaint_id: int) -> Row | None:
    """The complaint's full stored row (None: no such complaint)."""
    return conn.execute(_COMPLAINT, {"id": complaint_id}).first()


def update_complaint(conn: Connection, complaint_id: int, **values: Any) -> None:
    conn.execute(update(Complaint).where(Complaint.id == complaint_id).values(**values))


# --- hardship requests -------------------------------------------------------------------------


def insert_hardship(conn: Connection, **values: Any) -> int:
    """Store a new hardship request; its id."""
    return conn.execute(insert(HardshipRequest).values(**values).returning(HardshipRequest.id)).scalar_one()


def hardship_row(conn: Connection, kind: str, owner: Any, request_id: int) -> Row | None:
    """One hardship request as a caller of this `visibility` kind sees it (with the encrypted phone), in
    `HARDSHIP_KEYS` order."""
    return conn.execute(_hardship_query(kind, by_id=True), {"id": request_id, "owner": owner}).first()


def hardship_page(conn: Connection, kind: str, owner: Any, page: PageParams, *,
                  status: str | None) -> tuple[Sequence[Row], str | None]:
    """A page of the hardship requests a caller of this `visibility` kind sees, and the next page's cursor."""
    stmt = _hardship_query(kind, by_status=bool(status), after=page.after is not None)
    return fetch_page(conn, stmt, {"owner": owner, "status": status}, page)


def hardship(conn: Connection, request_id: int) -> Row | None:
    """The hardship request's full stored row (None: no such request)."""
    return conn.execute(_HARDSHIP, {"id": request_id}).first()


def update_hardship(conn: Connection, request_id: int, **values: Any) -> None:
    conn.execute(update(HardshipRequest).where(HardshipRequest.id == request_id).values(**values))


# --- personal data -----------------------------------------------------------------------------


def enterprise_fields(conn: Connection, enterprise_id: int, attrs: Sequence[str]) -> Row | None:
    """These columns of an enterprise row, in order (None: no such enterprise)."""
    columns = [getattr(Enterprise, attr) for attr in attrs]
    return conn.execute(select(*columns).where(Enterprise.id == enterprise_id)).first()


def count_plaintext_enterprises(conn: Connection, attrs: Sequence[str]) -> int:
    """Enterprise rows with any of these columns not encrypted."""
    return conn.execute(select(func.count()).select_from(Enterprise).where(or_(
        *(getattr(Enterprise, a).not_like(f"{PREFIX}%") for a in attrs)))).scalar_one()


def encrypted_values(conn: Connection, table: Any, attr: str, *, after: int, limit: int) -> Sequence[Row]:
    """(id, value) of the rows of `table` past id `after` whose column `attr` is set, by id, at most `limit`."""
    column = getattr(table, attr)
    return conn.execute(select(table.id, column).where(table.id > after, column.is_not(None))
                        .order_by(table.id).limit(limit)).all()


def set_encrypted_value(conn: Connection, table: Any, attr: str, row_id: int, value: str) -> None:
    conn.execute(update(table).where(table.id == row_id).values({attr: value}))
