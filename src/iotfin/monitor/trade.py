"""Trade documents against the device stream: fabricated trade, checked once a day.

The consistency checks are the risk features' own definitions, imported, not copied:
`c_invoices_without_delivery_90d` (an invoice whose order has no delivery note) and
`c_deliveries_without_gps_90d` (a delivery note naming a truck whose GPS shows no movement that
day). At the end of local day D the monitor runs the feature SQL (`iotfin.risk.features.sql`, DuckDB)
with as-of D over only that day's documents, so each count is that day's new findings:

- the invoices and delivery notes issued on D;
- the delivery notes issued before D of the orders invoiced on D, with their vehicle cleared: they
  are evidence that the order was delivered, not deliveries of D to check against D's GPS;
- as the feature's `daily` rollup, one `speed_kmh` row per vehicle heard on D with its top speed,
  from the monitor's signal state (`SignalEngine.gps_daily`) — no re-scan of telemetry.

The other inputs the feature SQL names are passed empty: only the two checks are selected.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, and_, select

from iotfin.risk.features.catalogue import BY_NAME
from iotfin.risk.features.daily import DAILY_SCHEMA
from iotfin.risk.features.sql import feature_query

INVOICE_CHECK = BY_NAME["c_invoices_without_delivery_90d"]
GPS_CHECK = BY_NAME["c_deliveries_without_gps_90d"]
CHECKS = (INVOICE_CHECK, GPS_CHECK)
_EPOCH = date(1970, 1, 1)

DOCS_SCHEMA = pa.schema([
    ("document_id", pa.int64()), ("doc_type", pa.string()), ("seller_id", pa.int64()), ("buyer_id", pa.int64()),
    ("order_id", pa.int64()), ("issued_day", pa.int32()), ("due_day", pa.int32()), ("amount", pa.decimal128(18, 2)),
    ("vehicle_device_id", pa.int64())])
_EMPTY = {
    "dev": pa.schema([("device_id", pa.int64()), ("enterprise_id", pa.int64()), ("device_type", pa.string()),
                      ("commodity", pa.string()), ("installed_day", pa.int32()), ("interval_s", pa.int64()),
                      ("primary_metric", pa.string())]),
    "rel": pa.schema([("supplier_id", pa.int64()), ("buyer_id", pa.int64()), ("core_enterprise_id", pa.int64()),
                      ("since_day", pa.int32())]),
    "prices": pa.schema([("day", pa.int32()), ("commodity", pa.string()), ("price", pa.decimal128(18, 2))]),
    "haircuts": pa.schema([("commodity", pa.string()), ("haircut", pa.decimal128(4, 2))]),
}


def day_number(d: date) -> int:
    return (d - _EPOCH).days


def documents_of_day(engine: Engine, day: int) -> pa.Table:
    """From the system of record: invoices and delivery notes issued on local day `day`, and the earlier
    delivery notes of the orders invoiced that day (vehicle cleared, see the module docstring)."""
    from iotfin.db.models import TradeDocument

    t = TradeDocument.__table__
    on = _EPOCH + timedelta(days=day)
    cols = (t.c.id, t.c.doc_type, t.c.seller_id, t.c.buyer_id, t.c.order_id, t.c.issued_on, t.c.due_on, t.c.amount,
            t.c.vehicle_device_id)
    with engine.connect() as conn:
        today = conn.execute(select(*cols).where(and_(t.c.issued_on == on,
                                                      t.c.doc_type.in_(("invoice", "delivery_note"))))).all()
        orders = sorted({r.order_id for r in today if r.doc_type == "invoice" and r.order_id is not None})
        earlier = []
        for i in range(0, len(orders), 500):  # bounded IN lists
            earlier += conn.execute(select(*cols).where(and_(
                t.c.doc_type == "delivery_note", t.c.issued_on < on, t.c.order_id.in_(orders[i:i + 500])))).all()
    rows = [tuple(r) for r in today] + [(*tuple(r)[:8], None) for r in earlier]
    return documents_table(rows)


def documents_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Rows of (id, doc_type, seller, buyer, order, issued date|day, due date|day|None, amount, vehicle)."""
    def day(v: Any) -> int | None:
        return None if v is None else (v if isinstance(v, int) else day_number(v))

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(DOCS_SCHEMA)
    data = [list(c) for c in columns]
    data[5] = [day(v) for v in data[5]]
    data[6] = [day(v) for v in data[6]]
    return pa.table(data, schema=DOCS_SCHEMA)


def findings(docs: pa.Table, gps_daily: pa.Table, day: int) -> list[dict[str, Any]]:
    """Per seller with a finding on `day`: {enterprise_id, invoices_without_delivery, deliveries_without_gps}."""
    if docs.num_rows == 0:
        return []
    sellers = pc.unique(docs["seller_id"]).cast(pa.int64())
    ent = pa.table({"enterprise_id": sellers, "founded_day": pa.array([-1_000_000] * len(sellers), pa.int32())})
    inputs = {"ent": ent, "docs": docs.cast(DOCS_SCHEMA), "daily": gps_daily.cast(DAILY_SCHEMA)}
    inputs |= {name: schema.empty_table() for name, schema in _EMPTY.items()}
    with duckdb.connect(config={"threads": 1}) as con:
        for name, table in inputs.items():
            con.register(name, table)
        result = con.sql(feature_query(int(day), CHECKS)).fetchall()
    return [{"enterprise_id": int(e), INVOICE_CHECK.name: int(a), GPS_CHECK.name: int(b)}
            for e, a, b in result if (a or 0) > 0 or (b or 0) > 0]
