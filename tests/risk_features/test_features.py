"""Features on a simulated economy: point in time, consent-scoped, batch = online, consistency checks
against the simulator's injected incidents, training labels from its ground truth."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from sqlalchemy import insert, select

from iotfin.consent.model import GrantRequest
from iotfin.consent.store import access_t
from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.time import BUSINESS_TZ
from iotfin.risk.features import CATALOGUE, compute_features, features_for, training_set
from iotfin.risk.features.sql import feature_query
from iotfin.supplychain.tables import TradeDocument
from iotfin.telemetry.model import READING_SCHEMA
from tests.risk_features.conftest import LAST_DAY, NOW_MS, Economy

AS_OF = LAST_DAY - timedelta(days=10)
FEATURES = [f.name for f in CATALOGUE]
TELEMETRY_FEATURES = [f.name for f in CATALOGUE if any(s.startswith("telemetry") for s in f.scopes)]


def _grant(ws, enterprise_ids, scopes, recipient="bank-a", **kw):  # noqa: ANN001, ANN003, ANN202
    now = datetime.now(UTC)
    return ws.consent.grant_many([GrantRequest(
        enterprise_id=e, recipient=recipient, purpose="credit_assessment", scopes=tuple(scopes),
        window_start=kw.get("window_start", date(2025, 1, 1)), window_end=date(2027, 12, 31),
        expires_at=now + timedelta(days=300)) for e in enterprise_ids], now)


def test_a_reading_or_document_after_as_of_changes_nothing(economy: Economy, tmp_path: Path) -> None:
    ws = economy.workspace(tmp_path / "copy")
    eng = ws.features
    before, dev = eng.unscoped(AS_OF)
    meters = dev.filter(pa.compute.equal(dev["device_type"], "electricity_meter"))
    meter, owner = meters["device_id"][0].as_py(), meters["enterprise_id"][0].as_py()
    def local_noon(d: date) -> int:
        return int(datetime(d.year, d.month, d.day, 12, tzinfo=BUSINESS_TZ).timestamp() * 1000)
    future = pa.table({"device_id": [meter, meter], "key": ["power_kw", "power_kw"],
                       "ts": [local_noon(AS_OF + timedelta(days=1)), local_noon(AS_OF + timedelta(days=1)) + 1],
                       "value": [99_999.0, 99_999.0]}, schema=READING_SCHEMA)
    assert ws.ingest.ingest(future, transport="batch", now=NOW_MS).accepted == 2
    with ws.engine.begin() as conn:
        conn.execute(insert(TradeDocument), [{
            "doc_type": "invoice", "seller_id": owner, "buyer_id": 1 if owner != 1 else 2, "order_id": 10**9,
            "issued_on": AS_OF + timedelta(days=1), "due_on": AS_OF + timedelta(days=31), "amount": Decimal("9999999.00")}])
    after, _ = eng.unscoped(AS_OF)
    assert after.equals(before)

    # The same additions dated on the as-of day do change the features: the test can fail.
    present = future.set_column(2, "ts", pa.array([local_noon(AS_OF), local_noon(AS_OF) + 1], pa.int64()))
    assert ws.ingest.ingest(present, transport="batch", now=NOW_MS).accepted == 2
    with ws.engine.begin() as conn:
        conn.execute(insert(TradeDocument), [{
            "doc_type": "invoice", "seller_id": owner, "buyer_id": 1 if owner != 1 else 2, "order_id": 10**9 + 1,
            "issued_on": AS_OF, "due_on": AS_OF + timedelta(days=30), "amount": Decimal("9999999.00")}])
    changed, _ = eng.unscoped(AS_OF)
    row = {r["enterprise_id"]: r for r in changed.to_pylist()}[owner]
    old = {r["enterprise_id"]: r for r in before.to_pylist()}[owner]
    assert row["a_capacity_kw"] > old["a_capacity_kw"] + 90_000
    assert row["t_sales_90d"] == old["t_sales_90d"] + Decimal("9999999.00")
    assert row["c_invoices_without_delivery_90d"] == old["c_invoices_without_delivery_90d"] + 1
    ws.close()


def test_a_later_duplicate_of_a_reading_never_changes_the_rollup(economy: Economy, tmp_path: Path) -> None:
    ws = economy.workspace(tmp_path / "copy")
    eng = ws.features
    before, dev = eng.unscoped(AS_OF)
    meter = dev.filter(pa.compute.equal(dev["device_type"], "electricity_meter"))["device_id"][0].as_py()
    start = int(datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=BUSINESS_TZ).timestamp() * 1000)
    stored = ws.telemetry.series(meter, "power_kw", start, start + 86_400_000)
    replay = pa.table({"device_id": stored["device_id"], "key": stored["key"], "ts": stored["ts"],
                       "value": pa.array([50_000.0] * stored.num_rows)}, schema=READING_SCHEMA)
    ws.ingest.ingest(replay, transport="batch", now=NOW_MS)  # same (device, key, ts), other values: first wins
    after, _ = eng.unscoped(AS_OF)
    assert after.equals(before)
    ws.close()


def test_consent_scopes_what_a_lender_sees(ws) -> None:  # noqa: ANN001
    unscoped, _ = ws.features.unscoped(AS_OF)
    everything = {r["enterprise_id"]: r for r in unscoped.to_pylist()}
    ids = sorted(everything)
    _grant(ws, ids[:10], ["trade_documents", "business_registration"])
    _grant(ws, ids[:5], ["telemetry:energy", "telemetry:equipment", "telemetry:inventory", "telemetry:gps",
                         "telemetry:security", "telemetry:environment", "telemetry:livestock", "tax_rating",
                         "credit_report"])
    table = compute_features(ws.features, AS_OF, "bank-a")
    rows = {r["enterprise_id"]: r for r in table.to_pylist()}
    assert set(rows) == set(ids) and table["as_of"][0].as_py() == AS_OF
    for eid in ids[:5]:  # everything granted
        assert rows[eid]["withheld"] == [] and all(rows[eid][n] == everything[eid][n] for n in FEATURES)
    for eid in ids[5:10]:  # trade documents and registration only
        r = rows[eid]
        assert {"e_tax_grade", "e_litigation_count", "a_energy_kwh_30d", "c_sales_per_kwh_change"} <= set(r["withheld"])
        assert all(r[n] is None for n in r["withheld"])
        assert r["t_sales_90d"] == everything[eid]["t_sales_90d"] and r["e_age_years"] == everything[eid]["e_age_years"]
        # Telemetry features are NULL; only a truck check of an enterprise without trucks reads no
        # telemetry at all, and counts its (no) truck deliveries from the documents alone.
        visible = [n for n in TELEMETRY_FEATURES if r[n] is not None]
        assert visible == [] or (visible == ["c_deliveries_without_gps_90d"] and r[visible[0]] == 0)
    for eid in ids[10:]:  # no grant at all
        assert rows[eid]["withheld"] and all(rows[eid][n] is None for n in FEATURES)
        assert set(rows[eid]["withheld"]) >= {"e_age_years", "t_sales_90d", "a_energy_kwh_30d"}

    # A batch over some enterprises reads only their data and gives the same rows (sums over fewer
    # rows may be added in another order: equal to the last few bits).
    some = compute_features(ws.features, AS_OF, "bank-a", enterprise_ids=[ids[0], ids[7], ids[30]]).to_pylist()
    for r in some:
        full = rows[r["enterprise_id"]]
        assert r.keys() == full.keys()
        assert all(r[k] == full[k] or (isinstance(r[k], float) and math.isclose(r[k], full[k], rel_tol=1e-12))
                   for k in r), r["enterprise_id"]

    # Online: the same values as the batch, and a withdrawal takes effect on the next request.
    one = features_for(ws.features, ids[0], AS_OF, "bank-a")
    assert one["withheld"] == {} and one["features"] == {n: rows[ids[0]][n] for n in FEATURES}
    partial = features_for(ws.features, ids[7], AS_OF, "bank-a")
    assert partial["withheld"]["e_tax_grade"] == "tax_rating: scope_not_granted"
    assert {n: partial["features"][n] for n in FEATURES} == {n: rows[ids[7]][n] for n in FEATURES}
    energy_grant = [g for g in ws.consent.grants(ids[0], "bank-a") if "telemetry:energy" in g.scopes][0]
    ws.consent.withdraw(energy_grant.id, ids[0])
    after = features_for(ws.features, ids[0], AS_OF, "bank-a")
    assert after["withheld"]["a_energy_kwh_30d"] == "telemetry:energy: withdrawn"
    assert after["features"]["a_energy_kwh_30d"] is None and after["features"]["t_sales_90d"] is not None

    # Every decision reached the enterprise's access log, refusals included.
    log = ws.consent.access_log(ids[0], limit=1000)
    assert {r["scope"] for r in log} >= {"trade_documents", "telemetry:energy"}
    assert any(not r["allowed"] and r["reason"] == "withdrawn" for r in log)
    with ws.engine.connect() as conn:
        logged = {r.enterprise_id for r in conn.execute(select(access_t.c.enterprise_id).distinct())}
    assert logged == set(ids)


def test_a_data_window_too_short_for_a_look_back_withholds_only_those_features(ws) -> None:  # noqa: ANN001
    eid = 3
    _grant(ws, [eid], ["trade_documents", "telemetry:energy"], recipient="bank-w", window_start=AS_OF - timedelta(days=40))
    out = features_for(ws.features, eid, AS_OF, "bank-w")
    assert out["withheld"]["t_dso_days"] == "trade_documents: outside_window"  # 365-day look-back
    assert out["withheld"]["a_capacity_kw"] == "telemetry:energy: outside_window"
    assert "t_sales_90d" in out["withheld"] and "a_energy_kwh_30d" not in out["withheld"]
    assert out["features"]["a_energy_kwh_30d"] is not None


def test_consistency_checks_catch_the_injected_fabricated_trades(economy: Economy, ws) -> None:  # noqa: ANN001
    incidents = economy.ds.table("incidents").to_pylist()
    fabricated = {i["enterprise_id"] for i in incidents if i["incident_type"] == "fabricated_trade"}
    assert fabricated, "the economy should carry fabricated trades"
    table, _ = ws.features.unscoped(LAST_DAY)
    flagged = {r["enterprise_id"] for r in table.to_pylist()
               if r["c_invoices_without_delivery_90d"] or r["c_deliveries_without_gps_90d"]}
    assert fabricated <= flagged
    assert len(flagged - fabricated) <= 0.05 * table.num_rows
    # Before the first fabricated order, nothing flags those sellers on invoices.
    first = min(datetime.fromtimestamp(i["start_ts"] / 1000, BUSINESS_TZ).date() for i in incidents
                if i["incident_type"] == "fabricated_trade")
    early, _ = ws.features.unscoped(first - timedelta(days=1))
    assert all(not r["c_invoices_without_delivery_90d"] for r in early.to_pylist() if r["enterprise_id"] in fabricated)
    # The documents each incident names are the ones counted.
    docs = [d for i in incidents if i["incident_type"] == "fabricated_trade" for d in json.loads(i["detail"])["document_ids"]]
    assert docs


def test_training_labels_come_from_the_ground_truth(economy: Economy, ws) -> None:  # noqa: ANN001
    class Truth:  # the simulator's tables, with two defaults placed where the test can see them
        def table(self, name: str) -> pa.Table:
            assert name == "defaults"
            return pa.table({"enterprise_id": [5, 6], "default_on": [AS_OF + timedelta(days=5), AS_OF - timedelta(days=1)],
                             "cause": ["x", "y"]})

    t = training_set(ws.features, Truth(), [AS_OF - timedelta(days=10), AS_OF], horizon_days=10)
    rows = {(r["enterprise_id"], r["as_of"]): r["default"] for r in t.to_pylist()}
    assert rows[(5, AS_OF)] == 1 and rows[(5, AS_OF - timedelta(days=10))] == 0
    assert rows[(6, AS_OF - timedelta(days=10))] == 1 and (6, AS_OF) not in rows  # already defaulted: not an applicant
    assert sum(rows.values()) == 2 and t.column_names[-1] == "default" and set(FEATURES) <= set(t.column_names)
    real = training_set(ws.features, economy.ds, [AS_OF], horizon_days=30)
    assert real.num_rows > 0 and sum(real["default"].to_pylist()) == sum(
        1 for d in economy.ds.table("defaults").to_pylist() if AS_OF < d["default_on"] <= AS_OF + timedelta(days=30))


def test_the_spark_reading_of_the_sql_gives_the_same_features(ws) -> None:  # noqa: ANN001
    """The query as Spark SQL understands it (sqlglot, read as Spark, written for DuckDB) computes
    the same table: the definitions need no second copy to run on Spark."""
    ours, _ = ws.features.unscoped(LAST_DAY)
    spark, _ = ws.features.unscoped(LAST_DAY, query=lambda a: sqlglot.transpile(
        feature_query(a), read="spark", write="duckdb")[0])
    assert spark.equals(ours)


def test_bad_requests(ws) -> None:  # noqa: ANN001
    with pytest.raises(ValidationError, match="business date"):
        compute_features(ws.features, datetime(2026, 4, 1, tzinfo=UTC), "bank-a")
    with pytest.raises(ValidationError, match="recipient"):
        compute_features(ws.features, AS_OF, "Bank A")
    with pytest.raises(ValidationError, match="purpose"):
        features_for(ws.features, 1, AS_OF, "bank-a", purpose="marketing")
    with pytest.raises(NotFound):
        features_for(ws.features, 99_999, AS_OF, "bank-a")
    with pytest.raises(ValidationError, match="horizon"):
        training_set(ws.features, None, [AS_OF], horizon_days=0)
    # Before anything was founded there is nothing to rate.
    assert compute_features(ws.features, date(1980, 1, 1), "bank-a").num_rows == 0
