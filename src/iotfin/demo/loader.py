"""Feed a simulator dataset into a workspace through the platform's own services.

Master data (tenants, enterprises, sites, chains, trade documents, devices) goes into the system of
record; telemetry goes through the same IngestService the transports use (validation, quarantine,
durable commit), one simulated day at a time so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from iotfin.app.workspace import Workspace
from iotfin.db.bulk import advance_sequences
from iotfin.devices.store import ensure_profiles, insert_devices
from iotfin.financing.model import receivable_key, warehouse_receipt_key
from iotfin.financing.service import DoubleFinancing
from iotfin.ingest.service import IngestResult
from iotfin.protection.service import seal_enterprise
from iotfin.supplychain.store import insert_rows
from iotfin.telemetry.model import READING_SCHEMA

Progress = Callable[[str, int, int], None]


@dataclass
class LoadReport:
    rows: dict[str, int] = field(default_factory=dict)
    ingest: IngestResult = field(default_factory=IngestResult)
    telemetry_rows: int = 0


def wide_to_readings(table: pa.Table, metrics: list[str]) -> pa.Table:
    """Turn a wide telemetry table (device_id, ts, metric columns) into long readings; nulls dropped."""
    parts = []
    for metric in metrics:
        if metric not in table.column_names:
            continue
        column = table[metric]
        present = pc.is_valid(column)
        parts.append(
            pa.table(
                {
                    "device_id": table["device_id"].filter(present),
                    "key": pa.repeat(pa.scalar(metric, pa.string()), pc.sum(present).as_py() or 0),
                    "ts": table["ts"].filter(present),
                    "value": column.filter(present).cast(pa.float64()),
                },
                schema=READING_SCHEMA,
            )
        )
    return pa.concat_tables(parts) if parts else READING_SCHEMA.empty_table()


def load_master_data(ws: Workspace, ds: Any) -> dict[str, int]:
    """Insert the dataset's master data and trade documents; returns rows per table."""
    enterprises = ds.table("enterprises").to_pylist()
    relationships = ds.table("relationships").to_pylist()
    chains = _chains(enterprises)
    rows: dict[str, int] = {}
    with ws.engine.begin() as conn:
        profile_ids = ensure_profiles(conn)
        rows["tenants"] = insert_rows(conn, "tenants", [
            {k: t[k] for k in ("code", "name", "name_en", "kind")} | {"id": t["tenant_id"]}
            for t in ds.table("tenants").to_pylist()
        ])
        rows["enterprises"] = insert_rows(conn, "enterprises", [seal_enterprise(ws.pii, _enterprise_row(e))
                                                                for e in enterprises])
        rows["sites"] = insert_rows(conn, "sites", [
            {"id": s["site_id"], "enterprise_id": s["enterprise_id"], "name": s["name"], "kind": s["kind"],
             "lat": s["lat"], "lon": s["lon"], "geofence_radius_m": s["geofence_radius_m"]}
            for s in ds.table("sites").to_pylist()
        ])
        rows["supply_chains"] = insert_rows(conn, "supply_chains", [
            {"id": chain_id, "core_enterprise_id": core["enterprise_id"], "name": f"{core['name']}供应链"}
            for chain_id, core in sorted(chains.items())
        ])
        rows["chain_members"] = insert_rows(conn, "chain_members", [
            {"chain_id": e["chain_id"], "enterprise_id": e["enterprise_id"], "role": e["role"], "tier": e["tier"]}
            for e in enterprises if e["chain_id"] is not None and e["chain_id"] >= 0
        ])
        rows["relationships"] = insert_rows(conn, "relationships", [
            {"id": r["relationship_id"], "chain_id": r["chain_id"], "core_enterprise_id": r["core_enterprise_id"],
             "supplier_id": r["supplier_id"], "buyer_id": r["buyer_id"], "tier": r["tier"], "since": r["since"]}
            for r in relationships
        ])
        devices = ds.table("devices").to_pylist()
        rows["devices"] = insert_devices(conn, [
            {"id": d["device_id"], "enterprise_id": d["enterprise_id"], "site_id": d["site_id"],
             "profile_id": profile_ids[d["device_type"]], "device_type": d["device_type"], "serial": d["serial"],
             "status": "active", "commodity": d.get("commodity"), "installed_on": d["installed_on"]}
            for d in devices
        ])
        rows["trade_documents"] = insert_rows(conn, "trade_documents", [
            {"id": d["document_id"], "doc_type": d["doc_type"], "chain_id": d["chain_id"],
             "seller_id": d["seller_id"], "buyer_id": d["buyer_id"], "order_id": d["order_id"],
             "issued_on": d["issued_on"], "due_on": d["due_on"], "amount": d["amount"],
             "currency": d["currency"], "commodity": d["commodity"], "quantity": d["quantity"],
             "invoice_code": d["invoice_code"], "invoice_number": d["invoice_number"],
             "vehicle_device_id": d["vehicle_device_id"]}
            for d in ds.table("trade_documents").to_pylist()
        ])
        advance_sequences(conn)  # the rows came with their ids: later inserts draw ids after them
    ws.reload_registry()  # new devices: rebuild the registry on next use
    rows["anchored_trade_documents"] = ws.ledger.anchor_all("trade_document")
    return rows


def _enterprise_row(e: dict[str, Any]) -> dict[str, Any]:
    keys = ("uscc", "name", "name_en", "sector", "subsector", "region_code", "region", "founded_on",
            "registered_capital", "legal_rep_name", "legal_rep_id_number", "legal_rep_phone", "tax_grade",
            "litigation_count", "key_person_changes")
    return {k: e[k] for k in keys} | {"id": e["enterprise_id"]}


def _chains(enterprises: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {e["chain_id"]: e for e in enterprises if e["role"] == "core"}


def iter_readings(ds: Any) -> Iterator[tuple[str, Any, pa.Table]]:
    metrics_by_type = _metrics_by_type(ds)
    for device_type, day, table in ds.iter_telemetry():
        yield device_type, day, wide_to_readings(table, metrics_by_type[device_type])


def _metrics_by_type(ds: Any) -> dict[str, list[str]]:
    devices = ds.table("devices")
    out: dict[str, list[str]] = {}
    for device_type, metrics in zip(devices["device_type"].to_pylist(), devices["metrics"].to_pylist(), strict=True):
        out.setdefault(device_type, metrics.split(","))
    return out


def load_telemetry(ws: Workspace, ds: Any, progress: Progress | None = None, now_ms: int | None = None,
                   batch_rows: int = 2_000_000) -> tuple[IngestResult, int]:
    """Ingest every telemetry file of the dataset; returns the ingest tally and the rows offered."""
    total = sum(len(ds.telemetry_days(t)) for t in _metrics_by_type(ds))
    tally = IngestResult()
    offered = done = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    for _device_type, _day, readings in iter_readings(ds):
        pending.append(readings)
        pending_rows += readings.num_rows
        offered += readings.num_rows
        if pending_rows >= batch_rows:
            tally += ws.ingest.ingest(pa.concat_tables(pending), transport="batch", now=now_ms)
            pending, pending_rows = [], 0
        done += 1
        if progress:
            progress("ingest telemetry", done, total)
    if pending:
        tally += ws.ingest.ingest(pa.concat_tables(pending), transport="batch", now=now_ms)
    return tally, offered


def load_financing_requests(ws: Workspace, ds: Any) -> dict[str, Any]:
    """Put the dataset's financing requests through the financing registry, in date order.

    Receivables are keyed by the invoice fields exactly as each applicant typed them; the registry's
    fingerprint sees through the reformatting, so the simulator's double-financing scenarios are
    refused. Receivables whose invoice was paid within the horizon are then released as repaid.
    """

    docs = ds.table("trade_documents")
    paid_orders = set(pc.filter(docs["order_id"], pc.equal(docs["doc_type"], "payment")).to_pylist())
    order_of = dict(zip(docs["document_id"].to_pylist(), docs["order_id"].to_pylist(), strict=True))
    registry = ws.financing
    # A bulk import anchors each lien once, as it stands at the end, in one ledger batch, instead of
    # one append per placement and release.
    per_change_anchor, registry.anchor = registry.anchor, None
    placed: dict[int, int] = {}  # document id -> lien id
    refused: list[dict[str, Any]] = []
    for req in ds.table("financing_requests").to_pylist():
        if req["asset_type"] == "receivable":
            key = receivable_key(req["invoice_code"], req["invoice_number"], req["seller_uscc"], req["buyer_uscc"],
                                 req["amount"])
        else:
            key = warehouse_receipt_key(req["seller_uscc"], f"WR{req['document_id']}")
        try:
            lien = registry.finance(key, req["tenant_id"], f"REQ-{req['request_id']}", req["amount"],
                                    enterprise_id=req["enterprise_id"], document_id=req["document_id"])
            placed[req["document_id"]] = lien.id
        except DoubleFinancing as exc:
            refused.append({"request_id": req["request_id"], "document_id": req["document_id"],
                            "tenant_id": req["tenant_id"], "invoice_number_as_typed": req["invoice_number"],
                            "reason": str(exc), "reason_zh": exc.message_zh, "existing_lien": exc.existing.to_json()})
    released = 0
    for document_id, lien_id in placed.items():
        if order_of.get(document_id) in paid_orders:
            registry.release(lien_id, "invoice paid by the buyer")
            released += 1
    registry.anchor = per_change_anchor
    ws.ledger.anchor_from_source("lien", [str(lien_id) for lien_id in placed.values()], checkpoint=False)
    return {"requests": ds.table("financing_requests").num_rows, "placed": len(placed), "refused": len(refused),
            "released_on_repayment": released, "refused_examples": refused[:3]}
