"""The demo's decisioning step: the simulator's enterprises apply for credit and are decided.

`decide_applications(ws, ds, assess)` builds one application per small or micro enterprise (core
enterprises do not apply): the product follows what the enterprise financed in the simulation
(receivables, warehouse receipts, else working capital) and the amount is sized to its financing
activity, or to its registered capital when it financed nothing. `assess(enterprise_id)` is the
risk engine's assessment, provided by the caller.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import ROUND_DOWN, Decimal
from typing import Any

from iotfin.core.errors import Forbidden
from iotfin.decision.applications import PRODUCTS, Application
from iotfin.decision.service import Applicant, Assess

STEP = Decimal("10000")


def _sized(product: str, raw: Decimal) -> Decimal:
    p = PRODUCTS[product]
    amount = min(max(raw, p.min_amount), p.max_amount, Decimal("3000000"))
    return (amount / STEP).to_integral_value(ROUND_DOWN) * STEP if amount >= STEP else p.min_amount


def build_applications(ds: Any, limit: int | None = None) -> list[Application]:
    """Applications from the simulated economy, in enterprise order."""
    requests = ds.table("financing_requests").to_pylist()
    by_enterprise: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in requests:
        by_enterprise[int(r["enterprise_id"])].append(r)
    days = [r["requested_on"] for r in requests]
    span_days = max(30, (max(days) - min(days)).days + 1) if days else 365
    apps = []
    for e in ds.table("enterprises").to_pylist():
        if e["role"] == "core":
            continue
        eid = int(e["enterprise_id"])
        mine = by_enterprise.get(eid, [])
        if mine:
            kinds = Counter(r["asset_type"] for r in mine)
            product = "receivable-financing" if kinds.most_common(1)[0][0] == "receivable" else "inventory-pledge"
            annual = sum((Decimal(r["amount"]) for r in mine), Decimal(0)) * 365 / span_days
            amount, tenor = _sized(product, annual / 4), 6  # a quarter's financing need, revolving
        else:
            product = "iot-working-capital"
            amount, tenor = _sized(product, Decimal(e["registered_capital"]) * Decimal("0.3")), 12
        apps.append(Application(eid, product, amount, tenor, ref=f"demo-{eid}"))
        if limit is not None and len(apps) >= limit:
            break
    return apps


def decide_applications(ws: Any, ds: Any, assess: Assess, limit: int | None = 80,
                        lenders: dict[int, tuple[int, str]] | None = None) -> dict[str, Any]:
    """Decide the simulator's applications through the credit-application use case a lender calls
    (`submit`: its consent checked and logged, the application and its offer owned by the lender;
    `lenders`: enterprise id -> (tenant id, tenant code)); returns counts, volumes and one example of
    each outcome. An enterprise without a house bank is decided for the operator."""
    svc = ws.decisions(assess=assess)
    counts: Counter[str] = Counter()
    approved = Decimal("0.00")
    examples: dict[str, dict[str, Any]] = {}
    refused = 0
    for app in build_applications(ds, limit):
        lender = (lenders or {}).get(app.enterprise_id)
        try:
            result = (svc.submit(app, Applicant(consent_of=lender[1], risk_lender=lender[1], owner_tenant_id=lender[0]))
                      if lender else svc.decide(app))
        except Forbidden:  # no consent from this enterprise: the lender may not assess it
            refused += 1
            continue
        counts[result["decision"]] += 1
        if result["decision"] == "approve":
            approved += Decimal(result["offered_amount"])
        if result["decision"] not in examples:
            examples[result["decision"]] = {
                "application_id": result["application_id"], "enterprise_id": app.enterprise_id, "product": app.product,
                "amount": str(app.amount), "offered_amount": result["offered_amount"], "rate": result["rate"],
                "reasons": result["reasons"], "disclosure": result["disclosure"],
            }
    deployment = svc.deployment("default") or {}
    return {"applications": sum(counts.values()), "approved": counts["approve"], "declined": counts["decline"],
            "referred": counts["refer"], "refused_without_consent": refused, "approved_volume": str(approved), "review_queue": len(svc.queue(10_000)),
            "strategy": {"name": "default", "champion_version": deployment.get("champion_version")},
            "examples": examples}
