"""What monitoring needs from other contexts, as Protocols; the composition root plugs them in.

The day-end trade checks (`iotfin.monitor.trade`) are risk features, evaluated by risk
(`TradeFeatures`: one definition, not a copy), over the day's trade documents the supply chain keeps
(`TradeDocuments`). The monitor never imports either context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Protocol

import pyarrow as pa
from sqlalchemy import Connection

DocumentRow = tuple[Any, ...]
"""(id, doc_type, seller_id, buyer_id, order_id, issued_on, due_on, amount, vehicle_device_id)"""


class TradeFeatures(Protocol):
    def lookback_days(self, name: str) -> int:
        """How many days of data the risk feature `name` reads."""
        ...

    def evaluate(self, names: Sequence[str], as_of_day: int, inputs: Mapping[str, pa.Table]) -> list[tuple[Any, ...]]:
        """(enterprise_id, *the named features) as of day number `as_of_day` over the given input tables of
        the feature SQL (those not given are empty): one row per enterprise of `inputs["ent"]`, in id order."""
        ...


class TradeDocuments(Protocol):
    def issued_on(self, conn: Connection, day: date, doc_types: Sequence[str]) -> Sequence[DocumentRow]:
        """The documents of these types issued on `day`."""
        ...

    def delivery_notes_before(self, conn: Connection, day: date, order_ids: Sequence[int]) -> Sequence[DocumentRow]:
        """The delivery notes of these orders issued before `day`."""
        ...
