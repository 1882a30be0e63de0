"""The receivables context's ports (iotfin.receivables.ports), filled from the contexts that own the
data: supply-chain documents and relationships, telemetry (IoT delivery evidence), risk's latest
rating, lending (the discount loan, the GL), the financing registry (the lien on a voucher range) and
the ledger. Every write port works in the voucher operation's own transaction."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, select

from iotfin.core.errors import ValidationError
from iotfin.core.money import to_money
from iotfin.core.time import day_start_ms
from iotfin.financing import store as fstore
from iotfin.financing.model import AssetKey
from iotfin.financing.service import DoubleFinancing, LienView
from iotfin.identity.access import set_owner_in
from iotfin.identity.tables import Site
from iotfin.lending import model as lm
from iotfin.lending import store as lstore
from iotfin.lending.service import LendingService, Offer
from iotfin.receivables.ports import Evidence
from iotfin.risk import store as rstore
from iotfin.supplychain.store import trade_document_records
from iotfin.supplychain.tables import Relationship
from iotfin.telemetry.store import TelemetryStore

GEOFENCE_KM = 2.0  # a delivery "reached the buyer" when the truck came this close to one of its sites


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(min(1.0, a)))


class SupplyChainEvidence:
    """Match PO, delivery note and invoice; then, where the delivery note names a truck, check its GPS
    track around the delivery day. A named truck whose track never moved is an evidence mismatch; a
    track that moved and came within GEOFENCE_KM of a buyer's site confirms the delivery
    (documents+iot); one that moved but was never seen at the buyer leaves the level at documents,
    with the check recorded."""

    def __init__(self, telemetry: TelemetryStore | None):
        self.telemetry = telemetry

    def __call__(self, conn: Connection, issuer_id: int, supplier_id: int, document_ids: Sequence[int],
                 amount_fen: int) -> Evidence:
        docs = trade_document_records(conn, [str(i) for i in document_ids]) if document_ids else {}
        missing = [i for i in document_ids if str(i) not in docs]
        if missing:
            raise ValidationError(f"no trade document {missing[0]}", field="document_ids")
        by_type: dict[str, list[dict[str, Any]]] = {}
        for d in docs.values():
            by_type.setdefault(d["doc_type"], []).append(d)
        need = [t for t in ("purchase_order", "delivery_note", "invoice") if t not in by_type]
        if need:
            raise ValidationError(f"a voucher needs matched trade documents: missing {', '.join(need)} "
                                  "(缺少采购订单、送货单或发票)", field="document_ids")
        for d in docs.values():
            if (d["seller_id"], d["buyer_id"]) != (supplier_id, issuer_id):
                raise ValidationError(f"trade document {d['id']} is between {d['seller_id']} and {d['buyer_id']}, not "
                                      f"supplier {supplier_id} and issuer {issuer_id} (单据买卖双方不符)",
                                      field="document_ids")
        po = by_type["purchase_order"][0]
        order = po["order_id"] or po["id"]
        stray = [d["id"] for d in docs.values() if (d["order_id"] or d["id"]) != order]
        if stray:
            raise ValidationError(f"trade documents {stray} belong to another order than {order} (单据不属于同一订单)",
                                  field="document_ids")
        invoiced = sum((to_money(d["amount"]) for d in by_type["invoice"]), Decimal(0))
        if int(invoiced * 100) < amount_fen:
            raise ValidationError(f"the voucher {Decimal(amount_fen) / 100} is more than invoiced {invoiced} "
                                  "(凭证金额超过发票金额)", field="amount")
        detail: dict[str, Any] = {"order_id": order, "documents": sorted(int(i) for i in document_ids),
                                  "invoiced": str(invoiced), "iot": []}
        trucks = [d for d in by_type["delivery_note"] if d.get("vehicle_device_id")]
        if not trucks or self.telemetry is None:
            return Evidence("documents", detail)
        sites = conn.execute(select(Site.lat, Site.lon).where(Site.enterprise_id == issuer_id)).all()
        checks = []
        for dn in trucks:
            check = self._track(int(dn["vehicle_device_id"]), dn["issued_on"], sites)
            detail["iot"].append({"delivery_note": dn["id"], **check})
            checks.append(check)
        if any(not c["moved"] for c in checks):
            return Evidence("mismatch", detail)  # a named truck that never moved: the delivery did not happen
        if all(c["reached_buyer"] for c in checks):
            return Evidence("documents+iot", detail)
        return Evidence("documents", detail)  # moved, but not seen at the buyer: IoT inconclusive (recorded)

    def _track(self, device_id: int, day: date, sites: Sequence[Any]) -> dict[str, Any]:
        assert self.telemetry is not None
        start, end = day_start_ms(day - timedelta(days=1)), day_start_ms(day + timedelta(days=2))
        lat = self.telemetry.series(device_id, "lat", start, end).column("value").to_pylist()
        lon = self.telemetry.series(device_id, "lon", start, end).column("value").to_pylist()
        points = [(float(a), float(b)) for a, b in zip(lat, lon, strict=False) if a is not None and b is not None]
        if not points:
            return {"device_id": device_id, "points": 0, "moved": False, "reached_buyer": False}
        span = max(_km(points[0][0], points[0][1], a, b) for a, b in points)
        nearest = min((_km(a, b, s.lat, s.lon) for a, b in points for s in sites), default=None)
        return {"device_id": device_id, "points": len(points), "moved": span > 0.5, "max_km_from_start": round(span, 3),
                "reached_buyer": nearest is not None and nearest <= GEOFENCE_KM,
                "nearest_buyer_site_km": None if nearest is None else round(nearest, 3)}


_R = Relationship.__table__
# Built once (supplychain.store.relationships_of builds its query per call): a transfer runs this on
# its hot path, and building the statement cost more than running it (bench/receivables_ops.py profile).
# two fixed parameters, not an expanding IN: that is re-rendered at every execution (SQLAlchemy's
# post-compile step), which cost more than the query on every transfer
_RELATIONSHIPS_OF_TWO = select(_R.c.supplier_id, _R.c.buyer_id, _R.c.core_enterprise_id).where(
    (_R.c.supplier_id == bindparam("a")) | (_R.c.supplier_id == bindparam("b"))
    | (_R.c.buyer_id == bindparam("a")) | (_R.c.buyer_id == bindparam("b")))


def in_one_chain(conn: Connection, a: int, b: int) -> bool:
    """a and b trade with each other, or share a core enterprise (the holder's own supply chain)."""
    rows = conn.execute(_RELATIONSHIPS_OF_TWO, {"a": a, "b": b}).all()
    cores_a = {r.core_enterprise_id for r in rows if a in (r.supplier_id, r.buyer_id)} | {a}
    cores_b = {r.core_enterprise_id for r in rows if b in (r.supplier_id, r.buyer_id)} | {b}
    direct = any({r.supplier_id, r.buyer_id} == {a, b} for r in rows)
    return direct or bool(cores_a & cores_b)


def latest_rating(conn: Connection, enterprise_id: int) -> tuple[str, float] | None:
    row = rstore.latest(conn, enterprise_id)
    return None if row is None else (str(row["grade"]), float(row["pd"]))


class LendingDiscountLoans:
    """The discount loan on the receivable product, booked and settled in the voucher's transaction."""

    PRODUCT = "receivable-bullet"

    def __init__(self, lending: LendingService, anchor: Callable[[Connection, str], None] | None = None):
        self.lending = lending
        self.anchor = anchor

    def book(self, conn: Connection, *, enterprise_id: int, lender_tenant_id: int, principal: Decimal,
             annual_rate: Decimal, start: date, months: int, ref: str) -> int:
        lm.product(self.PRODUCT).check_ranges(principal, months, annual_rate)
        offer = Offer(enterprise_id, self.PRODUCT, principal, annual_rate, months)
        loan_id = self.lending.book_in(conn, offer, start, actor=f"lender:{lender_tenant_id}", contract_ref=ref[:100],
                                       lender_tenant_id=lender_tenant_id)
        set_owner_in(conn, "loan", loan_id, lender_tenant_id, enterprise_id)
        if self.anchor is not None:
            self.anchor(conn, str(loan_id))
        return loan_id

    def settle(self, conn: Connection, loan_id: int, amount: Decimal, on: date) -> Decimal:
        return self.lending.repay_up_to_payoff_in(conn, loan_id, amount, on, actor="voucher-payment")


class RegistryLiens:
    """One lien per voucher range in the financing registry (kind receivable; the range is its identity)."""

    def __init__(self, anchor: Callable[[Connection, str], None] | None = None):
        self.anchor = anchor

    def place(self, conn: Connection, *, voucher_number: str, start_fen: int, end_fen: int, issuer_id: int,
              lender_tenant_id: int, amount: Decimal, ref: str) -> int:
        key = AssetKey("receivable", (("voucher", voucher_number), ("start_fen", str(start_fen)),
                                      ("end_fen", str(end_fen))))
        now = datetime.now(UTC)
        asset_id = fstore.asset_id_of(conn, key.fingerprint)
        if asset_id is None:
            asset_id = fstore.insert_asset(conn, kind=key.kind, fingerprint=key.fingerprint, identity=key.as_dict(),
                                           enterprise_id=issuer_id, document_id=None, created_at=now)
        active = fstore.active_lien_id(conn, int(asset_id))
        if active is not None:
            raise DoubleFinancing(LienView(*fstore.lien(conn, int(active))))  # type: ignore[misc]
        lien_id = int(fstore.insert_lien(conn, asset_id=int(asset_id), tenant_id=lender_tenant_id, financing_ref=ref[:100],
                                         amount=amount, status="active", registration_no=None, registered_at=None,
                                         notice_at=None, placed_at=now))
        fstore.insert_attempt(conn, asset_id=int(asset_id), tenant_id=lender_tenant_id, financing_ref=ref[:100],
                              amount=amount, outcome="placed", lien_id=lien_id, attempted_at=now)
        if self.anchor is not None:
            self.anchor(conn, str(lien_id))
        return lien_id

    def release(self, conn: Connection, lien_id: int, reason: str) -> None:
        fstore.release_lien(conn, lien_id, released_at=datetime.now(UTC), reason=reason)
        if self.anchor is not None:
            self.anchor(conn, str(lien_id))


def gl_settlement(conn: Connection, on: date, collected: Decimal, paid_out: Sequence[Decimal], memo: str) -> None:
    """The collection from the core enterprise into clearing, and one payout per holder out of it."""
    entries = [lm.journal("voucher_collection", on, {"amount": collected}, memo=memo)]
    entries += [lm.journal("voucher_payout", on, {"amount": amount}, memo=memo) for amount in paid_out]
    lstore.post(conn, [e for e in entries if e is not None])
