"""Evaluation against the simulator's ground truth.

Generates a simulator run, loads its master data, and pushes its telemetry through the real ingest
path (IngestService with the monitor subscribed) in arrival order, an hour of simulated time per
batch, ticking the monitor's clock after each. Then it matches the alerts raised (tier alert or
above) with the injected incidents and reports, per incident type, recall and time to detect (in
simulated time), and false alerts per 1,000 device-days.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotfin.core.time import day_start_ms
from iotfin.demo.loader import _metrics_by_type, load_master_data
from iotfin.demo.receivables import evaluate_voucher_fraud, replay_vouchers
from iotfin.demo.workspace import fresh_workspace
from iotfin.financing.model import receivable_key, warehouse_receipt_key
from iotfin.financing.service import DoubleFinancing
from iotfin.monitor.model import HOUR_MS, Tier
from iotfin.monitor.service import AlertView, MonitorService
from iotfin.monitor.store import AlertStore, load_device_meta
from iotfin.sim import SimConfig, SimDataset, generate
from iotfin.telemetry.model import READING_SCHEMA

# Incident types the IoT signals are meant to catch, and the alert incident type that catches each.
SIGNAL_INCIDENTS = ("device_dark", "device_replay", "device_tamper", "geofence_exit", "inventory_moved_out",
                    "production_shutdown")  # seen in the device stream alone
DETECTABLE = (*SIGNAL_INCIDENTS, "double_financing", "fabricated_trade")  # + financing refusals, trade documents
NOT_IOT = {"double_financing": "raised from the financing registry's refusal of the second request, not from device signals",
           "fabricated_trade": "trade documents checked at day end with the risk features' consistency checks: an "
                               "invoice whose order has no delivery note, a delivery note whose truck did not move"}
FINANCING_HOUR = 9  # financing requests carry a day only: they are put to the registry at 09:00 local
_EPOCH = date(1970, 1, 1)
EARLY_MS = 2 * HOUR_MS  # an alert this long before a ground-truth start still counts (skewed device clocks)
LATE_MS = 24 * HOUR_MS  # ... and this long after its end


def arrival_table(ds: Any, device_type: str, day: Any, metrics: list[str]) -> pa.Table:
    """Long readings with the time each reached the platform (satellite uplink for livestock tags)."""
    wide = ds.telemetry(device_type, day)
    arrival = wide["received_ts"] if "received_ts" in wide.column_names else wide["ts"]
    parts = []
    for metric in metrics:
        if metric not in wide.column_names:
            continue
        present = pc.is_valid(wide[metric])
        n = pc.sum(present).as_py() or 0
        parts.append(pa.table({"device_id": wide["device_id"].filter(present),
                               "key": pa.repeat(pa.scalar(metric, pa.string()), n),
                               "ts": wide["ts"].filter(present),
                               "value": wide[metric].filter(present).cast(pa.float64()),
                               "arrival": arrival.filter(present)}))
    return pa.concat_tables(parts)


def finance(ws: Any, monitor: MonitorService, requests: list[dict[str, Any]], now: int) -> int:
    """Put one day's financing requests to the real financing registry (as `iotfin.demo.loader` does);
    each refusal of an asset already financed goes to the monitor. Returns the refusals."""

    refused = 0
    for req in requests:
        if req["asset_type"] == "receivable":
            key = receivable_key(req["invoice_code"], req["invoice_number"], req["seller_uscc"], req["buyer_uscc"],
                                 req["amount"])
        else:
            key = warehouse_receipt_key(req["seller_uscc"], f"WR{req['document_id']}")
        try:
            ws.financing.finance(key, req["tenant_id"], f"REQ-{req['request_id']}", req["amount"],
                                 enterprise_id=req["enterprise_id"], document_id=req["document_id"])
        except DoubleFinancing as exc:
            refused += 1
            monitor.financing_refused(req["enterprise_id"], now, {"request_id": req["request_id"],
                                                                  "document_id": req["document_id"], "reason": str(exc)})
    return refused


def replay_telemetry(ws: Any, ds: Any, monitor: MonitorService, step_ms: int = HOUR_MS,
                     progress: Any = None) -> dict[str, Any]:
    """Feed every telemetry reading through ws.ingest in arrival order, `step_ms` per batch; put each
    day's financing requests to the registry at FINANCING_HOUR local."""

    metrics = _metrics_by_type(ds)
    types = [t for t in ds.telemetry_types() if t in metrics]
    days = sorted({d for t in types for d in ds.telemetry_days(t)})
    cfg = ds.manifest["config"]
    start_ms = _local_midnight_ms(cfg["start_date"])
    carry = None
    accepted = rejected = batches = refused = 0
    requests: dict[Any, list[dict[str, Any]]] = {}
    for req in ds.table("financing_requests").to_pylist():
        requests.setdefault(req["requested_on"], []).append(req)
    ws.financing.anchor = None  # as in the loader's bulk import: liens are not anchored one by one here
    ingest_s = 0.0
    for i, day in enumerate(days):
        tables = [arrival_table(ds, t, day, metrics[t]) for t in types if day in ds.telemetry_days(t)]
        if carry is not None:
            tables.append(carry)
        day_table = pa.concat_tables(tables)
        arrival = day_table["arrival"].to_numpy()
        order = np.argsort(arrival, kind="stable")
        day_table = day_table.take(pa.array(order))
        arrival = arrival[order]
        day_end = start_ms + (i + 1) * 86_400_000
        bounds = np.searchsorted(arrival, np.arange(day_end - 86_400_000 + step_ms, day_end + 1, step_ms))
        lo = 0
        for k, hi in enumerate(bounds):
            now = day_end - 86_400_000 + (k + 1) * step_ms
            if hi > lo:
                batch = day_table.slice(lo, hi - lo).select(READING_SCHEMA.names)
                t0 = time.perf_counter()
                result = ws.ingest.ingest(batch, transport="batch", now=now)
                ingest_s += time.perf_counter() - t0
                accepted += result.accepted
                rejected += result.rejected
                batches += 1
            monitor.tick(now)
            if k + 1 == FINANCING_HOUR * HOUR_MS // step_ms:
                refused += finance(ws, monitor, requests.pop(day, []), now)
            lo = hi
        carry = day_table.slice(lo) if lo < day_table.num_rows else None
        monitor.check_trade_day(ws.engine, (day - _EPOCH).days, day_end)
        if progress:
            progress("monitor evaluate", i + 1, len(days))
    return {"batches": batches, "accepted": accepted, "rejected": rejected, "ingest_and_monitor_s": round(ingest_s, 2),
            "financing_refused": refused}


def _local_midnight_ms(start_date: str) -> int:
    return day_start_ms(date.fromisoformat(start_date)) - 8 * HOUR_MS


def match(alerts: list[AlertView], incidents: list[dict[str, Any]], device_days: float) -> dict[str, Any]:
    """Per incident type: recall, median/p95 time to detect (hours); false alerts per 1,000 device-days."""
    raised = [a for a in alerts if a.raised_at is not None and a.tier >= Tier.alert]
    used: set[int] = set()
    per_type: dict[str, dict[str, Any]] = {}
    for kind in sorted({i["incident_type"] for i in incidents} | set(DETECTABLE)):
        rows = [i for i in incidents if i["incident_type"] == kind]
        ttd: list[float] = []
        missed: list[int] = []
        for inc in rows:
            start = inc["start_ts"]
            end = inc["end_ts"] if inc["end_ts"] is not None else start + 72 * HOUR_MS
            hits = [a for a in raised if a.incident_type == kind and a.enterprise_id == inc["enterprise_id"]
                    and start - EARLY_MS <= a.raised_at <= end + LATE_MS]
            if hits:
                first = min(hits, key=lambda a: a.raised_at)
                used.update(a.alert_id for a in hits)
                ttd.append(max(0, first.raised_at - start) / HOUR_MS)
            else:
                missed.append(inc["incident_id"])
        entry: dict[str, Any] = {"incidents": len(rows), "detected": len(ttd),
                                 "recall": round(len(ttd) / len(rows), 4) if rows else None}
        if ttd:
            entry["ttd_median_h"] = round(float(np.median(ttd)), 2)
            entry["ttd_p95_h"] = round(float(np.percentile(ttd, 95)), 2)
        if missed:
            entry["missed_incident_ids"] = missed
        if kind in NOT_IOT:
            entry["note"] = NOT_IOT[kind]
        per_type[kind] = entry
    false = [a for a in raised if a.incident_type in DETECTABLE and a.alert_id not in used]
    other = [a for a in raised if a.incident_type not in DETECTABLE]
    by_other: dict[str, int] = {}
    for a in other:
        by_other[a.incident_type] = by_other.get(a.incident_type, 0) + 1
    false_by: dict[str, int] = {}
    for a in false:
        false_by[a.incident_type] = false_by.get(a.incident_type, 0) + 1
    detectable = [per_type[k] for k in SIGNAL_INCIDENTS if per_type[k]["incidents"]]
    return {
        "per_incident_type": per_type,
        "false_alerts": len(false),
        "false_alerts_by_type": false_by,
        "false_alerts_per_1000_device_days": round(1000 * len(false) / max(device_days, 1), 3),
        "false_alert_examples": [a.to_json() for a in false[:5]],
        "condition_alerts_without_ground_truth": by_other,
        "watch_only_alerts": sum(1 for a in alerts if a.tier == Tier.watch),
        "min_recall_device_signal_types": min((e["recall"] for e in detectable), default=None),
        "device_days": round(device_days, 1),
    }


def evaluate(enterprises: int = 120, days: int = 30, seed: int = 7, devices: int | None = None,
             workdir: Path | None = None, workers: int = 1, progress: Any = None, shocks: bool = False) -> dict[str, Any]:
    """The evaluation; with `shocks` the simulator adds sector-wide and regional shocks (issue 24) and
    the run is made twice — today's rules, then with peer scoping (a stop the sector or region shares
    is lowered to watch) — reporting false alerts during the shocks and recall on firm-specific
    incidents for both."""
    timings: dict[str, float] = {}
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="iotfin-monitor-eval-")
        workdir = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        cfg = SimConfig(enterprises=enterprises, days=days, seed=seed, devices=devices, shocks=shocks)
        generate(cfg, Path(workdir) / "sim", workers=workers)
        ds = SimDataset(Path(workdir) / "sim")
        timings["simulate_s"] = round(time.perf_counter() - t0, 2)
        report = _run(ds, cfg, Path(workdir) / "workspace", timings, progress, peer_scope=shocks)
        if shocks:
            baseline = _run(ds, cfg, Path(workdir) / "workspace-today", {}, progress, peer_scope=False)
            report["shock_comparison"] = _compare(ds, baseline, report)
        report.pop("_alerts")
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(ds: Any, cfg: SimConfig, ws_dir: Path, timings: dict[str, float], progress: Any,
         peer_scope: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    ws = fresh_workspace(ws_dir)
    ws.initialise()
    load_master_data(ws, ds)
    meta, names = load_device_meta(ws.engine)
    store = AlertStore(ws.engine)
    monitor: MonitorService = ws.monitor_service(meta, store=store, enterprise_names=names)
    if peer_scope:
        firms = ds.table("enterprises").to_pylist()
        monitor.set_peer_groups([{f["enterprise_id"]: f["sector"] for f in firms},
                                 {f["enterprise_id"]: f["region_code"] for f in firms}])
    store.rules_version = monitor.rules.version
    ws.ingest.on_commit.append(monitor.on_commit)
    timings["load_master_data_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    fed = replay_telemetry(ws, ds, monitor, progress=progress)
    timings["ingest_and_monitor_s"] = round(time.perf_counter() - t0, 2)
    incidents = ds.table("incidents").to_pylist()
    device_days = _device_days(ds, cfg)
    alerts = list(monitor.alerts.values())
    report = match(alerts, incidents, device_days)
    t0 = time.perf_counter()
    report["vouchers"] = voucher_evaluation(ws, ds, monitor, cfg.start_date + timedelta(days=cfg.days - 1))
    timings["vouchers_s"] = round(time.perf_counter() - t0, 2)
    lat = np.array(monitor.latencies_s) if monitor.latencies_s else np.zeros(1)
    report.update({
        "simulation": {"enterprises": cfg.enterprises, "days": cfg.days, "seed": cfg.seed, "shocks": cfg.shocks,
                       "devices": ds.manifest["counts"]["devices"],
                       "telemetry_rows": ds.manifest["counts"]["telemetry_rows"]},
        "ingest": fed,
        "monitor": monitor.snapshot() | {"stop_scopes": monitor.scopes},
        "alert_latency_s": {"p50": round(float(np.median(lat)), 4), "p99": round(float(np.percentile(lat, 99)), 4)},
        "rules_version": monitor.rules.version,
        "timings_s": timings,
        "_alerts": alerts,
    })
    ws.close()
    return report


def voucher_evaluation(ws: Any, ds: Any, monitor: MonitorService, today: date) -> dict[str, Any]:
    """The simulator's voucher flows replayed through the receivables service once the telemetry (the
    trucks' GPS tracks) is in; the injected voucher fraud against the ground truth
    (`iotfin.demo.receivables.evaluate_voucher_fraud`); and the vouchers whose maturity is at risk at the
    end of the last day raised as monitor alerts on their core enterprise."""
    replay = replay_vouchers(ws, ds, today)
    at_risk = ws.receivables.at_risk(today + timedelta(days=1))
    changes = monitor.maturity_at_risk(at_risk, monitor.signals.now)
    opened = [c for c in changes if c.kind == "open"]
    return {"flows": ds.table("vouchers").num_rows, "replayed": replay["counts"], "refusals": replay["refusals"],
            "fraud_evaluation": evaluate_voucher_fraud(replay["outcomes"], ds.table("voucher_fraud").to_pylist()),
            "maturity_at_risk": {"vouchers": len(at_risk),
                                 "overdue": sum(1 for v in at_risk if v["reason"].startswith("past maturity")),
                                 "alerts_opened": len(opened),
                                 "by_tier": dict(sorted(_count(c.tier.name for c in opened).items()))},
            "core_ratings_assumed": replay["core_ratings_assumed"]}


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def in_shock(ds: Any, alert: AlertView) -> bool:
    """Whether an alert was raised on a firm a sector-wide or regional shock had stopped, during it
    (from the day before its first day to two days after its last)."""
    firms = {f["enterprise_id"]: f for f in ds.table("enterprises").to_pylist()}
    firm = firms.get(alert.enterprise_id)
    if firm is None or alert.raised_at is None:
        return False
    for shock in ds.table("shocks").to_pylist():
        lo = day_start_ms(shock["first_day"]) - 8 * HOUR_MS - 86_400_000
        hi = day_start_ms(shock["last_day"]) - 8 * HOUR_MS + 3 * 86_400_000
        hit = (shock["sector"] is not None and firm["sector"] in shock["sector"].split(",")) or \
            (shock["region_code"] is not None and firm["region_code"] == shock["region_code"])
        if hit and lo <= alert.raised_at < hi:
            return True
    return False


def _compare(ds: Any, today: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """False alerts raised on shocked firms during the shocks, and recall on firm-specific incidents."""
    incidents = ds.table("incidents").to_pylist()

    def figures(report: dict[str, Any]) -> dict[str, Any]:
        alerts = report["_alerts"]
        matched = match(alerts, incidents, report["device_days"])
        false_in_shock = [a for a in _unmatched(alerts, incidents) if in_shock(ds, a)]
        per = matched["per_incident_type"]
        return {"false_alerts_during_shocks": len(false_in_shock),
                "false_alerts_total": matched["false_alerts"],
                "recall_production_shutdown": per["production_shutdown"]["recall"],
                "min_recall_device_signal_types": matched["min_recall_device_signal_types"],
                "examples": {scope: next(({"zh": a.reason_zh, "en": a.reason_en} for a in alerts
                                          if a.incident_type == "production_shutdown" and marker in a.reason_en), None)
                             for scope, marker in (("sector_wide", "not firm-specific"),
                                                   ("firm_specific", "a firm-specific stop"))}}

    t, n = figures(today), figures(new)
    before = t["false_alerts_during_shocks"]
    return {"today": t, "peer_scoped": n,
            "false_alerts_during_shocks_reduction": None if before == 0
            else round(1 - n["false_alerts_during_shocks"] / before, 4),
            "target": "false alerts during sector-wide shocks fall by at least half at the same recall"}


def _unmatched(alerts: list[AlertView], incidents: list[dict[str, Any]]) -> list[AlertView]:
    """Raised alerts of a detectable type that match no incident (the `match` rule)."""
    raised = [a for a in alerts if a.raised_at is not None and a.tier >= Tier.alert and a.incident_type in DETECTABLE]
    out = []
    for a in raised:
        ok = False
        for inc in incidents:
            if inc["incident_type"] != a.incident_type or inc["enterprise_id"] != a.enterprise_id:
                continue
            end = inc["end_ts"] if inc["end_ts"] is not None else inc["start_ts"] + 72 * HOUR_MS
            if inc["start_ts"] - EARLY_MS <= a.raised_at <= end + LATE_MS:
                ok = True
                break
        if not ok:
            out.append(a)
    return out


def _device_days(ds: Any, cfg: Any) -> float:
    devices = ds.table("devices")
    return float(devices.num_rows * cfg.days)


def main() -> None:  # pragma: no cover - convenience for `python -m iotfin.demo.monitor_eval`
    print(json.dumps(evaluate(), indent=2, ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    main()
