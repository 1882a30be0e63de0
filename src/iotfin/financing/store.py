"""Queries of the financing registry (its tables are in `iotfin.financing.tables`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from iotfin.financing.tables import FinanceableAsset, Lien


def lien_records(conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """Liens as the ledger anchors, proves and audits them (its RecordLoader port, iotfin.ledger.ports):
    the lien row with its asset's fingerprint, so the commitment names the asset it encumbers."""
    query = (select(Lien.__table__, FinanceableAsset.fingerprint)
             .join(FinanceableAsset, FinanceableAsset.id == Lien.asset_id).order_by(Lien.id))
    if record_ids is not None:
        query = query.where(Lien.id.in_([int(rid) for rid in record_ids]))
    return {str(row["id"]): dict(row) for row in conn.execute(query).mappings()}
