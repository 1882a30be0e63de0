"""Queries of credit decisioning (its tables are in `iotfin.decision.tables`): strategy versions,
deployments, applications, decisions and reviews, read and written on the caller's connection (the
service holds the transaction).

The statements of the decide path are built once, at import: SQLAlchemy memoises a statement
object's cache key, so executing a constant statement with parameters skips rebuilding and
re-keying it per decision (profiled: building `insert(...).values(...)` and `select(...).where(...)`
anew was about a third of the CPU of a stored decision).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    RowMapping,
    Select,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)

from iotfin.db.pagination import PageParams, paginate
from iotfin.decision.tables import (
    CreditApplication,
    CreditDecision,
    CreditReview,
    DecisionDeployment,
    DecisionStrategy,
)
from iotfin.identity.tables import Enterprise

# --- the decide path's statements, built once ------------------------------------------------------

_DEPLOYMENT = (select(DecisionDeployment).where(DecisionDeployment.strategy_name == bindparam("name"))
               .order_by(DecisionDeployment.id.desc()).limit(1))
_LOCK_ENTERPRISES = (select(Enterprise.id).where(Enterprise.id.in_(bindparam("ids", expanding=True)))
                     .order_by(Enterprise.id).with_for_update())
_APPROVED = CreditApplication.status == "approved"
_BORROWER_EXPOSURE = select(func.coalesce(func.sum(CreditApplication.approved_amount), 0)).where(
    _APPROVED, CreditApplication.enterprise_id == bindparam("eid"))
_CHAIN_EXPOSURE = select(func.coalesce(func.sum(CreditApplication.approved_amount), 0)).where(
    _APPROVED, CreditApplication.core_enterprise_id == bindparam("core"))
_INSERT_APPLICATION = insert(CreditApplication).returning(CreditApplication.id)
_INSERT_DECISION = insert(CreditDecision).returning(CreditDecision.id)


# --- strategies ------------------------------------------------------------------------------------


def latest_strategy_version(conn: Connection, name: str) -> int | None:
    """The highest published version of a strategy (None: never published)."""
    return conn.execute(select(func.max(DecisionStrategy.version)).where(DecisionStrategy.name == name)).scalar()


def insert_strategy(conn: Connection, *, name: str, version: int, content: Mapping[str, Any], sha256: str,
                    published_by: str, published_at: datetime, note: str | None) -> None:
    """Store a published version (immutable; a taken (name, version) raises IntegrityError)."""
    conn.execute(insert(DecisionStrategy).values(
        name=name, version=version, content=content, sha256=sha256, published_by=published_by,
        published_at=published_at, note=note))


def strategy_versions(conn: Connection, name: str) -> list[dict[str, Any]]:
    """The published versions of a strategy, oldest first, without their content."""
    rows = conn.execute(select(DecisionStrategy.name, DecisionStrategy.version, DecisionStrategy.sha256,
                               DecisionStrategy.published_by, DecisionStrategy.published_at, DecisionStrategy.note)
                        .where(DecisionStrategy.name == name).order_by(DecisionStrategy.version)).mappings().all()
    return [dict(r) for r in rows]


def strategy_content(conn: Connection, name: str, version: int) -> dict[str, Any] | None:
    """The JDM graph of one version (None: no such version)."""
    return conn.execute(select(DecisionStrategy.content).where(
        DecisionStrategy.name == name, DecisionStrategy.version == version)).scalar()


# --- deployments -----------------------------------------------------------------------------------


def insert_deployment(conn: Connection, *, strategy_name: str, champion_version: int, challenger_version: int | None,
                      challenger_bps: int, action: str, deployed_by: str, deployed_at: datetime) -> None:
    conn.execute(insert(DecisionDeployment).values(
        strategy_name=strategy_name, champion_version=champion_version, challenger_version=challenger_version,
        challenger_bps=challenger_bps, action=action, deployed_by=deployed_by, deployed_at=deployed_at))


def deployment(conn: Connection, name: str) -> dict[str, Any] | None:
    """The deployment in force (the latest row of the strategy), without its row id; None: never deployed."""
    row = conn.execute(_DEPLOYMENT, {"name": name}).mappings().first()
    return None if row is None else {k: v for k, v in dict(row).items() if k != "id"}


def deployments(conn: Connection, name: str) -> Sequence[Row[Any]]:
    """Every deployment of a strategy, newest first."""
    return conn.execute(select(DecisionDeployment).where(DecisionDeployment.strategy_name == name)
                        .order_by(DecisionDeployment.id.desc())).all()


# --- deciding --------------------------------------------------------------------------------------


def lock_enterprises(conn: Connection, ids: Collection[int]) -> set[int]:
    """Lock the enterprises' rows in id order (FOR UPDATE on PostgreSQL); returns the ids found."""
    return set(conn.execute(_LOCK_ENTERPRISES, {"ids": ids}).scalars())


def borrower_exposure(conn: Connection, enterprise_id: int) -> Any:
    """The approved amounts of the enterprise's applications, summed (the Money type: yuan)."""
    return conn.execute(_BORROWER_EXPOSURE, {"eid": enterprise_id}).scalar()


def chain_exposure(conn: Connection, core: int) -> Any:
    """The approved amounts of the applications in the supply chain of core enterprise `core`, summed."""
    return conn.execute(_CHAIN_EXPOSURE, {"core": core}).scalar()


def insert_application(conn: Connection, row: Mapping[str, Any]) -> Any:
    """Store an application; returns its id."""
    return conn.execute(_INSERT_APPLICATION, row).scalar_one()


def insert_decision(conn: Connection, row: Mapping[str, Any]) -> int:
    """Store a decision (immutable); returns its id."""
    return int(conn.execute(_INSERT_DECISION, row).scalar_one())


# --- replay ----------------------------------------------------------------------------------------


def replay_rows(conn: Connection, name: str, limit: int | None) -> list[tuple[Any, ...]]:
    """The strategy's past decisions, in application order: (inputs, decision, offered amount,
    exposure, limit). The JSON comes back as text, to be parsed in replay's workers (orjson): parsed
    here with the driver's json module it was a sixth of a replay's time, all of it in one process."""
    query = (select(cast(CreditApplication.inputs, Text), CreditDecision.decision, CreditDecision.offered_amount,
                    cast(CreditDecision.result["exposure"], Text), cast(CreditDecision.result["limit"], Text))
             .join(CreditDecision, CreditDecision.application_id == CreditApplication.id)
             .where(CreditDecision.source == "strategy", CreditDecision.strategy_name == name)
             .order_by(CreditApplication.id))
    if limit is not None:
        query = query.limit(limit)
    return [tuple(r) for r in conn.execute(query)]


# --- applications and the review queue -------------------------------------------------------------


def review_queue_page(conn: Connection, page: PageParams, *, enterprise_id: int | None = None,
                      among: Select | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of referred applications (and those awaiting a second officer), oldest first, and the
    next cursor: of one enterprise, and/or of the applications whose ids `among` selects."""
    query = (select(CreditApplication.id, CreditApplication.enterprise_id, CreditApplication.product,
                    CreditApplication.amount, CreditApplication.tenor_months, CreditApplication.status,
                    CreditApplication.received_at, Enterprise.name, Enterprise.name_en)
             .join(Enterprise, Enterprise.id == CreditApplication.enterprise_id)
             .where(CreditApplication.status.in_(("referred", "awaiting_second_approval"))))
    if enterprise_id is not None:
        query = query.where(CreditApplication.enterprise_id == enterprise_id)
    if among is not None:
        query = query.where(CreditApplication.id.in_(among))
    rows, cursor = paginate(conn, query, CreditApplication.id, page)
    return [dict(r._mapping) for r in rows], cursor


def applications_page(conn: Connection, page: PageParams, *, status: str | None = None,
                      enterprise_id: int | None = None, among: Select | None = None
                      ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of applications, newest first: in one status, of one enterprise, among the ids `among`
    selects (a lender's own applications)."""
    query = (select(CreditApplication.id, CreditApplication.ref, CreditApplication.enterprise_id,
                    CreditApplication.product, CreditApplication.amount, CreditApplication.tenor_months,
                    CreditApplication.status, CreditApplication.approved_amount, CreditApplication.received_at,
                    CreditApplication.updated_at, Enterprise.name, Enterprise.name_en)
             .join(Enterprise, Enterprise.id == CreditApplication.enterprise_id))
    if status is not None:
        query = query.where(CreditApplication.status == status)
    if enterprise_id is not None:
        query = query.where(CreditApplication.enterprise_id == enterprise_id)
    if among is not None:
        query = query.where(CreditApplication.id.in_(among))
    rows, cursor = paginate(conn, query, CreditApplication.id, page, descending=True)
    return [dict(r._mapping) for r in rows], cursor


def application(conn: Connection, application_id: int) -> RowMapping | None:
    return conn.execute(select(CreditApplication).where(CreditApplication.id == application_id)).mappings().first()


def enterprise_summary(conn: Connection, enterprise_id: int) -> RowMapping | None:
    """Who applied: id, names, USCC, sector and region."""
    return conn.execute(select(Enterprise.id, Enterprise.name, Enterprise.name_en, Enterprise.uscc,
                               Enterprise.sector, Enterprise.region).where(
        Enterprise.id == enterprise_id)).mappings().first()


def decisions_of(conn: Connection, application_id: int) -> Sequence[RowMapping]:
    """Every decision on an application, in order."""
    return conn.execute(select(CreditDecision).where(CreditDecision.application_id == application_id)
                        .order_by(CreditDecision.id)).mappings().all()


def reviews_of(conn: Connection, application_id: int) -> Sequence[RowMapping]:
    """Every officer's review of an application, in order."""
    return conn.execute(select(CreditReview).where(CreditReview.application_id == application_id)
                        .order_by(CreditReview.id)).mappings().all()


def first_strategy_decision(conn: Connection, application_id: int) -> RowMapping | None:
    """The strategy's decision on an application (the terms it proposed)."""
    return conn.execute(select(CreditDecision).where(CreditDecision.application_id == application_id,
                                                     CreditDecision.source == "strategy")
                        .order_by(CreditDecision.id).limit(1)).mappings().first()


def latest_review(conn: Connection, application_id: int) -> RowMapping | None:
    return conn.execute(select(CreditReview).where(CreditReview.application_id == application_id)
                        .order_by(CreditReview.id.desc()).limit(1)).mappings().first()


def insert_review(conn: Connection, *, application_id: int, officer: str, action: str, reason: str,
                  amount: Any, tenor_months: int | None, rate: str | None, reviewed_at: datetime) -> None:
    conn.execute(insert(CreditReview).values(
        application_id=application_id, officer=officer, action=action, reason=reason, amount=amount,
        tenor_months=tenor_months, rate=rate, reviewed_at=reviewed_at))


def update_application(conn: Connection, application_id: int, **values: Any) -> None:
    """Set columns of an application (its status, approved amount, update time)."""
    conn.execute(update(CreditApplication).where(CreditApplication.id == application_id).values(**values))


# --- the ledger's loader ---------------------------------------------------------------------------


def decision_records(conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """The credit decisions as they stand: the ledger's loader for `credit_decision` records (anchoring,
    proving, auditing; its RecordLoader port, iotfin.ledger.ports). An id that is not a number is no
    decision."""
    table = CreditDecision.__table__
    query = select(table).order_by(table.c.id)
    if record_ids is not None:
        query = query.where(table.c.id.in_([int(rid) for rid in record_ids if _is_int(rid)]))
    return {str(row["id"]): dict(row) for row in conn.execute(query).mappings()}


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
