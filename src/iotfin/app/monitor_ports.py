"""The monitor's ports (`iotfin.monitor.ports`) filled from the contexts that own what it checks with.

`RiskTradeFeatures` evaluates the risk catalogue's own features for the day-end trade checks;
`SupplyChainDocuments` reads the day's trade documents. The monitor imports neither context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, and_, select

from iotfin.monitor.ports import DocumentRow
from iotfin.supplychain.tables import TradeDocument

_IN_LIST = 500  # bounded IN lists


class RiskTradeFeatures:
    """The monitor's `TradeFeatures` port: `iotfin.risk.features.evaluate` (DuckDB, loaded on first use)."""

    def lookback_days(self, name: str) -> int:
        from iotfin.risk.features.evaluate import lookback_days

        return lookback_days(name)

    def evaluate(self, names: Sequence[str], as_of_day: int, inputs: Mapping[str, pa.Table]) -> list[tuple[Any, ...]]:
        from iotfin.risk.features.evaluate import evaluate

        return evaluate(names, as_of_day, inputs)


class SupplyChainDocuments:
    """The monitor's `TradeDocuments` port over the supply chain's trade documents."""

    _COLUMNS = (TradeDocument.id, TradeDocument.doc_type, TradeDocument.seller_id, TradeDocument.buyer_id,
                TradeDocument.order_id, TradeDocument.issued_on, TradeDocument.due_on, TradeDocument.amount,
                TradeDocument.vehicle_device_id)

    def issued_on(self, conn: Connection, day: date, doc_types: Sequence[str]) -> Sequence[DocumentRow]:
        t = TradeDocument
        return conn.execute(select(*self._COLUMNS).where(and_(t.issued_on == day, t.doc_type.in_(doc_types)))).all()

    def delivery_notes_before(self, conn: Connection, day: date, order_ids: Sequence[int]) -> Sequence[DocumentRow]:
        t, ids = TradeDocument, list(order_ids)
        out: list[DocumentRow] = []
        for i in range(0, len(ids), _IN_LIST):
            out += conn.execute(select(*self._COLUMNS).where(and_(
                t.doc_type == "delivery_note", t.issued_on < day, t.order_id.in_(ids[i:i + _IN_LIST])))).all()
        return out
