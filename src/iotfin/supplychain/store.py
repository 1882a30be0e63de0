"""The supply chain's queries: bulk persistence for its records (imports and the simulator feed),
and the trade documents and relationships other contexts read through their ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, select

from iotfin.db.bulk import copy_dicts
from iotfin.db.pagination import PageParams, paginate
from iotfin.db.statements import records_by_id
from iotfin.identity.tables import Enterprise, Site, Tenant
from iotfin.supplychain.tables import ChainMember, Relationship, SupplyChain, TradeDocument

_TABLES = {
    "tenants": Tenant,
    "enterprises": Enterprise,
    "sites": Site,
    "supply_chains": SupplyChain,
    "chain_members": ChainMember,
    "relationships": Relationship,
    "trade_documents": TradeDocument,
}


def insert_rows(conn: Connection, table: str, rows: Sequence[dict[str, Any]], chunk: int = 20_000) -> int:
    """Insert rows into one of the supply-chain tables, in chunks to bound memory (PostgreSQL: binary
    COPY; the rows carry their ids, so the caller advances the sequences: iotfin.db.bulk)."""
    model = _TABLES[table]
    for start in range(0, len(rows), chunk):
        copy_dicts(conn, model.__table__, rows[start:start + chunk])
    return len(rows)


def counts(conn: Connection) -> dict[str, int]:
    return {name: conn.execute(select(func.count()).select_from(model)).scalar_one() for name, model in _TABLES.items()}


def documents_by_type(conn: Connection) -> dict[str, dict[str, Any]]:
    """Count and total amount per trade-document type; totals stay Decimal."""
    rows = conn.execute(
        select(TradeDocument.doc_type, func.count(), func.sum(TradeDocument.amount)).group_by(TradeDocument.doc_type)
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for doc_type, n, total in rows:
        # SUM keeps the Money column type, so `total` comes back as an exact Decimal on both backends.
        out[doc_type] = {"count": int(n), "amount": total}
    return out


def enterprises_by_sector(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(select(Enterprise.sector, func.count()).group_by(Enterprise.sector)).all())


# Built once: executing a constant statement skips rebuilding and re-keying it per decision.
_CORE_OF = (select(SupplyChain.core_enterprise_id).join(ChainMember, ChainMember.chain_id == SupplyChain.id)
            .where(ChainMember.enterprise_id == bindparam("eid")).order_by(SupplyChain.id).limit(1))


def core_enterprise_of(conn: Connection, enterprise_id: int) -> int | None:
    """The core enterprise of the (first) supply chain the enterprise belongs to, if any."""
    return conn.execute(_CORE_OF, {"eid": enterprise_id}).scalar()


def trade_document_records(conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """Trade documents as the ledger anchors, proves and audits them (its RecordLoader port,
    iotfin.ledger.ports)."""
    return records_by_id(conn, _DOCUMENTS, TradeDocument.__table__.c.id, record_ids)


_DOCUMENTS = select(TradeDocument.__table__).order_by(TradeDocument.__table__.c.id)


# --- what other contexts read (through their ports) ---------------------------------------------


def trade_documents_of(conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[Row[Any]]:
    """(id, doc_type, seller_id, buyer_id, order_id, issued_on, due_on, amount, vehicle_device_id) of the
    documents the enterprises sold or bought under; `enterprise_ids` None: all (risk's features)."""
    t = TradeDocument.__table__
    q = select(t.c.id, t.c.doc_type, t.c.seller_id, t.c.buyer_id, t.c.order_id, t.c.issued_on, t.c.due_on,
               t.c.amount, t.c.vehicle_device_id)
    ids = enterprise_ids
    return conn.execute(q if ids is None else q.where(t.c.seller_id.in_(ids) | t.c.buyer_id.in_(ids))).all()


def trade_documents_page(conn: Connection, enterprise_id: int, page: PageParams, doc_type: str | None = None
                         ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the documents the enterprise sold or bought under, newest first (the open API's
    `/enterprises/{id}/trade-documents`); and the next cursor."""
    t = TradeDocument.__table__
    query = select(t.c.id, t.c.doc_type, t.c.seller_id, t.c.buyer_id, t.c.order_id, t.c.issued_on, t.c.due_on,
                   t.c.amount, t.c.currency, t.c.commodity, t.c.quantity, t.c.invoice_code, t.c.invoice_number,
                   ).where((t.c.seller_id == enterprise_id) | (t.c.buyer_id == enterprise_id))
    if doc_type is not None:
        query = query.where(t.c.doc_type == doc_type)
    rows, cursor = paginate(conn, query, t.c.id, page, descending=True)
    return [dict(r._mapping) for r in rows], cursor


def relationships_of(conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[Row[Any]]:
    """(supplier_id, buyer_id, core_enterprise_id, since) of the enterprises' trade relationships, as
    supplier or buyer; `enterprise_ids` None: all (risk's features)."""
    r = Relationship.__table__
    q = select(r.c.supplier_id, r.c.buyer_id, r.c.core_enterprise_id, r.c.since)
    ids = enterprise_ids
    return conn.execute(q if ids is None else q.where(r.c.supplier_id.in_(ids) | r.c.buyer_id.in_(ids))).all()


_DOCUMENT_COLUMNS = (TradeDocument.id, TradeDocument.doc_type, TradeDocument.seller_id, TradeDocument.buyer_id,
                     TradeDocument.order_id, TradeDocument.issued_on, TradeDocument.due_on, TradeDocument.amount,
                     TradeDocument.vehicle_device_id)
_IN_LIST = 500  # bounded IN lists


def documents_issued_on(conn: Connection, day: date, doc_types: Sequence[str]) -> Sequence[Row[Any]]:
    """The documents of these types issued on `day` (the monitor's day-end trade checks)."""
    t = TradeDocument
    return conn.execute(select(*_DOCUMENT_COLUMNS).where(and_(t.issued_on == day, t.doc_type.in_(doc_types)))).all()


def delivery_notes_before(conn: Connection, day: date, order_ids: Sequence[int]) -> list[Row[Any]]:
    """The delivery notes of these orders issued before `day`, queried in bounded IN lists."""
    t, ids = TradeDocument, list(order_ids)
    out: list[Row[Any]] = []
    for i in range(0, len(ids), _IN_LIST):
        out += conn.execute(select(*_DOCUMENT_COLUMNS).where(and_(
            t.doc_type == "delivery_note", t.issued_on < day, t.order_id.in_(ids[i:i + _IN_LIST])))).all()
    return out
