"""Queries of loan offers (`iotfin.lending.tables.LoanOffer`), on the caller's connection."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, insert, or_, select, update

from iotfin.db.pagination import PageParams, paginate
from iotfin.identity.tables import RecordOwner, Tenant
from iotfin.lending.tables import LoanOffer

COLUMNS = (*LoanOffer.__table__.c, Tenant.code.label("lender"))


def _select() -> Any:
    return select(*COLUMNS).outerjoin(Tenant, Tenant.id == LoanOffer.lender_tenant_id)


def application_owner(conn: Connection, application_id: int) -> int | None:
    """The lender tenant that owns a credit application (None: the operator's)."""
    return conn.execute(select(RecordOwner.tenant_id).where(RecordOwner.kind == "application",
                                                            RecordOwner.record_id == application_id)).scalar()


def insert_offer(conn: Connection, row: Mapping[str, Any]) -> int:
    return conn.execute(insert(LoanOffer).values(**row)).inserted_primary_key[0]


def offer(conn: Connection, offer_id: int, *, for_update: bool = False) -> RowMapping | None:
    stmt = _select().where(LoanOffer.id == offer_id)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=LoanOffer)
    return conn.execute(stmt).mappings().first()


def offers_page(conn: Connection, page: PageParams, now: datetime, *, status: str | None = None,
                enterprise_id: int | None = None, lender_tenant_id: int | None = None,
                operator_only: bool = False) -> tuple[list[RowMapping], str | None]:
    """One page of offers, newest first. `status` "expired" also finds open offers past their expiry
    (and "open" leaves them out); `lender_tenant_id` restricts to a lender's offers."""
    stmt = _select()
    if enterprise_id is not None:
        stmt = stmt.where(LoanOffer.enterprise_id == enterprise_id)
    if lender_tenant_id is not None:
        stmt = stmt.where(LoanOffer.lender_tenant_id == lender_tenant_id)
    if status == "expired":
        stmt = stmt.where(or_(LoanOffer.status == "expired",
                              and_(LoanOffer.status == "open", LoanOffer.expires_at <= now)))
    elif status == "open":
        stmt = stmt.where(LoanOffer.status == "open", LoanOffer.expires_at > now)
    elif status is not None:
        stmt = stmt.where(LoanOffer.status == status)
    rows, cursor = paginate(conn, stmt, LoanOffer.id, page, descending=True)
    return [r._mapping for r in rows], cursor


def mark_accepted(conn: Connection, offer_id: int, at: datetime, by: str) -> bool:
    """Open → accepted, only if still open (False: someone else changed it first)."""
    done = conn.execute(update(LoanOffer).where(LoanOffer.id == offer_id, LoanOffer.status == "open")
                        .values(status="accepted", accepted_at=at, accepted_by=by))
    return done.rowcount == 1


def mark_booked(conn: Connection, offer_id: int, at: datetime, loan_id: int, credit_line_id: int | None) -> bool:
    """Accepted → booked, only if still accepted (False: booked meanwhile)."""
    done = conn.execute(update(LoanOffer).where(LoanOffer.id == offer_id, LoanOffer.status == "accepted")
                        .values(status="booked", booked_at=at, loan_id=loan_id, credit_line_id=credit_line_id))
    return done.rowcount == 1
