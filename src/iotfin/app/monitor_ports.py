"""The monitor's ports (`iotfin.monitor.ports`) filled from the contexts that own what it checks with.

`RiskTradeFeatures` evaluates the risk catalogue's own features for the day-end trade checks;
`SupplyChainDocuments` reads the day's trade documents through the supply chain's store. The monitor
imports neither context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection

from iotfin.monitor.ports import DocumentRow
from iotfin.supplychain import store as supplychain_store


class RiskTradeFeatures:
    """The monitor's `TradeFeatures` port: `iotfin.risk.features.evaluate` (DuckDB, loaded on first use)."""

    def lookback_days(self, name: str) -> int:
        from iotfin.risk.features.evaluate import (
            lookback_days,  # lazy: the risk engine brings pandas and LightGBM
        )

        return lookback_days(name)

    def evaluate(self, names: Sequence[str], as_of_day: int, inputs: Mapping[str, pa.Table]) -> list[tuple[Any, ...]]:
        from iotfin.risk.features.evaluate import evaluate  # lazy: the risk engine brings pandas and LightGBM

        return evaluate(names, as_of_day, inputs)


class SupplyChainDocuments:
    """The monitor's `TradeDocuments` port over the supply chain's trade documents."""

    def issued_on(self, conn: Connection, day: date, doc_types: Sequence[str]) -> Sequence[DocumentRow]:
        return supplychain_store.documents_issued_on(conn, day, doc_types)

    def delivery_notes_before(self, conn: Connection, day: date, order_ids: Sequence[int]) -> Sequence[DocumentRow]:
        return supplychain_store.delivery_notes_before(conn, day, order_ids)
