"""The demo's voucher stage (issue 20): digital debt vouchers along the simulated supply chains, with
injected fraud and an evaluation against the injected ground truth.

For up to `chains` core enterprises: each issues vouchers to its tier-1 suppliers against their
matched PO / delivery note / invoice sets (IoT evidence checked where the delivery note names a
truck); each supplier splits its voucher, passes a part to a tier-2 supplier and offers a part to a
lender, who decides on the core's rating and the evidence. Two kinds of fraud are injected: a voucher
against a delivery note naming a truck whose GPS shows no trip (the delivery never moved), and a
part offered to a second lender while the first offer is pending. The core pays most vouchers at
maturity; the rest are left late, and the maturity-at-risk list and late flags are reported.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from iotfin.app.workspace import Workspace
from iotfin.core.errors import IotfinError
from iotfin.devices.tables import Device, DeviceProfile
from iotfin.identity.tables import Tenant
from iotfin.receivables.model import Holder
from iotfin.receivables.service import Refused
from iotfin.risk.tables import CreditRating
from iotfin.supplychain.tables import Relationship, TradeDocument


def _matched_sets(ws: Workspace, seller: int, buyer: int) -> list[tuple[list[int], Decimal, date]]:
    """(document ids, invoiced amount, delivery date) of each order with a PO, delivery note and invoice."""
    t = TradeDocument
    with ws.engine.connect() as conn:
        rows = conn.execute(select(t.id, t.doc_type, t.order_id, t.amount, t.issued_on)
                            .where(t.seller_id == seller, t.buyer_id == buyer,
                                   t.doc_type.in_(("purchase_order", "delivery_note", "invoice")))).all()
    orders: dict[int, dict[str, Any]] = defaultdict(dict)
    for r in rows:
        orders[r.order_id or r.id][r.doc_type] = r
    out = []
    for docs in orders.values():
        if len(docs) == 3:
            out.append(([docs[k].id for k in ("purchase_order", "delivery_note", "invoice")], docs["invoice"].amount,
                        docs["delivery_note"].issued_on))
    return sorted(out, key=lambda x: x[2])


def _fake_delivery(ws: Workspace, seller: int, buyer: int, amount: Decimal, on: date, truck: int) -> list[int]:
    """Injected fraud: a complete PO / delivery note / invoice set whose delivery note names a truck
    that made no trip that day (no GPS track at all)."""
    with ws.engine.begin() as conn:
        po = conn.execute(insert(TradeDocument).values(doc_type="purchase_order", seller_id=seller, buyer_id=buyer,
                                                       issued_on=on, amount=amount)).inserted_primary_key[0]
        dn = conn.execute(insert(TradeDocument).values(doc_type="delivery_note", seller_id=seller, buyer_id=buyer,
                                                       order_id=po, issued_on=on, amount=amount,
                                                       vehicle_device_id=truck)).inserted_primary_key[0]
        inv = conn.execute(insert(TradeDocument).values(doc_type="invoice", seller_id=seller, buyer_id=buyer,
                                                        order_id=po, issued_on=on, amount=amount)).inserted_primary_key[0]
    return [int(po), int(dn), int(inv)]


def receivables_demo(ws: Workspace, today: date, chains: int = 4, per_supplier: int = 2, seed: int = 20) -> dict[str, Any]:
    rnd = random.Random(seed)
    svc = ws.receivables
    with ws.engine.connect() as conn:
        rel = conn.execute(select(Relationship.core_enterprise_id, Relationship.supplier_id, Relationship.buyer_id,
                                  Relationship.tier)).all()
        lenders = [r[0] for r in conn.execute(select(Tenant.id).where(Tenant.kind == "bank").order_by(Tenant.id)).all()]
        truck = conn.execute(select(Device.id).join(DeviceProfile, DeviceProfile.id == Device.profile_id)
                             .where(DeviceProfile.name.like("%gps%")).order_by(Device.id).limit(1)).scalar()
    if len(lenders) < 2 or not rel:
        return {"skipped": "needs two lenders and supply-chain relationships"}
    tier1 = defaultdict(list)
    tier2 = defaultdict(list)
    for core, supplier, buyer, tier in rel:
        if tier == 1 and buyer == core:
            tier1[core].append(supplier)
        elif tier == 2:
            tier2[buyer].append(supplier)
    cores = sorted(tier1)[:chains]
    assumed = _rate_unrated_cores(ws, cores, today)
    counts: dict[str, int] = defaultdict(int)
    truth_fake: set[int] = set()
    genuine: set[int] = set()
    double_offers = {"injected": 0, "refused": 0, "refusal_names_first_lender": 0}
    issued: list[dict[str, Any]] = []
    refusals: dict[str, int] = defaultdict(int)
    issue_day = today - timedelta(days=100)
    work_day = issue_day + timedelta(days=5)
    for core in cores:
        for supplier in sorted(tier1[core])[:3]:
            sets = _matched_sets(ws, supplier, core)[:per_supplier]
            plans = [(docs, amount, False) for docs, amount, _ in sets]
            if truck is not None and sets:
                plans.append((_fake_delivery(ws, supplier, core, sets[0][1], issue_day - timedelta(days=400), truck),
                               sets[0][1], True))
            for docs, amount, fake in plans:
                value = min(Decimal(amount), Decimal("2000000")).quantize(Decimal("0.01"))
                if value < Decimal("3000"):
                    continue
                try:
                    v = svc.issue(core, supplier, value, issue_day, issue_day + timedelta(days=90), docs, actor="demo")
                except IotfinError as exc:
                    refusals[f"issue: {type(exc).__name__}"] += 1
                    continue
                counts["issued"] += 1
                issued.append(v)
                (truth_fake if fake else genuine).add(v["id"])
                holder = Holder("enterprise", supplier)
                parts = svc.split(holder, v["parts"][0]["id"], [(value * Decimal("0.3")).quantize(Decimal("0.01"))] * 2, work_day)
                counts["splits"] += 1
                if tier2.get(supplier):
                    svc.transfer(holder, parts[0]["id"], rnd.choice(tier2[supplier]), work_day)
                    counts["transfers"] += 1
                first, second = rnd.sample(lenders, 2)
                offer = svc.offer(holder, parts[1]["id"], first, work_day)
                counts["offers"] += 1
                if rnd.random() < 0.5:  # injected: the same part offered to a second lender
                    double_offers["injected"] += 1
                    try:
                        svc.offer(holder, parts[1]["id"], second, work_day)
                    except Refused as exc:
                        double_offers["refused"] += 1
                        if exc.winner and exc.winner.get("lender_tenant_id") == first:
                            double_offers["refusal_names_first_lender"] += 1
                try:
                    decided = svc.decide(first, offer["id"], True, work_day)
                    counts["financed" if decided["status"] == "accepted" else "declined"] += 1
                except IotfinError as exc:
                    refusals[f"finance: {type(exc).__name__}"] += 1
                    svc.withdraw(holder, offer["id"])
    late_left = 0
    for i, v in enumerate(issued):
        if i % 5 == 4:
            late_left += 1
            continue
        svc.pay(v["issuer_id"], v["id"], v["amount"], issue_day + timedelta(days=90 + (i % 3)))
        counts["paid"] += 1
    flagged = {v["id"] for v in issued if svc.voucher(v["id"])["evidence_level"] == "mismatch"}
    tp, fp = len(flagged & truth_fake), len(flagged - truth_fake)
    late = svc.flag_late(today)
    at_risk = svc.at_risk(today)
    audit_ok = all(svc.audit(v["id"])["ok"] for v in issued)
    sample = issued[0]["id"] if issued else None
    return {
        "vouchers": dict(counts), "refusals": dict(refusals),
        "evidence_levels": {lvl: sum(svc.voucher(v["id"])["evidence_level"] == lvl for v in issued)
                            for lvl in ("documents", "documents+iot", "mismatch")},
        "fraud_evaluation": {
            "never_moved_delivery": {"injected": len(truth_fake), "flagged": len(flagged), "true_positive": tp,
                                     "false_positive": fp, "recall": round(tp / len(truth_fake), 3) if truth_fake else None,
                                     "precision": round(tp / len(flagged), 3) if flagged else None,
                                     "financed_despite_flag": sum(
                                         1 for e in (svc.chain_of_title(v) for v in flagged)
                                         for x in e if x["kind"] == "finance")},
            "double_offer": double_offers},
        "late": len(late), "left_unpaid": late_left, "maturity_at_risk": len(at_risk),
        "parts_tile_issue": audit_ok, "gl_balanced": ws.lending.trial_balance()["balanced"],
        "sample_voucher": sample,
        "core_ratings_assumed": assumed,
    }


def _rate_unrated_cores(ws: Workspace, cores: list[int], today: date) -> list[int]:
    """The demo's risk stage rates borrowers, not core enterprises. A core without a rating gets an
    assumed one (grade A, PD 0.02), labelled `demo:assumed-core-rating`, so the financing path runs;
    reported in the summary as assumed, never as a model output."""
    with ws.engine.begin() as conn:
        rated = {r[0] for r in conn.execute(select(CreditRating.enterprise_id)
                                            .where(CreditRating.enterprise_id.in_(cores))).all()}
        missing = [c for c in cores if c not in rated]
        if missing:
            conn.execute(insert(CreditRating), [
                {"enterprise_id": c, "lender": "demo", "purpose": "credit_assessment", "as_of": today,
                 "model_id": "demo:assumed-core-rating", "pd": 0.02, "score": 700.0, "grade": "A", "profile": {},
                 "reads": []} for c in missing])
    return missing
