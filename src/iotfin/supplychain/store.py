"""Bulk persistence for supply-chain records (used by imports and the simulator feed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

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
    """Insert rows into one of the supply-chain tables, in chunks to bound memory."""
    model = _TABLES[table]
    for start in range(0, len(rows), chunk):
        conn.execute(insert(model), list(rows[start:start + chunk]))
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
    table = TradeDocument.__table__
    query = select(table).order_by(table.c.id)
    if record_ids is not None:
        query = query.where(table.c.id.in_([int(rid) for rid in record_ids]))
    return {str(row["id"]): dict(row) for row in conn.execute(query).mappings()}
