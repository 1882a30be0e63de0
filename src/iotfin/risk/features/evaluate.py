"""Catalogue features evaluated over inputs the caller hands in, rather than over the system of record:
the monitor's day-end trade checks are these features themselves (one definition, not a copy), run
over one day's documents and the monitor's own signal state. The composition root hands `evaluate`
to the monitor as its `TradeFeatures` port.

The inputs are the tables of `iotfin.risk.features.sql` (its docstring names them); any the caller
leaves out is passed empty, so a caller gives only what its features read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from iotfin.risk.features.catalogue import BY_NAME
from iotfin.risk.features.sql import feature_query
from iotfin.telemetry.daily import DAILY_SCHEMA

INPUT_SCHEMAS: dict[str, pa.Schema] = {
    "ent": pa.schema([("enterprise_id", pa.int64()), ("founded_day", pa.int32())]),
    "dev": pa.schema([("device_id", pa.int64()), ("enterprise_id", pa.int64()), ("device_type", pa.string()),
                      ("commodity", pa.string()), ("installed_day", pa.int32()), ("interval_s", pa.int64()),
                      ("primary_metric", pa.string())]),
    "daily": DAILY_SCHEMA,
    "docs": pa.schema([("document_id", pa.int64()), ("doc_type", pa.string()), ("seller_id", pa.int64()),
                       ("buyer_id", pa.int64()), ("order_id", pa.int64()), ("issued_day", pa.int32()),
                       ("due_day", pa.int32()), ("amount", pa.decimal128(18, 2)), ("vehicle_device_id", pa.int64())]),
    "rel": pa.schema([("supplier_id", pa.int64()), ("buyer_id", pa.int64()), ("core_enterprise_id", pa.int64()),
                      ("since_day", pa.int32())]),
    "vch": pa.schema([("voucher_id", pa.int64()), ("issuer_id", pa.int64()), ("supplier_id", pa.int64()),
                      ("total_fen", pa.int64()), ("issued_day", pa.int32()), ("matures_day", pa.int32()),
                      ("paid_day", pa.int32()), ("cancelled_day", pa.int32())]),
    "vrc": pa.schema([("voucher_id", pa.int64()), ("enterprise_id", pa.int64()), ("fen", pa.int64()),
                      ("day", pa.int32()), ("tier", pa.int32())]),
    "prices": pa.schema([("day", pa.int32()), ("commodity", pa.string()), ("price", pa.decimal128(18, 2))]),
    "haircuts": pa.schema([("commodity", pa.string()), ("haircut", pa.decimal128(4, 2))]),
}


def lookback_days(name: str) -> int:
    """How many days of data the feature `name` reads (its look-back)."""
    return BY_NAME[name].lookback_days


def evaluate(names: Sequence[str], as_of_day: int, inputs: Mapping[str, pa.Table]) -> list[tuple[Any, ...]]:
    """(enterprise_id, *the features `names`) as of day number `as_of_day`, one row per enterprise of
    `inputs["ent"]` in id order. One DuckDB thread: every floating-point sum runs in the same order."""
    query = feature_query(int(as_of_day), tuple(BY_NAME[n] for n in names))
    with duckdb.connect(config={"threads": 1}) as con:
        for name, schema in INPUT_SCHEMAS.items():
            con.register(name, inputs[name] if name in inputs else schema.empty_table())
        return con.sql(query).fetchall()
