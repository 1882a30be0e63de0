"""Queries of the financing registry (its tables are in `iotfin.financing.tables`), read and written on
the caller's connection: the service holds the transaction, so a lookup, its lien and its attempt
record commit together (the double-financing checks rely on that)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, ScalarResult, bindparam, insert, select, update

from iotfin.db import prepared
from iotfin.db.pagination import PageParams, paginate
from iotfin.db.statements import records_by_id
from iotfin.financing.tables import ExternalClaim, FinanceableAsset, FinancingAttempt, Lien
from iotfin.identity.tables import Tenant

# --- assets ----------------------------------------------------------------------------------------


# The statements of placing and releasing a lien, built once with bound parameters: a voucher's
# financing runs them in its transaction, where building each per call cost more than running it
# (py-spy, bench/receivables_ops.py).
_ASSET_ID = select(FinanceableAsset.id).where(FinanceableAsset.fingerprint == bindparam("fp"))
_INSERT_ASSET = insert(FinanceableAsset.__table__).returning(FinanceableAsset.__table__.c.id)
_ACTIVE_LIEN = select(Lien.id).where(Lien.asset_id == bindparam("asset_id"), Lien.status == "active")
_INSERT_LIEN = insert(Lien.__table__).returning(Lien.__table__.c.id)
_RELEASE_LIEN = update(Lien.__table__).where(Lien.__table__.c.id == bindparam("w_id")).values(
    status="released", released_at=bindparam("v_released_at"), release_reason=bindparam("v_reason"))
_INSERT_ATTEMPT = insert(FinancingAttempt.__table__)


def asset_id_of(conn: Connection, fingerprint: str) -> Any:
    """The id of the asset with this fingerprint (None: not registered)."""
    return conn.execute(_ASSET_ID, {"fp": fingerprint}).scalar()


def asset(conn: Connection, fingerprint: str) -> Row[Any] | None:
    """The asset's row (None: not registered)."""
    return conn.execute(select(FinanceableAsset).where(FinanceableAsset.fingerprint == fingerprint)).first()


def insert_asset(conn: Connection, *, kind: str, fingerprint: str, identity: Mapping[str, Any],
                 enterprise_id: int | None, document_id: int | None, created_at: datetime) -> int:
    """Register an asset; returns its id (a taken fingerprint raises IntegrityError)."""
    return int(conn.execute(_INSERT_ASSET, {
        "kind": kind, "fingerprint": fingerprint, "identity": identity, "enterprise_id": enterprise_id,
        "document_id": document_id, "created_at": created_at}).scalar_one())


# --- liens -----------------------------------------------------------------------------------------


def active_lien_id(conn: Connection, asset_id: int) -> Any:
    """The id of the asset's active lien (None: unencumbered)."""
    return conn.execute(_ACTIVE_LIEN, {"asset_id": asset_id}).scalar()


def lien(conn: Connection, lien_id: int) -> Row[Any] | None:
    """A lien with its asset's kind and fingerprint and its holder's tenant code, in `LienView` field order."""
    return conn.execute(
        select(Lien.id, Lien.asset_id, FinanceableAsset.kind, FinanceableAsset.fingerprint, Lien.tenant_id, Tenant.code,
               Lien.financing_ref, Lien.amount, Lien.status, Lien.registration_no, Lien.registered_at,
               Lien.notice_at, Lien.placed_at, Lien.released_at)
        .join(FinanceableAsset, FinanceableAsset.id == Lien.asset_id).join(Tenant, Tenant.id == Lien.tenant_id)
        .where(Lien.id == lien_id)
    ).first()


def liens_of_enterprise_page(conn: Connection, enterprise_id: int, page: PageParams,
                             status: str | None = None) -> tuple[Sequence[Any], str | None]:
    """One page of the liens on an enterprise's assets (every holder's), newest first, in `LienView`
    field order; and the next cursor."""
    query = (select(Lien.id, Lien.asset_id, FinanceableAsset.kind, FinanceableAsset.fingerprint, Lien.tenant_id,
                    Tenant.code, Lien.financing_ref, Lien.amount, Lien.status, Lien.registration_no,
                    Lien.registered_at, Lien.notice_at, Lien.placed_at, Lien.released_at)
             .join(FinanceableAsset, FinanceableAsset.id == Lien.asset_id).join(Tenant, Tenant.id == Lien.tenant_id)
             .where(FinanceableAsset.enterprise_id == enterprise_id))
    if status is not None:
        query = query.where(Lien.status == status)
    return paginate(conn, query, Lien.id, page, descending=True)


def lien_ids_of(conn: Connection, asset_id: int) -> ScalarResult[Any]:
    """The ids of the asset's liens, newest first."""
    return conn.execute(select(Lien.id).where(Lien.asset_id == asset_id).order_by(Lien.id.desc())).scalars()


def insert_lien(conn: Connection, *, asset_id: int, tenant_id: int, financing_ref: str, amount: Decimal,
                status: str, registration_no: str | None, registered_at: datetime | None,
                notice_at: datetime | None, placed_at: datetime) -> Any:
    """Place a lien; returns its id (a second active lien on the asset raises IntegrityError on PostgreSQL)."""
    return conn.execute(_INSERT_LIEN, {
        "asset_id": asset_id, "tenant_id": tenant_id, "financing_ref": financing_ref, "amount": amount,
        "status": status, "registration_no": registration_no, "registered_at": registered_at,
        "notice_at": notice_at, "placed_at": placed_at}).scalar_one()


def release_lien(conn: Connection, lien_id: int, *, released_at: datetime, reason: str) -> None:
    prepared.execute(conn, _RELEASE_LIEN, {"w_id": lien_id, "v_released_at": released_at, "v_reason": reason})


# --- attempts and outside claims -------------------------------------------------------------------


def insert_attempt(conn: Connection, *, asset_id: int, tenant_id: int, financing_ref: str, amount: Decimal,
                   outcome: str, lien_id: int | None, attempted_at: datetime) -> None:
    """Record an attempt to finance an asset (placed or refused)."""
    conn.execute(_INSERT_ATTEMPT, {"asset_id": asset_id, "tenant_id": tenant_id, "financing_ref": financing_ref,
                                   "amount": amount, "outcome": outcome, "lien_id": lien_id,
                                   "attempted_at": attempted_at})


def attempts_of(conn: Connection, asset_id: int) -> Sequence[Row[Any]]:
    """Every attempt to finance the asset, in order: tenant code, ref, amount, outcome, lien id, time."""
    return conn.execute(
        select(Tenant.code, FinancingAttempt.financing_ref, FinancingAttempt.amount, FinancingAttempt.outcome,
               FinancingAttempt.lien_id, FinancingAttempt.attempted_at)
        .join(Tenant, Tenant.id == FinancingAttempt.tenant_id)
        .where(FinancingAttempt.asset_id == asset_id).order_by(FinancingAttempt.id)).all()


def insert_external_claim(conn: Connection, *, asset_id: int, claimant: str, amount: Decimal,
                          registration_no: str | None, registered_at: datetime | None,
                          notice_at: datetime | None, recorded_at: datetime) -> Any:
    """Record an outside claim on an asset; returns its id."""
    return conn.execute(insert(ExternalClaim).values(
        asset_id=asset_id, claimant=claimant, amount=amount, registration_no=registration_no,
        registered_at=registered_at, notice_at=notice_at, recorded_at=recorded_at
    ).returning(ExternalClaim.id)).scalar_one()


def external_claims_of(conn: Connection, asset_id: int) -> Sequence[Row[Any]]:
    """The outside claims on an asset, in order."""
    return conn.execute(select(ExternalClaim).where(ExternalClaim.asset_id == asset_id)
                        .order_by(ExternalClaim.id)).all()


# --- tenants ---------------------------------------------------------------------------------------


def tenant_id_of(conn: Connection, code: str) -> Any:
    """The id of the tenant with this code (None: no such tenant)."""
    return conn.execute(select(Tenant.id).where(Tenant.code == code)).scalar()


# --- the ledger's loader ---------------------------------------------------------------------------


def lien_records(conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """Liens as the ledger anchors, proves and audits them (its RecordLoader port, iotfin.ledger.ports):
    the lien row with its asset's fingerprint, so the commitment names the asset it encumbers."""
    return records_by_id(conn, _LIEN_RECORDS, Lien.id, record_ids)


_LIEN_RECORDS = (select(Lien.__table__, FinanceableAsset.fingerprint)
                 .join(FinanceableAsset, FinanceableAsset.id == Lien.asset_id).order_by(Lien.id))
