"""Feature computation: batch (`compute_features`), online (`features_for`) and training sets, all
through the one query of `iotfin.risk.features.sql`, consent-scoped for the requesting lender.

The platform evaluates the query over the system of record (exported to Arrow) and the daily
telemetry aggregates on DuckDB; what leaves for a lender is only the features whose every source
scope it holds a valid grant for, for the features' data period. The others are NULL and named in
`withheld`. Each consent decision is written to the enterprise's access log.

A `FeatureEngine` is given what it reads, not a workspace: the database (the enterprise registry of
the identity kernel), the telemetry store, a data folder (rollups, market prices), and the ports of
`iotfin.risk.ports` — consent, and the device and supply-chain rows. The composition root builds one
per workspace (`Workspace.features`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Engine, select

from iotfin.core.errors import NotFound, ValidationError
from iotfin.identity.tables import Enterprise
from iotfin.risk.features.catalogue import (
    ALL_TELEMETRY,
    CATALOGUE,
    HAIRCUT,
    PRIMARY_METRIC,
    ROLLUP_METRICS,
    Feature,
)
from iotfin.risk.features.sql import feature_query
from iotfin.risk.ports import Consent, ConsentDecision, ConsentRead, FeatureSources
from iotfin.telemetry import daily
from iotfin.telemetry.store import TelemetryStore

EPOCH = date(1970, 1, 1)
MAX_LOOKBACK = max(f.lookback_days for f in CATALOGUE)
DEFAULT_PURPOSE = "credit_assessment"
SNAPSHOT_TTL_S = 300.0
_ARROW = {"double": pa.float64(), "decimal": pa.decimal128(18, 2), "integer": pa.int64(), "string": pa.string()}


def day_number(d: date) -> int:
    return (d - EPOCH).days


def _check_as_of(as_of: Any) -> date:
    if isinstance(as_of, datetime) or not isinstance(as_of, date):
        raise ValidationError(f"as_of must be a business date (datetime.date), not {type(as_of).__name__}")
    return as_of


def load_commodity_prices(features: FeatureEngine, prices: pa.Table) -> int:
    """Store daily commodity prices (day, commodity, price in yuan as decimal) for collateral valuation."""
    missing = {"day", "commodity", "price"} - set(prices.column_names)
    if missing:
        raise ValidationError(f"commodity prices need columns {sorted(missing)}")
    table = prices.select(["day", "commodity", "price"]).cast(
        pa.schema([("day", pa.date32()), ("commodity", pa.string()), ("price", pa.decimal128(18, 2))]))
    if table.num_rows and (pc.min(table["price"]).as_py() or 0) < 0:
        raise ValidationError("a commodity price is negative")
    path = features.market_dir / "commodity_prices.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return table.num_rows


class FeatureEngine:
    """Holds the inputs one workspace's features are computed from, its consent port, and the online
    snapshots."""

    def __init__(self, engine: Engine, telemetry: TelemetryStore, data_dir: Path, consent: Consent,
                 sources: FeatureSources):
        self.engine = engine
        self.telemetry = telemetry
        self.consent = consent
        self.sources = sources
        self.rollup_dir = Path(data_dir) / "features" / "daily"
        self.market_dir = Path(data_dir) / "market"
        self._scope_of_device = dict(consent.telemetry_scope_of_device)
        self._snapshots: dict[date, tuple[float, dict[int, dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        # The reads depend only on (as_of, device types, purpose): planned once per combination.
        self._reads = functools.lru_cache(maxsize=4096)(self._plan_reads)

    # --- inputs ---------------------------------------------------------------------------------

    def _sor(self, enterprise_ids: Sequence[int] | None) -> dict[str, pa.Table]:
        """System-of-record inputs as Arrow, dates as day numbers, money as decimal(18,2). Every column
        typed explicitly: an empty table (no devices yet) must still export as strings, not nulls."""
        ids = None if enterprise_ids is None else list(enterprise_ids)
        e = Enterprise.__table__
        with self.engine.connect() as conn:  # one connection: the rows of one state of the records
            q = select(e.c.id, e.c.founded_on, e.c.registered_capital, e.c.sector, e.c.region_code, e.c.tax_grade,
                       e.c.litigation_count, e.c.key_person_changes)
            ents = conn.execute(q if ids is None else q.where(e.c.id.in_(ids))).all()
            devs = self.sources.devices(conn, ids)
            docs = self.sources.trade_documents(conn, ids)
            rels = self.sources.relationships(conn, ids)
            vouchers, receipts = self.sources.vouchers(conn, ids)

        def days(values: Iterable[date | None]) -> pa.Array:
            return pa.array([None if v is None else day_number(v) for v in values], pa.int32())

        ent = pa.table({
            "enterprise_id": pa.array([x[0] for x in ents], pa.int64()), "founded_day": days(x[1] for x in ents),
            "registered_capital": pa.array([x[2] for x in ents], pa.decimal128(18, 2)),
            "sector": pa.array([x[3] for x in ents], pa.string()),
            "region_code": pa.array([x[4] for x in ents], pa.string()),
            "tax_grade": pa.array([x[5] for x in ents], pa.string()),
            "litigation_count": pa.array([x[6] for x in ents], pa.int64()),
            "key_person_changes": pa.array([x[7] for x in ents], pa.int64())})
        dev = pa.table({
            "device_id": pa.array([x[0] for x in devs], pa.int64()),
            "enterprise_id": pa.array([x[1] for x in devs], pa.int64()),
            "device_type": pa.array([x[2] for x in devs], pa.string()), "commodity": pa.array([x[3] for x in devs], pa.string()),
            # A device without an installation date counts from when it was registered.
            "installed_day": days(x[4] or x[5].date() for x in devs),
            "interval_s": pa.array([x[6] for x in devs], pa.int64()),
            "primary_metric": pa.array([PRIMARY_METRIC.get(x[2]) for x in devs], pa.string())})
        doc = pa.table({
            "document_id": pa.array([x[0] for x in docs], pa.int64()), "doc_type": pa.array([x[1] for x in docs], pa.string()),
            "seller_id": pa.array([x[2] for x in docs], pa.int64()), "buyer_id": pa.array([x[3] for x in docs], pa.int64()),
            "order_id": pa.array([x[4] for x in docs], pa.int64()), "issued_day": days(x[5] for x in docs),
            "due_day": days(x[6] for x in docs), "amount": pa.array([x[7] for x in docs], pa.decimal128(18, 2)),
            "vehicle_device_id": pa.array([x[8] for x in docs], pa.int64())})
        rel = pa.table({
            "supplier_id": pa.array([x[0] for x in rels], pa.int64()), "buyer_id": pa.array([x[1] for x in rels], pa.int64()),
            "core_enterprise_id": pa.array([x[2] for x in rels], pa.int64()), "since_day": days(x[3] for x in rels)})
        vch = pa.table({
            "voucher_id": pa.array([x[0] for x in vouchers], pa.int64()),
            "issuer_id": pa.array([x[1] for x in vouchers], pa.int64()),
            "supplier_id": pa.array([x[2] for x in vouchers], pa.int64()),
            "total_fen": pa.array([x[3] for x in vouchers], pa.int64()), "issued_day": days(x[4] for x in vouchers),
            "matures_day": days(x[5] for x in vouchers), "paid_day": days(x[6] for x in vouchers),
            "cancelled_day": days(x[7] for x in vouchers)})
        vrc = pa.table({
            "voucher_id": pa.array([x[0] for x in receipts], pa.int64()),
            "enterprise_id": pa.array([x[1] for x in receipts], pa.int64()),
            "fen": pa.array([x[2] for x in receipts], pa.int64()), "day": days(x[3] for x in receipts),
            "tier": pa.array([x[4] for x in receipts], pa.int32())})
        return {"ent": ent, "dev": dev, "docs": doc, "rel": rel, "vch": vch, "vrc": vrc}

    def _market(self) -> dict[str, pa.Table]:
        path = self.market_dir / "commodity_prices.parquet"
        if path.exists():
            raw = pq.read_table(path)
            prices = pa.table({"day": days_of(raw["day"]), "commodity": raw["commodity"], "price": raw["price"]})
        else:
            prices = pa.table({"day": pa.array([], pa.int32()), "commodity": pa.array([], pa.string()),
                               "price": pa.array([], pa.decimal128(18, 2))})
        haircuts = pa.table({"commodity": list(HAIRCUT), "haircut": pa.array(list(HAIRCUT.values()), pa.decimal128(4, 2))})
        return {"prices": prices, "haircuts": haircuts}

    def refresh_telemetry(self) -> list[Path]:
        return daily.refresh(self.telemetry, self.rollup_dir, ROLLUP_METRICS)

    # --- computing ------------------------------------------------------------------------------

    def unscoped(self, as_of: date, enterprise_ids: Sequence[int] | None = None,
                 query: Callable[[int], str] = feature_query) -> tuple[pa.Table, pa.Table]:
        """(features of every enterprise as of the date before any consent scoping, devices table).
        `query` is the feature SQL for an as-of day number (tests pass the Spark reading of it)."""
        a = day_number(_check_as_of(as_of))
        inputs = self._sor(enterprise_ids) | self._market()
        rollups = self.refresh_telemetry()
        since = a - MAX_LOOKBACK
        wanted = [f for f in rollups if since - 1 <= day_number(date.fromisoformat(f.stem[4:])) <= a]
        # One thread: the aggregation order, and so every floating-point sum, is the same each run.
        with duckdb.connect(config={"threads": 1}) as con:
            telemetry = daily.combine(con, wanted, since, a)
            if enterprise_ids is not None:
                telemetry = telemetry.filter(pc.is_in(telemetry["device_id"], value_set=inputs["dev"]["device_id"]))
            for name, table in (inputs | {"daily": telemetry}).items():
                con.register(name, table)
            result = con.sql(query(a)).to_arrow_table()
        schema = pa.schema([("enterprise_id", pa.int64())] + [(f.name, _ARROW[f.kind]) for f in CATALOGUE])
        return result.cast(schema), inputs["dev"]

    # --- consent --------------------------------------------------------------------------------

    def telemetry_scopes(self, device_types: Iterable[str]) -> set[str]:
        """The telemetry scopes of an enterprise's device types: what its features read of its devices."""
        return {self._scope_of_device[t] for t in device_types if t in self._scope_of_device}

    def _plan_reads(self, as_of: date, device_types: frozenset[str],
                    purpose: str) -> tuple[tuple[tuple[str, int], ConsentRead], ...]:
        held = self.telemetry_scopes(device_types)
        reads: dict[tuple[str, int], ConsentRead] = {}
        for f in CATALOGUE:
            for scope in _expand(f, held):
                if scope.startswith("telemetry:") and scope not in held:
                    continue
                reads.setdefault((scope, f.lookback_days), ConsentRead(
                    scope, purpose, as_of - timedelta(days=f.lookback_days - 1), as_of))
        return tuple(reads.items())

    def reads_for(self, as_of: date, device_types: Iterable[str], purpose: str) -> dict[tuple[str, int], ConsentRead]:
        """The (scope, look-back) reads the catalogue makes of one enterprise, given its device types:
        telemetry scopes only for data it has devices for (no device, no data, nothing read)."""
        return dict(self._reads(as_of, frozenset(device_types), purpose))

    def withheld(self, as_of: date, device_types: Iterable[str],
                 decisions: Mapping[tuple[str, int], ConsentDecision]) -> dict[str, str]:
        """Feature -> reason, for every feature at least one of whose reads was refused."""
        held = self.telemetry_scopes(device_types)
        out: dict[str, str] = {}
        for f in CATALOGUE:
            for scope in _expand(f, held):
                d = decisions.get((scope, f.lookback_days))
                if d is not None and not d.allowed:
                    out[f.name] = f"{scope}: {d.reason}"
                    break
        return out

    def scope(self, table: pa.Table, dev: pa.Table, as_of: date, lender: str, purpose: str) -> pa.Table:
        """Consent-scope a feature table for `lender`: refused features NULL, named in `withheld`."""
        types: dict[int, set[str]] = {}
        for eid, t in zip(dev["enterprise_id"].to_pylist(), dev["device_type"].to_pylist(), strict=True):
            types.setdefault(eid, set()).add(t)
        ids = table["enterprise_id"].to_pylist()
        plans = {eid: self.reads_for(as_of, types.get(eid, ()), purpose) for eid in ids}
        decisions = self.consent.check_many(lender, ids, {eid: list(p.values()) for eid, p in plans.items()},
                                            detail=f"features as of {as_of.isoformat()}")
        withheld_rows: list[list[str]] = []
        masks: dict[str, list[bool]] = {f.name: [] for f in CATALOGUE}
        for eid in ids:
            keyed = dict(zip(plans[eid], decisions[eid], strict=True))
            refused = self.withheld(as_of, types.get(eid, ()), keyed)
            withheld_rows.append(sorted(refused))
            for f in CATALOGUE:
                masks[f.name].append(f.name in refused)
        columns = {"enterprise_id": table["enterprise_id"], "as_of": pa.array([as_of] * len(ids), pa.date32())}
        for f in CATALOGUE:
            col = table[f.name]
            columns[f.name] = pc.if_else(pa.array(masks[f.name], pa.bool_()), pa.scalar(None, col.type), col)
        columns["withheld"] = pa.array(withheld_rows, pa.list_(pa.string()))
        return pa.table(columns)

    # --- online ---------------------------------------------------------------------------------

    def snapshot_row(self, enterprise_id: int, as_of: date) -> tuple[dict[str, Any], set[str]]:
        """The unscoped features of one enterprise as of a date (and its device types), from the
        as-of snapshot: computed once per as-of date for every enterprise by the batch query, then
        served from memory for SNAPSHOT_TTL_S seconds (call `invalidate` after loading data)."""
        now = time.monotonic()
        with self._lock:
            cached = self._snapshots.get(as_of)
        if cached is None or now - cached[0] > SNAPSHOT_TTL_S:
            table, dev = self.unscoped(as_of)
            types: dict[int, set[str]] = {}
            for eid, t in zip(dev["enterprise_id"].to_pylist(), dev["device_type"].to_pylist(), strict=True):
                types.setdefault(eid, set()).add(t)
            rows = {r["enterprise_id"]: (r, types.get(r["enterprise_id"], set())) for r in table.to_pylist()}
            cached = (now, rows)
            with self._lock:
                self._snapshots[as_of] = cached
        try:
            return cached[1][enterprise_id]
        except KeyError:
            raise NotFound(f"no enterprise {enterprise_id} (founded by {as_of})") from None

    def invalidate(self) -> None:
        with self._lock:
            self._snapshots.clear()


def days_of(array: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.cast(pc.cast(array, pa.date32()), pa.int32())


def _expand(f: Feature, held: set[str]) -> list[str]:
    out: list[str] = []
    for s in f.scopes:
        out.extend(sorted(held) if s == ALL_TELEMETRY else [s])
    return out


def compute_features(features: FeatureEngine, as_of: date, lender: str, enterprise_ids: Sequence[int] | None = None,
                     purpose: str = DEFAULT_PURPOSE) -> pa.Table:
    """Features of every enterprise (or those listed) as of the end of business date `as_of`, for
    `lender`: one row per enterprise founded by then; features the lender may not see are NULL and
    listed in `withheld`. Every consent decision is logged."""
    features.consent.validate(lender, purpose)
    table, dev = features.unscoped(_check_as_of(as_of), enterprise_ids)
    return features.scope(table, dev, as_of, lender, purpose)


def features_for(features: FeatureEngine, enterprise_id: int, as_of: date, lender: str,
                 purpose: str = DEFAULT_PURPOSE) -> dict[str, Any]:
    """Online: one enterprise's features for a lender, with the same definitions as the batch.
    Returns {"enterprise_id", "as_of", "lender", "features": {name: value}, "withheld": {name: reason}}."""
    features.consent.validate(lender, purpose)
    row, types = features.snapshot_row(enterprise_id, _check_as_of(as_of))
    plan = features.reads_for(as_of, types, purpose)
    decided = features.consent.check_many(lender, [enterprise_id], {enterprise_id: list(plan.values())},
                                          detail=f"features as of {as_of.isoformat()}")[enterprise_id]
    decisions = dict(zip(plan, decided, strict=True))
    refused = features.withheld(as_of, types, decisions)
    return {"enterprise_id": enterprise_id, "as_of": as_of, "lender": lender,
            "features": {f.name: (None if f.name in refused else row[f.name]) for f in CATALOGUE},
            "withheld": refused}


def training_set(features: FeatureEngine, ds: Any, as_of_dates: Sequence[date], horizon_days: int,
                 lender: str | None = None, purpose: str = DEFAULT_PURPOSE) -> pa.Table:
    """Features at each as-of date labelled with the simulator's ground truth: `default` is 1 when
    the enterprise defaults within (as_of, as_of + horizon_days]. Enterprises that defaulted on or
    before the as-of date are left out (they are no longer applicants). Without `lender` the
    features are unscoped: the simulator's enterprises are synthetic and nobody's data; with one,
    exactly what that lender could see."""
    if horizon_days <= 0:
        raise ValidationError("horizon_days must be positive")
    if not as_of_dates:
        raise ValidationError("at least one as-of date is needed")
    defaults = ds.table("defaults")
    default_on = dict(zip(defaults["enterprise_id"].to_pylist(), defaults["default_on"].to_pylist(), strict=True))
    parts = []
    for as_of in as_of_dates:
        if lender is None:
            table, _ = features.unscoped(_check_as_of(as_of))
            table = table.append_column("as_of", pa.array([as_of] * table.num_rows, pa.date32()))
        else:
            table = compute_features(features, as_of, lender, purpose=purpose).drop_columns(["withheld"])
        ids = table["enterprise_id"].to_pylist()
        keep = [default_on.get(i) is None or default_on[i] > as_of for i in ids]
        label = [int(default_on.get(i) is not None and as_of < default_on[i] <= as_of + timedelta(days=horizon_days))
                 for i in ids]
        table = table.append_column("default", pa.array(label, pa.int8())).filter(pa.array(keep))
        parts.append(table.select(["enterprise_id", "as_of"] + [f.name for f in CATALOGUE] + ["default"]))
    return pa.concat_tables(parts)


