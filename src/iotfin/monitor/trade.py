"""Trade documents against the device stream: fabricated trade, checked once a day.

The consistency checks are the risk features' own definitions, evaluated by risk through the
`TradeFeatures` port (`iotfin.monitor.ports`), not copied: `c_invoices_without_delivery_90d` (an
invoice whose order has no delivery note) and `c_deliveries_without_gps_90d` (a delivery note naming
a truck whose GPS shows no movement that day). At the end of local day D the monitor has the feature
SQL run with as-of D over only that day's documents, so each count is that day's new findings:

- the invoices and delivery notes issued on D;
- the delivery notes issued before D of the orders invoiced on D, with their vehicle cleared: they
  are evidence that the order was delivered, not deliveries of D to check against D's GPS;
- as the feature's `daily` rollup (`iotfin.telemetry.daily.DAILY_SCHEMA`), one `speed_kmh` row per
  vehicle heard on D with its top speed, from the monitor's signal state (`SignalEngine.gps_daily`)
  — no re-scan of telemetry. The top speed there is the larger of the reported speeds and the mean
  speeds between consecutive fixes (a lower bound of the true top speed): reported every 10 minutes,
  speed alone misses short drives.

The other inputs the feature SQL names are left out (the port passes them empty): only the two
checks are selected. The documents come from the supply chain through the `TradeDocuments` port.

**Energy vs. reported output.** `OutputEnergy` keeps, per enterprise, the last 120 days' metered
energy (from the meters' cumulative counters at each day end) and invoiced sales (from the day's
invoices), and evaluates the risk feature `c_sales_per_kwh_change` on them each day end — sales per
kWh of the last 30 days against the 90 days before: output reported without the energy to make it.
It is handed to the feature SQL as that feature's own inputs (one `power_kw` daily row per
enterprise-day, one invoice row per enterprise-day carrying the day's sales). It needs the feature's
whole look-back (120 days): before that the feature is NULL and nothing is signalled.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from iotfin.monitor.ports import TradeDocuments, TradeFeatures
from iotfin.telemetry.daily import DAILY_SCHEMA

# The risk features the checks are (names in risk's catalogue).
INVOICE_CHECK = "c_invoices_without_delivery_90d"
GPS_CHECK = "c_deliveries_without_gps_90d"
CHECKS = (INVOICE_CHECK, GPS_CHECK)
OUTPUT_CHECK = "c_sales_per_kwh_change"
_EPOCH = date(1970, 1, 1)

DOCS_SCHEMA = pa.schema([
    ("document_id", pa.int64()), ("doc_type", pa.string()), ("seller_id", pa.int64()), ("buyer_id", pa.int64()),
    ("order_id", pa.int64()), ("issued_day", pa.int32()), ("due_day", pa.int32()), ("amount", pa.decimal128(18, 2)),
    ("vehicle_device_id", pa.int64())])


def day_number(d: date) -> int:
    return (d - _EPOCH).days


def documents_of_day(engine: Engine, day: int, documents: TradeDocuments) -> pa.Table:
    """From the system of record: invoices and delivery notes issued on local day `day`, and the earlier
    delivery notes of the orders invoiced that day (vehicle cleared, see the module docstring)."""
    on = _EPOCH + timedelta(days=day)
    with engine.connect() as conn:
        today = documents.issued_on(conn, on, ("invoice", "delivery_note"))
        orders = sorted({r[4] for r in today if r[1] == "invoice" and r[4] is not None})
        earlier = documents.delivery_notes_before(conn, on, orders) if orders else []
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


def findings(docs: pa.Table, gps_daily: pa.Table, day: int, features: TradeFeatures) -> list[dict[str, Any]]:
    """Per seller with a finding on `day`: {enterprise_id, invoices_without_delivery, deliveries_without_gps}."""
    if docs.num_rows == 0:
        return []
    sellers = pc.unique(docs["seller_id"]).cast(pa.int64())
    ent = pa.table({"enterprise_id": sellers, "founded_day": pa.array([-1_000_000] * len(sellers), pa.int32())})
    inputs = {"ent": ent, "docs": docs.cast(DOCS_SCHEMA), "daily": gps_daily.cast(DAILY_SCHEMA)}
    result = features.evaluate(CHECKS, int(day), inputs)
    return [{"enterprise_id": int(e), INVOICE_CHECK: int(a), GPS_CHECK: int(b)}
            for e, a, b in result if (a or 0) > 0 or (b or 0) > 0]


class OutputEnergy:
    """Energy vs. reported output per enterprise (see the module docstring): two rings of the feature's
    look-back in days per enterprise — kWh (float32) and invoiced sales in fen (int64) — and the
    counter sum at the last day end."""

    def __init__(self, enterprises: int, features: TradeFeatures):
        self.features = features
        self.days = days = features.lookback_days(OUTPUT_CHECK)
        self.kwh = np.zeros((enterprises, days), np.float32)
        self.sales_fen = np.zeros((enterprises, days), np.int64)
        self.day_of = np.full(days, -1, np.int32)  # the day each ring column holds
        self.counter = np.full(enterprises, np.nan)  # Σ meters' counters at the last day end
        self.level = np.zeros(enterprises, np.int8)  # the feature in 0.25 steps, last signalled

    def state_bytes(self) -> int:
        return sum(a.nbytes for a in (self.kwh, self.sales_fen, self.day_of, self.counter, self.level))

    def close_day(self, day: int, counters: np.ndarray, invoices: pa.Table) -> dict[int, float]:
        """Book day `day` (meters' counter sum per enterprise now, the day's invoices) and return the
        feature per enterprise where it is defined."""
        col = day % self.days
        self.kwh[:, col] = 0
        self.sales_fen[:, col] = 0
        self.day_of[col] = day
        have = ~np.isnan(counters) & ~np.isnan(self.counter)
        # A counter that went backwards (replayed data) says nothing about the day's energy.
        self.kwh[have, col] = np.maximum(counters[have] - self.counter[have], 0)
        self.counter = np.where(np.isnan(counters), self.counter, counters)
        inv = invoices.filter(pc.equal(invoices["doc_type"], "invoice")) if invoices.num_rows else invoices
        if inv.num_rows:
            sellers = inv["seller_id"].to_numpy()
            fen = np.array([int(a * 100) for a in inv["amount"].to_pylist()], np.int64)
            ok = (sellers >= 0) & (sellers < self.kwh.shape[0])
            np.add.at(self.sales_fen[:, col], sellers[ok], fen[ok])
        return self.feature(day)

    def feature(self, day: int) -> dict[int, float]:
        held = np.flatnonzero(self.day_of >= 0)
        if held.size == 0 or int(self.day_of[held].min()) > day - self.days + 1:
            return {}  # fewer days booked than the feature's look-back: it is not defined yet
        ents = np.flatnonzero((self.kwh[:, held] > 0).any(axis=1) & (self.sales_fen[:, held] > 0).any(axis=1))
        if ents.size == 0:
            return {}
        e, c = np.repeat(ents, held.size), np.tile(held, ents.size)
        days = self.day_of[c]
        inputs = {
            "ent": pa.table({"enterprise_id": ents.astype(np.int64), "founded_day": np.full(ents.size, -1_000_000, np.int32)}),
            # one pseudo-device per enterprise carrying its metered energy as the day's mean power
            "dev": pa.table({"device_id": -ents.astype(np.int64) - 1, "enterprise_id": ents.astype(np.int64),
                             "device_type": pa.array(["electricity_meter"] * ents.size),
                             "commodity": pa.array([None] * ents.size, pa.string()),
                             "installed_day": np.full(ents.size, -1_000_000, np.int32),
                             "interval_s": np.full(ents.size, 900, np.int64),
                             "primary_metric": pa.array(["power_kw"] * ents.size)}),
            "daily": pa.table({"device_id": -e.astype(np.int64) - 1, "metric": pa.array(["power_kw"] * e.size),
                               "lday": days, "n": np.ones(e.size, np.int64),
                               "total": self.kwh[e, c].astype(np.float64) / 24.0,
                               "vmax": self.kwh[e, c].astype(np.float64) / 24.0, "last_ts": np.zeros(e.size, np.int64),
                               "last_v": self.kwh[e, c].astype(np.float64) / 24.0}, schema=DAILY_SCHEMA),
        }
        sold = self.sales_fen[e, c] > 0
        amounts = [Decimal(int(f)) / 100 for f in self.sales_fen[e, c][sold]]
        inputs["docs"] = pa.table({
            "document_id": np.arange(int(sold.sum()), dtype=np.int64), "doc_type": pa.array(["invoice"] * int(sold.sum())),
            "seller_id": e[sold].astype(np.int64), "buyer_id": np.zeros(int(sold.sum()), np.int64),
            "order_id": np.arange(int(sold.sum()), dtype=np.int64), "issued_day": days[sold].astype(np.int32),
            "due_day": days[sold].astype(np.int32), "amount": pa.array(amounts, pa.decimal128(18, 2)),
            "vehicle_device_id": pa.array([None] * int(sold.sum()), pa.int64())}, schema=DOCS_SCHEMA)
        rows = self.features.evaluate((OUTPUT_CHECK,), int(day), inputs)
        return {int(ent): float(v) for ent, v in rows if v is not None}
