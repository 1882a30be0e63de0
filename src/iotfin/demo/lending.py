"""The demo's lending step: book the approved offers, run the daily closes over the simulated calendar
with the simulator's repayment behaviour, report the portfolio and the trial balance.

The offers are the credit decisions the decisioning step approved just before
(`approved_offers_from_decisions`: amount, rate, tenor and product of each approval; a working-capital
approval opens a credit line drawn down twice). The decisions are taken at the end of the simulated
calendar over its whole history; the demo replays the servicing as if each approved offer had been
drawn on the enterprise's first financing date (or the calendar's first financing day). When nothing
was approved (a small test economy, or no risk model), it falls back to a fixed, documented price
list applied to the financing requests the registry accepted (`approved_offers_from_financing`) and
says so in the summary (`offers_source`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from iotfin.core.money import ZERO
from iotfin.decision.tables import CreditApplication, CreditDecision
from iotfin.financing.tables import Lien
from iotfin.lending import model as m
from iotfin.lending.disclosure import product_key_facts
from iotfin.lending.service import Offer
from iotfin.lending.tables import Loan

# The demo's fixed price list: asset financed -> (product, term in months, annual rate, advance rate).
DEMO_PRICING: dict[str, tuple[str, int, Decimal, Decimal]] = {
    "receivable": ("receivable-bullet", 3, Decimal("0.060000"), Decimal("0.80")),
    "warehouse_receipt": ("iot-term", 6, Decimal("0.072000"), Decimal("0.70")),
}
AGRICULTURE_SUBSIDY = Decimal("0.020000")  # 贴息 a local government pays on agricultural loans
MAX_DEMO_PRINCIPAL = Decimal("5000000.00")
LATE_PAYER_EVERY = 5  # every 5th loan booked (the 1st, 6th, ...) is paid 15 days late
LATE_DAYS = 15
ACCELERATE_AT_DPD = 90


def approved_offers_from_financing(ws: Any, ds: Any) -> list[tuple[Offer, date]]:
    """One offer per enterprise: its first financing request the registry accepted, priced by
    DEMO_PRICING (principal = advance rate × asset amount, to the yuan, at most 5 M), booked on the
    request date. Agricultural enterprises get the interest subsidy."""

    with ws.engine.connect() as conn:
        placed = {ref for (ref,) in conn.execute(select(Lien.financing_ref))}
    sectors = dict(zip(ds.table("enterprises")["enterprise_id"].to_pylist(),
                       ds.table("enterprises")["sector"].to_pylist(), strict=True))
    seen: set[int] = set()
    offers: list[tuple[Offer, date]] = []
    for req in ds.table("financing_requests").to_pylist():
        if f"REQ-{req['request_id']}" not in placed or req["enterprise_id"] in seen:
            continue
        seen.add(req["enterprise_id"])
        product, term, rate, advance = DEMO_PRICING[req["asset_type"]]
        principal = min(MAX_DEMO_PRINCIPAL, (Decimal(req["amount"]) * advance).quantize(Decimal("1")))
        if principal <= 0:
            continue
        subsidy = AGRICULTURE_SUBSIDY if sectors.get(req["enterprise_id"]) == "agriculture" else ZERO
        offers.append((Offer(req["enterprise_id"], product, principal, rate, term, subsidy), req["requested_on"]))
    return offers


LINE_DRAWDOWNS = ((0, Decimal("0.6")), (30, Decimal("0.3")))  # (days after opening, share of the limit)


def approved_offers_from_decisions(ws: Any, ds: Any) -> list[tuple[Offer, date]]:
    """The approved credit decisions, as offers: the last approving decision of each approved
    application (the strategy's, or the officers' in review), its amount, tenor and gross rate, the
    application's subsidy rate; for a credit line the principal is the limit. Drawn on the enterprise's
    first financing request date, else the calendar's first financing day."""
    from iotfin.decision.applications import PRODUCTS as DECISION_PRODUCTS  # each names the servicing product

    with ws.engine.connect() as conn:
        rows = conn.execute(
            select(CreditApplication.id, CreditApplication.enterprise_id, CreditApplication.product,
                   CreditApplication.inputs, CreditDecision.offered_amount, CreditDecision.tenor_months,
                   CreditDecision.rate)
            .join(CreditDecision, CreditDecision.application_id == CreditApplication.id)
            .where(CreditApplication.status == "approved", CreditDecision.decision.in_(("approve", "counter_offer")))
            .order_by(CreditApplication.id, CreditDecision.id)).all()
    last = {r[0]: r for r in rows}  # the latest approving decision of each application
    requests = ds.table("financing_requests").to_pylist()
    first_request: dict[int, date] = {}
    for req in sorted(requests, key=lambda r: r["requested_on"]):
        first_request.setdefault(int(req["enterprise_id"]), req["requested_on"])
    fallback_day = min(first_request.values(), default=None)
    offers: list[tuple[Offer, date]] = []
    for _, ent, product, inputs, amount, tenor, rate in last.values():
        on = first_request.get(int(ent), fallback_day)
        if on is None or amount is None or rate is None or product not in DECISION_PRODUCTS:
            continue
        subsidy = Decimal(str((inputs or {}).get("application", {}).get("subsidy_rate", "0")))
        annual = Decimal(rate).quantize(m.RATE_QUANTUM)
        offers.append((Offer(int(ent), DECISION_PRODUCTS[product].servicing, Decimal(amount), annual, int(tenor),
                             min(subsidy, annual).quantize(m.RATE_QUANTUM)), on))
    return offers


EXISTING_BOOK = "credit_decisions + existing_financings"


def offers_for_demo(ws: Any, ds: Any) -> tuple[list[tuple[Offer, date]], str]:
    """What the demo services, and where it comes from: the approved decisions' new digital loans plus
    the lender's existing book — the supply-chain financings the registry accepted over the simulated
    history, priced by DEMO_PRICING — of the enterprises without an approved decision (this is where
    the ground truth's defaults are: today's decisions decline most of yesterday's defaulters). With
    nothing approved, the existing book alone."""
    decided = approved_offers_from_decisions(ws, ds)
    existing = approved_offers_from_financing(ws, ds)
    if not decided:
        return existing, "fallback: no credit decision approved; fixed price list on accepted financing requests"
    new = {o.enterprise_id for o, _ in decided}
    return decided + [(o, on) for o, on in existing if o.enterprise_id not in new], EXISTING_BOOK


def defaults_from(ds: Any) -> dict[int, date]:
    defaults = ds.table("defaults")
    return dict(zip(defaults["enterprise_id"].to_pylist(), defaults["default_on"].to_pylist(), strict=True))


def demo_step(ws: Any, offers: Sequence[tuple[Offer, date]], end: date, defaults: Mapping[int, date],
              source: str = "offers given") -> dict[str, Any]:
    """Book `offers` on their dates, each with its key-facts statement signed (APR, total cost and the
    digests of the zh/en texts on the booking event) and the contract anchored; a credit-line offer opens
    the line and draws it down (LINE_DRAWDOWNS). Close every business day through `end`: borrowers pay what falls
    due on the day (every LATE_PAYER_EVERY-th loan LATE_DAYS late), defaulted enterprises stop
    paying from their default date (the simulator's ground truth); a defaulted borrower's loan is
    restructured once on request at 20 days past due (green channel) and accelerated at 90; the
    subsidy payer settles its receivable on the first of each month."""
    svc = ws.lending
    anchor, svc.anchor = svc.anchor, None  # contracts are anchored in one ledger batch at the end
    by_day: dict[date, list[Offer]] = {}
    for offer, start in offers:  # a credit-line offer opens the line on its day; its drawdowns follow
        by_day.setdefault(start, []).append(offer)
    stats: Counter[str] = Counter()
    paid = {"principal": ZERO, "interest": ZERO, "penalty": ZERO, "fee": ZERO}
    booked: list[int] = []
    relieved: set[int] = set()
    example: dict[str, Any] = {}
    try:
        if not offers:
            return {"loans_booked": 0, "offers_source": source}
        day = min(by_day)
        while day <= end:
            for offer in by_day.get(day, []):
                if m.product(offer.product).kind == "line" and offer.credit_line_id is None:
                    line = svc.open_line(offer.enterprise_id, offer.principal, offer.annual_rate,
                                         m.add_months(day, offer.term), offer.product, actor="demo")
                    stats["credit_lines_opened"] += 1
                    for after, share in LINE_DRAWDOWNS:
                        draw = Offer(offer.enterprise_id, offer.product, (offer.principal * share).quantize(m.FEN),
                                     offer.annual_rate, max(1, offer.term - after // 30), offer.subsidy_rate, line)
                        by_day.setdefault(day + timedelta(days=after), []).append(draw)
                    continue
                facts = product_key_facts(offer.product, offer.principal, offer.annual_rate, offer.term, day,
                                          offer.subsidy_rate)
                signed = {"key_facts": "zh-CN+en", "apr_gross": facts.apr_gross, "apr_net": facts.apr_net,
                          "total_cost": facts.total_cost, "signed_by": f"enterprise:{offer.enterprise_id}",
                          "signed_on": day, "sha256_zh": hashlib.sha256(facts.text_zh.encode()).hexdigest(),
                          "sha256_en": hashlib.sha256(facts.text_en.encode()).hexdigest()}
                ref = f"DEMO-{offer.enterprise_id}" + (f"-L{offer.credit_line_id}-{len(booked)}" if offer.credit_line_id else "")
                loan_id = svc.book(offer, day, actor="demo", contract_ref=ref, signed=signed)
                booked.append(loan_id)
                stats[f"booked_{offer.product}"] += 1
                stats["drawdowns"] += offer.credit_line_id is not None
                if not example:
                    example = {"loan_id": loan_id, "apr_gross": facts.apr_gross, "apr_net": facts.apr_net,
                               "key_facts_zh": facts.text_zh.splitlines()[:4],
                               "key_facts_en": facts.text_en.splitlines()[:4]}
            if booked:
                svc.close_day(day, simulate=True)  # the demo's calendar runs ahead of today
                stats["closes"] += 1
                _borrowers_act(svc, ws, day, defaults, stats, paid, relieved)
            day += timedelta(days=1)
    finally:
        svc.anchor = anchor
    if booked:  # the signed contracts, in one ledger batch, under a new signed checkpoint
        ws.ledger.anchor_from_source("loan_contract", [str(i) for i in booked], checkpoint=True)
    tb = svc.trial_balance()
    return {
        "offers_source": source, "offers": len(offers), "credit_lines_opened": stats["credit_lines_opened"],
        "drawdowns": stats["drawdowns"], "loans_booked": len(booked), "booked_by_product": {k[7:]: v for k, v in sorted(stats.items()) if k.startswith("booked_")},
        "principal_lent": _lent(ws), "business_days_closed": stats["closes"], "calendar_end": end,
        "repayments": stats["repayments"], "late_repayments": stats["late_repayments"], "repaid": paid,
        "subsidy_received": stats["subsidy_payments"], "defaulted_borrowers": stats["defaulted_borrowers"],
        "restructured": len(relieved), "accelerated": stats["accelerated"],
        **({} if source == "credit_decisions" else {"pricing": {  # the existing book's price list
            k: {"product": p, "term_months": t, "annual_rate": r, "advance_rate": a}
            for k, (p, t, r, a) in DEMO_PRICING.items()} | {"agriculture_subsidy_rate": AGRICULTURE_SUBSIDY}}),
        "portfolio": svc.portfolio(),
        "trial_balance": {"balanced": tb["balanced"], "total_debit": tb["total_debit"],
                          "accounts": {r["account"]: {"name_en": r["name_en"], "name_zh": r["name_zh"], "balance": r["balance"]}
                                       for r in tb["accounts"]}},
        "reconciled": svc.reconcile()["reconciled"],
        "key_facts_example": example,
    }


def _borrowers_act(svc: Any, ws: Any, day: date, defaults: Mapping[int, date], stats: Counter[str],
                   paid: dict[str, Decimal], relieved: set[int]) -> None:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(Loan.id, Loan.enterprise_id, Loan.dpd, Loan.principal_due, Loan.interest_due,
                                   Loan.fee_due, Loan.penalty_due, Loan.subsidy_due, Loan.principal_not_due)
                            .where(Loan.status == "active")).all()
    for loan_id, ent, dpd, p_due, i_due, f_due, pen_due, sub_due, not_due in rows:
        defaulted_on = defaults.get(ent)
        defaulted = defaulted_on is not None and day >= defaulted_on
        if sub_due and day.day == 1:
            svc.receive_subsidy(loan_id, sub_due, day, payer="subsidy-payer")
            stats["subsidy_payments"] += 1
        due = p_due + i_due + f_due + pen_due
        if defaulted:
            if dpd == 1:
                stats["defaulted_borrowers"] += 1
            if dpd == 20 and loan_id not in relieved and not_due + p_due > 0:
                svc.restructure(loan_id, day, 6, 2, reason="green-channel hardship request: sales collapsed",
                                actor="demo-officer")
                relieved.add(loan_id)
            elif dpd == ACCELERATE_AT_DPD and not_due > 0:
                svc.accelerate(loan_id, day, "borrower in default (ground truth): acceleration", actor="demo-monitor")
                stats["accelerated"] += 1
            continue
        if due <= 0:
            continue
        if loan_id % LATE_PAYER_EVERY == 1 and dpd < LATE_DAYS:
            continue
        result = svc.repay(loan_id, due, day, actor="demo-borrower")
        stats["repayments"] += 1
        stats["late_repayments"] += dpd > 0
        for k in paid:
            paid[k] += result[k]


def _lent(ws: Any) -> Decimal:
    with ws.engine.connect() as conn:
        total = sum((p for (p,) in conn.execute(select(Loan.principal))), ZERO)
    return total

