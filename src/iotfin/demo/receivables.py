"""The demo's voucher stage (issue 20): the simulator's digital debt voucher flows replayed through the
receivables service, and the injected voucher fraud evaluated against the simulator's ground truth.

The flows come from the simulator (`vouchers.parquet`, see `iotfin.sim.vouchers`): a core enterprise
issues each voucher to a tier-1 supplier against the order's PO / delivery note / invoice (IoT
evidence checked where the delivery note names a truck); the supplier splits it, passes a part to a
tier-2 supplier and offers a part to its chain's bank, who decides on the core's rating and the
evidence; the core pays on the simulated day, and what is still unpaid past maturity is flagged late.
The fraud the simulator injected (`ground_truth/voucher_fraud.parquet`) — a voucher against a delivery
note naming a truck that never moved, a part offered to a second bank while the first offer is
pending — must be caught: the evidence flagged `mismatch` (and never financed), the second offer
refused naming the first bank. `evaluate_voucher_fraud` reports injected against flagged / refused,
true and false positives, precision and recall for each kind.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from iotfin.app.workspace import Workspace
from iotfin.core.errors import IotfinError
from iotfin.receivables.model import Holder
from iotfin.receivables.service import Refused
from iotfin.risk.tables import CreditRating

SPLIT_SHARE = Decimal("0.3")  # the two parts split off (the supplier keeps the rest)
_STEP = {"issue": 0, "split": 1, "pay": 2}


def replay_vouchers(ws: Workspace, ds: Any, today: date, rate_cores: bool = True) -> dict[str, Any]:
    """Replay the simulator's voucher flows up to `today`, in day order; returns what happened to each
    voucher (`outcomes`, by the simulator's voucher_ref), counts and refusals."""
    svc = ws.receivables
    plans = sorted(ds.table("vouchers").to_pylist(), key=lambda p: p["voucher_ref"])
    cores = sorted({p["core_id"] for p in plans})
    assumed = _rate_unrated_cores(ws, cores, today) if rate_cores else []
    steps = [(p["issued_on"], _STEP["issue"], p["voucher_ref"]) for p in plans if p["issued_on"] <= today]
    steps += [(p["split_on"], _STEP["split"], p["voucher_ref"]) for p in plans
              if p["split_on"] is not None and p["split_on"] <= today]
    steps += [(p["paid_on"], _STEP["pay"], p["voucher_ref"]) for p in plans
              if p["paid_on"] is not None and p["paid_on"] <= today]
    by_ref = {p["voucher_ref"]: p for p in plans}
    counts: dict[str, int] = defaultdict(int)
    refusals: dict[str, int] = defaultdict(int)
    out: dict[int, dict[str, Any]] = {}
    for day, step, ref in sorted(steps):
        p, o = by_ref[ref], out.setdefault(ref, {"voucher_ref": ref})
        if step == _STEP["issue"]:
            docs = [p["purchase_order_id"], p["delivery_note_id"], p["invoice_id"]]
            try:
                v = svc.issue(p["core_id"], p["supplier_id"], p["amount"], day, p["matures_on"], docs, actor="sim")
            except IotfinError as exc:
                refusals[f"issue: {type(exc).__name__}"] += 1
                o["issue_refused"] = str(exc)
                continue
            counts["issued"] += 1
            o.update(voucher_id=v["id"], evidence_level=v["evidence_level"], part_id=v["parts"][0]["id"])
        elif step == _STEP["split"] and "voucher_id" in o:
            _work(svc, p, o, day, counts, refusals)
        elif step == _STEP["pay"] and "voucher_id" in o:
            v = svc.voucher(o["voucher_id"])
            owed = Decimal(v["amount"]) - Decimal(v["paid"])
            if v["status"] == "active" and owed > 0:
                svc.pay(p["core_id"], o["voucher_id"], owed, day)
                counts["paid"] += 1
                o["paid_late_days"] = max(0, (day - p["matures_on"]).days)
    return {"outcomes": out, "counts": dict(counts), "refusals": dict(refusals), "core_ratings_assumed": assumed}


def _work(svc: Any, p: dict[str, Any], o: dict[str, Any], day: date, counts: dict[str, int],
          refusals: dict[str, int]) -> None:
    """The supplier's day: split, pass a part to a tier-2 supplier, offer a part to its bank (and, where
    the simulator injected it, to a second bank while the first offer is pending); the bank decides."""
    holder = Holder("enterprise", p["supplier_id"])
    share = (Decimal(p["amount"]) * SPLIT_SHARE).quantize(Decimal("0.01"))
    try:
        parts = svc.split(holder, o["part_id"], [share, share], day)
    except IotfinError as exc:
        refusals[f"split: {type(exc).__name__}"] += 1
        return
    counts["splits"] += 1
    if p["transfer_to_id"] is not None:
        try:
            svc.transfer(holder, parts[0]["id"], p["transfer_to_id"], day)
            svc.accept(Holder("enterprise", p["transfer_to_id"]), parts[0]["id"], day)  # the receiver accepts (issue 20)
            counts["transfers"] += 1
        except IotfinError as exc:
            refusals[f"transfer: {type(exc).__name__}"] += 1
    try:
        offer = svc.offer(holder, parts[1]["id"], p["offer_lender_id"], day)
    except Refused as exc:  # a first offer refused would be a false positive of the double-offer check
        o["first_offer_refused"] = str(exc)
        return
    counts["offers"] += 1
    if p["second_lender_id"] is not None:
        o["second_offer"] = "accepted"
        try:
            svc.offer(holder, parts[1]["id"], p["second_lender_id"], day)
        except Refused as exc:
            o["second_offer"] = "refused"
            o["second_offer_names_first"] = bool(exc.winner and exc.winner.get("lender_tenant_id") == p["offer_lender_id"])
    try:
        decided = svc.decide(p["offer_lender_id"], offer["id"], True, day)
    except IotfinError as exc:
        refusals[f"finance: {type(exc).__name__}"] += 1
        svc.withdraw(holder, offer["id"])
        return
    o["financing"] = decided["status"]
    counts["financed" if decided["status"] == "accepted" else "declined"] += 1


def _score(injected: set[int], caught: set[int]) -> dict[str, Any]:
    tp, fp = len(caught & injected), len(caught - injected)
    return {"injected": len(injected), "caught": len(caught), "true_positive": tp, "false_positive": fp,
            "false_negative": len(injected - caught),
            "precision": round(tp / len(caught), 3) if caught else None,
            "recall": round(tp / len(injected), 3) if injected else None}


def evaluate_voucher_fraud(outcomes: dict[int, dict[str, Any]], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """The injected voucher fraud against what the platform caught, per kind: a voucher against a
    delivery that never moved is caught when its evidence is flagged `mismatch`; a part offered to two
    lenders when the second offer is refused. Only vouchers the replay reached count (issued by today
    for the first kind, worked by today for the second)."""
    fake = {t["voucher_ref"] for t in truth if t["fraud_type"] == "never_moved_delivery"}
    double = {t["voucher_ref"] for t in truth if t["fraud_type"] == "double_offer"}
    issued = {r for r, o in outcomes.items() if "voucher_id" in o}
    flagged = {r for r in issued if outcomes[r].get("evidence_level") == "mismatch"}
    offered = {r for r, o in outcomes.items() if "second_offer" in o or "first_offer_refused" in o or "financing" in o}
    refused = {r for r, o in outcomes.items() if o.get("second_offer") == "refused" or "first_offer_refused" in o}
    moved = _score(fake & issued, flagged)
    moved.update(flagged=moved.pop("caught"), issue_refused=len({r for r in fake if "issue_refused" in outcomes.get(r, {})}),
                 financed_despite_flag=sum(1 for r in flagged if outcomes[r].get("financing") == "accepted"))
    offers = _score(double & offered, refused)
    offers.update(refused=offers.pop("caught"),
                  refusal_names_first_lender=sum(1 for r in double if outcomes.get(r, {}).get("second_offer_names_first")))
    return {"never_moved_delivery": moved, "double_offer": offers}


def receivables_demo(ws: Workspace, ds: Any, today: date) -> dict[str, Any]:
    """The demo stage: replay, evaluate against the ground truth, flag late vouchers, list maturity at risk."""
    svc = ws.receivables
    if ds.table("vouchers").num_rows == 0:
        return {"skipped": "the simulated economy has no voucher flows"}
    replay = replay_vouchers(ws, ds, today)
    outcomes = replay["outcomes"]
    issued = [o for o in outcomes.values() if "voucher_id" in o]
    late = svc.flag_late(today)
    at_risk = svc.at_risk(today)
    levels: dict[str, int] = defaultdict(int)
    for o in issued:
        levels[o["evidence_level"]] += 1
    return {
        "vouchers": replay["counts"], "refusals": replay["refusals"],
        "simulated_flows": ds.table("vouchers").num_rows,
        "evidence_levels": {lvl: levels.get(lvl, 0) for lvl in ("documents", "documents+iot", "mismatch")},
        "fraud_evaluation": evaluate_voucher_fraud(outcomes, ds.table("voucher_fraud").to_pylist()),
        "late": len(late), "left_unpaid": sum(1 for o in issued if "paid_late_days" not in o),
        "maturity_at_risk": len(at_risk),
        "parts_tile_issue": all(svc.audit(o["voucher_id"])["ok"] for o in issued),
        "gl_balanced": ws.lending.trial_balance()["balanced"],
        "sample_voucher": issued[0]["voucher_id"] if issued else None,
        "core_ratings_assumed": replay["core_ratings_assumed"],
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
