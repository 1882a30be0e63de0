"""Digital debt voucher flows (数字债权凭证, issue 20) along the simulated supply chains, with injected
fraud and its ground truth.

A core enterprise confirms what it owes a tier-1 supplier for a delivered, invoiced order by issuing a
voucher some days after the invoice; the supplier splits it (two parts of 30 %, the rest kept), passes
one part to one of its own tier-2 suppliers, and offers another to its chain's bank. At maturity the
core pays — late by `Poisson(30·σ(−3(h + 0.5)))` days, the trade model's lateness at the core's health
then — or, when that day is past the horizon, the voucher is still unpaid at its end.

Two kinds of fraud are injected, with ground truth (`ground_truth/voucher_fraud.parquet`):

- `never_moved_delivery`: per chain, one voucher against a fabricated order whose delivery note names
  one of the supplier's trucks that stayed at its depot from the day before to two days after. The documents are written as trade
  documents and as a `fabricated_trade` incident (detail `voucher_fraud: true`) — they are fabricated
  trade — but not financed through the invoice registry: they exist to obtain the voucher.
- `double_offer`: about 30 % of offered parts are offered to a second bank while the first offer is
  pending.

The flows are written as `vouchers.parquet`, one row per voucher with the day of each step; the demo
and the evaluation replay them through the receivables service. Deterministic per seed: two streams of
their own (`voucher-fakes`, `voucher-flows`), so the rest of the economy draws exactly what it did.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from iotfin.sim.config import SimConfig, rng

MONEY = pa.decimal128(18, 2)
SUPPLIERS_PER_CORE = 4  # tier-1 suppliers per chain that take vouchers
VOUCHERS_PER_SUPPLIER = 2
MIN_VOUCHER_FEN = 3_000_00  # two 30 % parts and the rest stay above the 100-yuan minimum part
MAX_VOUCHER_FEN = 2_000_000_00
TERMS_DAYS = (60, 90, 120)  # within the six-month rule
DOUBLE_OFFER_P = 0.3
FRAUD_TYPES = ("never_moved_delivery", "double_offer")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + float(np.exp(-x)))


def _tier1_links(ent: Any) -> dict[int, list[int]]:
    """core (0-based index) -> its tier-1 suppliers (0-based), in index order."""
    tier = np.asarray(ent.relationships["tier"].to_numpy())
    out: dict[int, list[int]] = {}
    for s, b, t in zip(ent.rel_supplier.tolist(), ent.rel_buyer.tolist(), tier.tolist(), strict=True):
        if t == 1 and ent.role[b] == "core":
            out.setdefault(int(b), []).append(int(s))
    return {c: sorted(set(v)) for c, v in sorted(out.items())}


def _tier2_of(ent: Any) -> dict[int, list[int]]:
    """tier-1 supplier -> the tier-2 suppliers selling to it."""
    tier = np.asarray(ent.relationships["tier"].to_numpy())
    out: dict[int, list[int]] = {}
    for s, b, t in zip(ent.rel_supplier.tolist(), ent.rel_buyer.tolist(), tier.tolist(), strict=True):
        if t == 2 and ent.role[s] == "supplier":
            out.setdefault(int(b), []).append(int(s))
    return {k: sorted(set(v)) for k, v in out.items()}


def inject_fake_deliveries(cfg: SimConfig, ent: Any, trade: Any, trips: dict[str, np.ndarray],
                           trucks_of: dict[int, np.ndarray], commodity_of: Any, incidents: Any) -> list[dict[str, Any]]:
    """Per chain, one fabricated order (PO, delivery note naming an idle truck of the supplier, invoice)
    between a tier-1 supplier with trucks and its core; returned for `flows`, and recorded as a
    `fabricated_trade` incident. Must run before the trade documents get their ids."""
    r = rng(cfg, "voucher-fakes")
    fakes: list[dict[str, Any]] = []
    if cfg.days < 8:
        return fakes
    carried = [(int(v), int(d)) for v, d in zip(trade.cols["vehicle"], trade.cols["day"], strict=True) if v is not None]
    carried_by = np.array([v for v, _ in carried], np.int64)  # device id of the truck of each delivery
    carried_on = np.array([d for _, d in carried], np.int64)
    for core, suppliers in _tier1_links(ent).items():
        with_trucks = [s for s in suppliers if s in trucks_of]
        if not with_trucks:
            continue
        seller = int(with_trucks[int(r.integers(0, len(with_trucks)))])
        own = trucks_of[seller]
        # The truck named stays at its depot from the day before to two days after (it is in the yard,
        # under repair, ...): a truck that carries none of the real deliveries of those days.
        day = int(r.integers(2, cfg.days - 3))
        busy = set(carried_by[(carried_on >= day - 1) & (carried_on <= day + 2)].tolist())
        free = [int(k) for k in own if int(trips["device"][k]) + 1 not in busy]
        if not free:
            continue
        k = free[int(r.integers(0, len(free)))]
        trips["on"][k, day - 1:day + 3] = False
        commodity, price = commodity_of(seller)
        amount = int(max(MIN_VOUCHER_FEN, min(MAX_VOUCHER_FEN,
                                             r.lognormal(np.log(60_000), 0.5) * ent.size[seller] ** 0.5 * 100)))
        qty = round(amount / 100 / price, 3)
        chain = int(ent.chain[core])
        po = trade.add(1, doc_type="purchase_order", chain=chain, seller=seller, buyer=core, day=day - 2,
                       amount_fen=amount, commodity=commodity, quantity=qty, fabricated=True)
        trade.cols["order"][po[0]] = int(po[0])
        dn = trade.add(1, doc_type="delivery_note", chain=chain, seller=seller, buyer=core, order=[int(po[0])], day=day,
                       amount_fen=amount, commodity=commodity, quantity=qty, vehicle=int(trips["device"][k] + 1),
                       fabricated=True)
        inv_day = day + 1
        iv = trade.add(1, doc_type="invoice", chain=chain, seller=seller, buyer=core, order=[int(po[0])], day=inv_day,
                       due_day=[inv_day + 90], amount_fen=amount, commodity=commodity, quantity=qty, fabricated=True)
        rows = [int(po[0]), int(dn[0]), int(iv[0])]
        incidents.rows.append({"incident_type": "fabricated_trade", "enterprise_id": seller + 1, "device_id": None,
                               "_doc_rows": rows, "start_ts": cfg.local_midnight_ms(day - 2), "end_ts": None,
                               "detail": None, "_buyer": core + 1, "_voucher": True})
        fakes.append({"core": core, "supplier": seller, "rows": rows, "invoice_day": inv_day, "amount_fen": amount,
                      "truck": int(trips["device"][k] + 1), "truck_row": k, "delivery_day": day})
    return fakes


def flows(cfg: SimConfig, ent: Any, trade: Any, health: np.ndarray, trips: dict[str, np.ndarray],
          fakes: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table]:
    """(vouchers table, voucher fraud ground truth). Runs after the documents have ids and after every
    incident that changes trips (so the ground truth can say whether a fake's truck stayed idle)."""
    r = rng(cfg, "voucher-flows")
    c = trade.cols
    assert trade.ids is not None
    # Delivered and invoiced orders, by (seller, buyer): row of each document kind.
    orders: dict[int, dict[str, int]] = {}
    for row, kind in enumerate(c["doc_type"]):
        if kind in ("purchase_order", "delivery_note", "invoice") and not c["fabricated"][row] and c["order"][row] is not None:
            orders.setdefault(int(c["order"][row]), {})[kind] = row
    by_link: dict[tuple[int, int], list[int]] = {}
    for po_row, docs in sorted(orders.items()):
        if len(docs) == 3:
            by_link.setdefault((int(c["seller"][po_row]), int(c["buyer"][po_row])), []).append(po_row)
    tier2 = _tier2_of(ent)
    fake_of_core = {f["core"]: f for f in fakes}
    plans: list[dict[str, Any]] = []
    for core, suppliers in _tier1_links(ent).items():
        chosen = [suppliers[i] for i in sorted(r.choice(len(suppliers), min(SUPPLIERS_PER_CORE, len(suppliers)),
                                                        replace=False))]
        for supplier in chosen:
            candidates = [po for po in by_link.get((supplier, core), [])
                          if MIN_VOUCHER_FEN <= int(c["amount_fen"][orders[po]["invoice"]])]
            if not candidates:
                continue
            pick = sorted(r.choice(len(candidates), min(VOUCHERS_PER_SUPPLIER, len(candidates)), replace=False))
            for i in pick:
                docs = orders[candidates[int(i)]]
                plans.append({"core": core, "supplier": supplier, "rows": [docs[k] for k in
                                                                            ("purchase_order", "delivery_note", "invoice")],
                              "invoice_day": int(c["day"][docs["invoice"]]),
                              "amount_fen": min(int(c["amount_fen"][docs["invoice"]]), MAX_VOUCHER_FEN), "fake": None})
        if core in fake_of_core:
            f = fake_of_core[core]
            plans.append({"core": core, "supplier": f["supplier"], "rows": f["rows"], "invoice_day": f["invoice_day"],
                          "amount_fen": f["amount_fen"], "fake": f})
    out: dict[str, list[Any]] = {k: [] for k in (
        "voucher_ref", "core_id", "supplier_id", "purchase_order_id", "delivery_note_id", "invoice_id", "amount",
        "issued_on", "matures_on", "split_on", "transfer_to_id", "offer_lender_id", "second_lender_id", "paid_on")}
    truth: dict[str, list[Any]] = {k: [] for k in ("voucher_ref", "fraud_type", "enterprise_id", "day", "detail")}
    banks = list(range(2, 6))  # tenant ids of the four banks (the simulator's tenants table)
    ref = 0
    for plan in sorted(plans, key=lambda p: (p["invoice_day"], p["core"], p["supplier"], p["rows"][0])):
        issue = plan["invoice_day"] + 1 + int(r.poisson(2.0))
        term = int(r.choice(TERMS_DAYS))
        split = issue + 1 + int(r.poisson(3.0))
        second = r.random() < DOUBLE_OFFER_P
        t2 = tier2.get(plan["supplier"], [])
        to = t2[int(r.integers(0, len(t2)))] if t2 else None
        lender = int(ent.lender_idx[plan["supplier"]]) + 1
        other = [b for b in banks if b != lender]
        second_lender = int(other[int(r.integers(0, len(other)))]) if second else None
        mature = issue + term
        h = float(health[plan["core"], min(mature, cfg.days - 1)])
        pay = mature + int(r.poisson(30 * _sigmoid(-3.0 * (h + 0.5))))
        if issue >= cfg.days:
            continue  # after the horizon: not issued within it
        ref += 1
        ids = [int(trade.ids[x]) for x in plan["rows"]]
        out["voucher_ref"].append(ref)
        out["core_id"].append(plan["core"] + 1)
        out["supplier_id"].append(plan["supplier"] + 1)
        out["purchase_order_id"].append(ids[0])
        out["delivery_note_id"].append(ids[1])
        out["invoice_id"].append(ids[2])
        out["amount"].append(Decimal(plan["amount_fen"]).scaleb(-2))
        out["issued_on"].append(cfg.day(issue))
        out["matures_on"].append(cfg.day(mature))
        out["split_on"].append(cfg.day(split) if split < cfg.days else None)
        out["transfer_to_id"].append(None if to is None else to + 1)
        out["offer_lender_id"].append(lender)
        out["second_lender_id"].append(second_lender)
        out["paid_on"].append(cfg.day(pay) if pay < cfg.days else None)
        fake = plan["fake"]
        if fake is not None:
            truth["voucher_ref"].append(ref)
            truth["fraud_type"].append("never_moved_delivery")
            truth["enterprise_id"].append(plan["supplier"] + 1)
            truth["day"].append(cfg.day(issue))
            d = fake["delivery_day"]
            idle = not bool(trips["on"][fake["truck_row"], d - 1:d + 3].any())
            truth["detail"].append(json.dumps({"document_ids": ids, "truck_device_id": fake["truck"],
                                               "delivery_day": cfg.day(fake["delivery_day"]).isoformat(),
                                               "truck_stayed_idle": idle}, sort_keys=True))
        if second_lender is not None and split < cfg.days:
            truth["voucher_ref"].append(ref)
            truth["fraud_type"].append("double_offer")
            truth["enterprise_id"].append(plan["supplier"] + 1)
            truth["day"].append(cfg.day(split))
            truth["detail"].append(json.dumps({"first_lender_id": lender, "second_lender_id": second_lender},
                                              sort_keys=True))
    i64, date32 = pa.int64(), pa.date32()
    table = pa.table({
        "voucher_ref": pa.array(out["voucher_ref"], i64), "core_id": pa.array(out["core_id"], i64),
        "supplier_id": pa.array(out["supplier_id"], i64), "purchase_order_id": pa.array(out["purchase_order_id"], i64),
        "delivery_note_id": pa.array(out["delivery_note_id"], i64), "invoice_id": pa.array(out["invoice_id"], i64),
        "amount": pa.array(out["amount"], MONEY), "issued_on": pa.array(out["issued_on"], date32),
        "matures_on": pa.array(out["matures_on"], date32), "split_on": pa.array(out["split_on"], date32),
        "transfer_to_id": pa.array(out["transfer_to_id"], i64), "offer_lender_id": pa.array(out["offer_lender_id"], i64),
        "second_lender_id": pa.array(out["second_lender_id"], i64), "paid_on": pa.array(out["paid_on"], date32)})
    ground = pa.table({
        "voucher_ref": pa.array(truth["voucher_ref"], i64), "fraud_type": pa.array(truth["fraud_type"], pa.string()),
        "enterprise_id": pa.array(truth["enterprise_id"], i64), "day": pa.array(truth["day"], date32),
        "detail": pa.array(truth["detail"], pa.string())})
    return table, ground
