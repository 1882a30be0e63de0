"""A small supply chain for the voucher tests: a core enterprise, a tier-1 supplier, two tier-2
suppliers, an outsider, two lenders, matched trade documents and a rating of the core enterprise."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

from iotfin.app.workspace import Workspace
from iotfin.core.time import BUSINESS_TZ, utc_now
from iotfin.identity.tables import Tenant
from iotfin.receivables.model import Holder
from iotfin.risk.tables import CreditRating
from iotfin.supplychain.tables import ChainMember, Relationship, SupplyChain, TradeDocument
from tests.lending.conftest import make_enterprises

TODAY = date(2026, 3, 2)


@dataclass
class World:
    core: int
    tier1: int
    tier2a: int
    tier2b: int
    outsider: int
    lenders: dict[str, int]
    docs: list[int]
    extra_docs: list[list[int]] = field(default_factory=list)


def documents(engine: Engine, seller: int, buyer: int, amount: str, on: date = TODAY) -> list[int]:
    """A purchase order, its delivery note and invoice: one matched set."""
    with engine.begin() as conn:
        po = conn.execute(insert(TradeDocument).values(doc_type="purchase_order", seller_id=seller, buyer_id=buyer,
                                                       issued_on=on, amount=Decimal(amount))).inserted_primary_key[0]
        ids = [po]
        for doc_type in ("delivery_note", "invoice"):
            ids.append(conn.execute(insert(TradeDocument).values(
                doc_type=doc_type, seller_id=seller, buyer_id=buyer, order_id=po, issued_on=on, amount=Decimal(amount),
                invoice_code="370226123451" if doc_type == "invoice" else None,
                invoice_number=f"{po:08d}" if doc_type == "invoice" else None)).inserted_primary_key[0])
        return [int(i) for i in ids]


def build(ws: Workspace, *, pd: float = 0.02, lenders: int = 2) -> World:
    core, tier1, tier2a, tier2b, outsider = make_enterprises(ws.engine, 5)
    with ws.engine.begin() as conn:
        codes = [f"bank-{chr(97 + i)}" for i in range(lenders)]
        conn.execute(insert(Tenant), [{"code": c, "name": c, "name_en": c, "kind": "bank"} for c in codes])
        if conn.execute(select(Tenant.id).where(Tenant.code == "ops")).first() is None:
            conn.execute(insert(Tenant), [{"code": "ops", "name": "ops", "name_en": "ops", "kind": "platform"}])
        chain = conn.execute(insert(SupplyChain).values(core_enterprise_id=core, name="chain")).inserted_primary_key[0]
        conn.execute(insert(ChainMember), [
            {"chain_id": chain, "enterprise_id": core, "role": "core", "tier": 0},
            {"chain_id": chain, "enterprise_id": tier1, "role": "supplier", "tier": 1},
            {"chain_id": chain, "enterprise_id": tier2a, "role": "supplier", "tier": 2},
            {"chain_id": chain, "enterprise_id": tier2b, "role": "supplier", "tier": 2}])
        conn.execute(insert(Relationship), [
            {"chain_id": chain, "core_enterprise_id": core, "supplier_id": tier1, "buyer_id": core, "tier": 1,
             "since": date(2020, 1, 1)},
            {"chain_id": chain, "core_enterprise_id": core, "supplier_id": tier2a, "buyer_id": tier1, "tier": 2,
             "since": date(2021, 1, 1)},
            {"chain_id": chain, "core_enterprise_id": core, "supplier_id": tier2b, "buyer_id": tier1, "tier": 2,
             "since": date(2021, 1, 1)}])
        conn.execute(insert(CreditRating).values(
            enterprise_id=core, lender="bank-a", purpose="credit_assessment", as_of=TODAY, model_id="test",
            pd=pd, score=700.0, grade="A" if pd < 0.05 else "C", profile={}, reads=[]))
        lender_ids = dict(conn.execute(select(Tenant.code, Tenant.id).where(Tenant.code.in_(codes))).all())
    docs = documents(ws.engine, tier1, core, "1000000.00")
    return World(core, tier1, tier2a, tier2b, outsider, lender_ids, docs)


@dataclass
class History:
    world: World
    today: date
    docs: list[int]


def voucher_history(ws: Workspace) -> History:
    """A receivables history laid out around today (a transfer is dated the day it is recorded): two
    vouchers to tier 1 paid, one on its maturity and one five days late, and a running one whose
    split-off part tier 1 passed to tier 2a today. For the transaction-credit features."""
    w = build(ws)
    svc = ws.receivables
    d = utc_now().astimezone(BUSINESS_TZ).date()
    docs = documents(ws.engine, w.tier1, w.core, "1000000.00", d - timedelta(days=110))
    late = svc.issue(w.core, w.tier1, "100000.00", d - timedelta(days=100), d - timedelta(days=10), docs)
    ok = svc.issue(w.core, w.tier1, "20000.00", d - timedelta(days=99), d - timedelta(days=20), docs)
    svc.pay(w.core, ok["id"], "20000.00", d - timedelta(days=20))  # on the day
    svc.pay(w.core, late["id"], "100000.00", d - timedelta(days=5))  # five days late
    running = svc.issue(w.core, w.tier1, "60000.00", d - timedelta(days=30), d + timedelta(days=30), docs)
    h = Holder("enterprise", w.tier1)
    part, _ = svc.split(h, running["parts"][0]["id"], ["30000.00"], d)
    svc.transfer(h, part["id"], w.tier2a, d)
    svc.accept(Holder("enterprise", w.tier2a), part["id"], d)
    return History(w, d, docs)


def client_for(ws: Workspace, app_client: TestClient, scopes: str, *, tenant: str | None = None,
               enterprise_id: int | None = None) -> TestClient:
    """A TestClient of the same app with its own bearer token."""
    cred = ws.identity.create_client("voucher tests", scopes, tenant=tenant, enterprise_id=enterprise_id)
    token = app_client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                                  "client_secret": cred["client_secret"]}).json()["access_token"]
    c = TestClient(app_client.app)
    c.headers["Authorization"] = f"Bearer {token}"
    return c


def tier2_suppliers(ws: Workspace, world: World, n: int) -> list[int]:
    """n more tier-2 suppliers selling to the tier-1 supplier (receivers of its transfers)."""
    ids = make_enterprises(ws.engine, n)
    with ws.engine.begin() as conn:
        chain = conn.execute(select(SupplyChain.id).where(SupplyChain.core_enterprise_id == world.core)).scalar_one()
        conn.execute(insert(Relationship), [
            {"chain_id": chain, "core_enterprise_id": world.core, "supplier_id": e, "buyer_id": world.tier1, "tier": 2,
             "since": date(2022, 1, 1)} for e in ids])
    return ids
