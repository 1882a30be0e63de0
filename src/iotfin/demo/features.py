"""The demo's consent-and-features step: each enterprise grants its chain's bank consent for credit
assessment, and every bank gets the features of every enterprise as of the last simulated day —
full for the enterprises that granted it consent, withheld for the rest."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from iotfin.consent.model import SCOPES, TELEMETRY_SCOPE_OF_DEVICE, GrantRequest
from iotfin.consent.store import access_t
from iotfin.core.time import utc_now
from iotfin.risk.features.catalogue import CATALOGUE
from iotfin.risk.features.engine import load_commodity_prices

PURPOSE = "credit_assessment"
NON_TELEMETRY = tuple(s for s in SCOPES if not s.startswith("telemetry:") and s != "alerts")


def consent_and_features(ws: Any, ds: Any, as_of: date, now: datetime | None = None) -> dict[str, Any]:
    now = now or utc_now()
    load_commodity_prices(ws.features, ds.table("commodity_prices"))
    tenants = {t["tenant_id"]: t["code"] for t in ds.table("tenants").to_pylist() if t["kind"] == "bank"}
    devices = ds.table("devices")
    device_scopes: dict[int, set[str]] = {}
    for eid, dtype in zip(devices["enterprise_id"].to_pylist(), devices["device_type"].to_pylist(), strict=True):
        device_scopes.setdefault(eid, set()).add(TELEMETRY_SCOPE_OF_DEVICE[dtype])
    requests = []
    for e in ds.table("enterprises").to_pylist():
        bank = tenants.get(e["lender_tenant_id"])
        if bank is None:
            continue  # not in a chain: no house bank to grant
        requests.append(GrantRequest(
            enterprise_id=e["enterprise_id"], recipient=bank, purpose=PURPOSE,
            scopes=tuple(sorted(device_scopes.get(e["enterprise_id"], set()))) + NON_TELEMETRY,
            window_start=as_of - timedelta(days=400), window_end=as_of + timedelta(days=365),
            expires_at=now + timedelta(days=365)))
    grants = ws.consent.grant_many(requests, now)

    eng = ws.features
    table, dev = eng.unscoped(as_of)  # computed once, scoped for each bank
    delivered = withheld = 0
    per_bank: dict[str, dict[str, int]] = {}
    for bank in sorted(tenants.values()):
        scoped = eng.scope(table, dev, as_of, bank, PURPOSE)
        counts = Counter(len(w) for w in scoped["withheld"].to_pylist())
        bank_withheld = sum(n * c for n, c in counts.items())
        bank_delivered = sum(scoped[f.name].length() - scoped[f.name].null_count for f in CATALOGUE)
        per_bank[bank] = {"enterprises_fully_visible": counts.get(0, 0), "features_delivered": bank_delivered,
                          "features_withheld": bank_withheld}
        delivered += bank_delivered
        withheld += bank_withheld
    ws.consent.log.flush()
    with ws.engine.connect() as conn:


        log_rows = conn.execute(select(func.count()).select_from(access_t)).scalar_one()
    return {"as_of": as_of.isoformat(), "grants": len(grants), "enterprises": table.num_rows,
            "catalogue_features": len(CATALOGUE), "features_delivered": delivered, "features_withheld": withheld,
            "access_log_rows": log_rows, "by_bank": per_bank}
