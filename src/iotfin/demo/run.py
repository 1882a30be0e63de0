"""`iotfin demo`: the main job on the embedded default, end to end.

Builds a fresh workspace, generates a small synthetic economy, loads it through the platform's own
ingest and storage paths, runs every capability that exists, and returns one summary dict.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from iotfin.api.routers.ledger import make_witness
from iotfin.app.summary import platform_summary
from iotfin.app.workspace import Workspace
from iotfin.core.time import BUSINESS_TZ, day_start_ms, utc_now
from iotfin.demo import lending
from iotfin.demo.analytics import industry_demo
from iotfin.demo.decision import decide_applications
from iotfin.demo.features import consent_and_features
from iotfin.demo.ingest_workers import ingest_workers_demo
from iotfin.demo.loader import load_financing_requests, load_master_data
from iotfin.demo.logins import lender_accounts, lender_logins
from iotfin.demo.monitor import attach_monitor, monitor_demo
from iotfin.demo.protection import open_api_demo
from iotfin.demo.receivables import receivables_demo
from iotfin.demo.risk import rate_enterprises
from iotfin.demo.stream import stream_telemetry
from iotfin.demo.workspace import MARKER, fresh_workspace  # noqa: F401  (re-exported: the demo's entry points)
from iotfin.ledger.evidence import verify_bundle
from iotfin.ledger.witness import format_add_checkpoint_request, parse_cosignature_response
from iotfin.sim import SimConfig, SimDataset, generate

Progress = Callable[[str, int, int], None]


def run_demo(workspace_dir: Path, enterprises: int = 300, days: int = 180, seed: int = 42,
             devices: int | None = None, workers: int = 2, progress: Progress | None = None,
             database_url: str | None = None) -> tuple[Workspace, dict[str, Any]]:
    timings: dict[str, float] = {}

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        out = fn()
        timings[stage] = round(time.perf_counter() - started, 3)
        return out

    ws = fresh_workspace(workspace_dir, database_url)  # None: SQLite in the folder
    revision = timed("initialise", ws.initialise)
    today = utc_now().astimezone(BUSINESS_TZ).date()
    config = SimConfig(enterprises=enterprises, days=days, seed=seed, start_date=today - timedelta(days=days),
                       devices=devices)
    sim_dir = workspace_dir / "sim"
    manifest = timed("simulate", lambda: generate(config, sim_dir, progress=progress, workers=workers))
    ds = SimDataset(sim_dir)
    rows = timed("load_master_data", lambda: load_master_data(ws, ds))
    timed("monitor_attach", lambda: attach_monitor(ws))  # subscribes to the ingest below
    streamed = timed("ingest_telemetry", lambda: stream_telemetry(ws, ds, progress=progress))
    timings.update({f"ingest_telemetry.{stage}": t for stage, t in streamed["timings_s"].items()})
    financing = timed("financing_registry", lambda: load_financing_requests(ws, ds))
    ledger = timed("ledger_evidence", lambda: _ledger_demo(ws, ds, financing))
    monitoring = timed("monitoring", lambda: monitor_demo(ws, ds))
    industry = timed("industry_indices", lambda: industry_demo(ws, ds))
    last_day = config.start_date + timedelta(days=days - 1)
    features = timed("consent_features", lambda: consent_and_features(ws, ds, last_day))
    rating, assess = timed("risk_rating", lambda: _risk_demo(ws, ds, config.start_date, last_day))
    decisions = timed("credit_decisions", lambda: _decision_demo(ws, ds, assess))
    lending = timed("lending", lambda: _lending_demo(ws, ds, last_day))
    vouchers = timed("receivables", lambda: receivables_demo(ws, ds, last_day))
    open_api = timed("open_api", lambda: open_api_demo(ws))
    ingest_workers = timed("ingest_workers", lambda: ingest_workers_demo(ws))
    logins = timed("lender_logins", lambda: lender_logins(ws, _lenders(ds)))
    summary = timed("summarise", lambda: platform_summary(ws))
    ground_truth = _ground_truth(ds, enterprises)
    summary.update(
        {
            "workspace": str(workspace_dir),
            "database_backend": ws.engine.dialect.name,
            "schema_revision": revision,
            "simulation": {"seed": seed, "enterprises": enterprises, "days": days,
                           "start_date": config.start_date.isoformat(), "manifest_counts": manifest["counts"]},
            "loaded_rows": rows,
            "ingest": streamed["ingest"],
            # data points per transport: the last day over MQTT, the days before over HTTP bulk
            "telemetry_transports": streamed["transports"] | {"wire_days": streamed["wire_days"]},
            "financing_registry": financing,
            "ledger": ledger,
            "consent_features": features,
            "risk": rating,
            "decisions": decisions,
            "lending": lending,
            "receivables": vouchers,
            "monitoring": monitoring,
            "industry": industry,
            "open_api": open_api,
            "ingest_workers": ingest_workers,
            "logins": logins,
            "ground_truth": ground_truth,
            "sample_query": _sample_query(ws, ds, today),
            "timings_s": timings,
            "capabilities": ["system-of-record", "simulator", "ingest-validation-quarantine", "telemetry-store",
                             "financing-registry", "trusted-ledger", "device-http-api", "device-mqtt-api",
                             "loan-servicing-gl", "post-loan-monitoring", "consent-risk-features",
                             "credit-risk-three-dimension", "credit-decisioning", "open-api-protection"],
        }
    )
    return ws, summary


def _lenders(ds: SimDataset) -> dict[int, str]:
    """Each enterprise's lender: the bank its supply chain works with (the simulator's tenants)."""
    codes = dict(zip(ds.table("tenants")["tenant_id"].to_pylist(), ds.table("tenants")["code"].to_pylist(), strict=True))
    ents = ds.table("enterprises")
    return {eid: codes[t] for eid, t in zip(ents["enterprise_id"].to_pylist(), ents["lender_tenant_id"].to_pylist(),
                                            strict=True)}


def _risk_demo(ws: Workspace, ds: SimDataset, start: Any, end: Any) -> tuple[dict[str, Any], Any]:
    # where the workspace's online assessor (the decision API) finds it
    return rate_enterprises(ws, ds, start, end, ws.enterprise_model_dir, _lenders(ds))


def _decision_demo(ws: Workspace, ds: SimDataset, assess: Any) -> dict[str, Any]:
    if assess is None:  # no risk model (see the risk step's reason): nothing to decide with
        return {"skipped": "no risk model was trained"}
    return decide_applications(ws, ds, assess, lenders=lender_accounts(ws, _lenders(ds)))


def _lending_demo(ws: Workspace, ds: SimDataset, end: Any) -> dict[str, Any]:
    offers, source = lending.offers_for_demo(ws, ds)
    return lending.demo_step(ws, offers, end, lending.defaults_from(ds), source)


def _ground_truth(ds: SimDataset, enterprises: int) -> dict[str, Any]:
    defaults = ds.table("defaults")
    incidents = ds.table("incidents")
    return {
        "defaults": defaults.num_rows,
        "default_rate": round(defaults.num_rows / enterprises, 4) if enterprises else 0.0,
        "incidents_by_type": dict(sorted(Counter(incidents["incident_type"].to_pylist()).items())),
    }


def _sample_query(ws: Workspace, ds: SimDataset, today: Any) -> dict[str, Any]:
    """Daily energy of one electricity meter over the last week, read back from the telemetry store."""
    devices = ds.table("devices")
    meters = devices.filter(pc.equal(devices["device_type"], "electricity_meter"))
    if meters.num_rows == 0:
        return {}
    device_id = meters["device_id"][0].as_py()
    end = day_start_ms(today) + 86_400_000
    daily = ws.telemetry.aggregate(device_id, "power_kw", end - 7 * 86_400_000, end, "1d")
    return {"device_id": device_id, "key": "power_kw", "bucket": "1d",
            "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
                     for row in daily.to_pylist()]}


def _ledger_demo(ws: Workspace, ds: SimDataset, financing: dict[str, Any]) -> dict[str, Any]:
    """Sign a checkpoint, have the platform's witness cosign it, prove one refused invoice and one
    meter reading with offline-verified bundles, and audit the whole log."""

    note = ws.ledger.checkpoint()
    cosignatures = parse_cosignature_response(make_witness(ws).add_checkpoint(format_add_checkpoint_request(0, [], note)))
    vkey = ws.ledger.verifier_key
    out: dict[str, Any] = {"verifier_key": vkey, "checkpoint": note.splitlines()[:2], "witness_cosignatures": len(cosignatures)}
    refused = financing["refused_examples"]
    if refused:
        bundle = ws.ledger.prove("trade_document", str(refused[0]["document_id"]))
        out["invoice_evidence"] = verify_bundle(bundle, vkey)
    meters = ds.table("devices").filter(pc.equal(ds.table("devices")["device_type"], "electricity_meter"))
    if meters.num_rows:
        device_id = meters["device_id"][0].as_py()
        latest = ws.telemetry.latest(device_id).get("power_kw")
        if latest is not None:
            bundle = ws.ledger.prove_reading(ws.settings.resolved_telemetry_dir, device_id, "power_kw", latest[0])
            out["reading_evidence"] = verify_bundle(bundle, vkey)
    out["audit"] = ws.ledger.audit(telemetry_root=ws.settings.resolved_telemetry_dir)
    return out
