"""API endpoints added for the console's officer pages (issue 19): an officer's alert inbox
(`assigned_to`), an enterprise's trade documents (consent-checked for a lender) and the liens on its
assets, the four-eyes amount on an application, and a bucket's last reading in telemetry reads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import insert, select

from iotfin.decision.applications import Application
from iotfin.financing.tables import FinanceableAsset, Lien
from iotfin.identity.access import set_owner
from iotfin.identity.tables import Tenant
from iotfin.monitor.tables import MonitorAlert
from iotfin.supplychain.tables import TradeDocument
from tests.decision.conftest import assessment
from tests.openapi_world import World, world  # noqa: F401  (fixture)

AT = datetime(2026, 3, 1, tzinfo=UTC)


def _bank_a(world: World) -> int:  # noqa: F811
    with world.ws.engine.connect() as conn:
        return int(conn.execute(select(Tenant.id).where(Tenant.code == "bank-a")).scalar_one())


def test_alerts_assigned_to_one_officer(world: World) -> None:  # noqa: F811
    ws = world.ws
    with ws.engine.begin() as conn:
        conn.execute(
            insert(MonitorAlert),
            [
                dict(
                    id=i,
                    enterprise_id=1,
                    incident_type="device_dark",
                    tier="watch",
                    status="open",
                    rule="r",
                    rules_version="t",
                    reason_zh="设备失联",
                    reason_en="device dark",
                    opened_at=AT,
                    updated_at=AT,
                )
                for i in range(1, 4)
            ],
        )
    set_owner(ws.engine, "application", 1, _bank_a(world), 1)
    world.http.post(
        "/api/v1/consents",
        headers=world.headers("ent_1"),
        json={
            "enterprise_id": 1,
            "recipient": "bank-a",
            "purpose": "post_loan_monitoring",
            "scopes": ["alerts"],
            "window_start": "2020-01-01",
        },
    ).raise_for_status()
    for alert, officer in ((1, "li"), (3, "zhao")):
        r = world.http.post(
            f"/api/v1/monitor/alerts/{alert}/assign",
            headers=world.headers("bank_a"),
            json={"by": "x", "officer": officer},
        )
        assert r.status_code == 200, r.text

    def ids(**params: object) -> list[int]:
        r = world.http.get("/api/v1/monitor/alerts", params=params, headers=world.headers("bank_a"))
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert ids(assigned_to="li") == [1] and ids(assigned_to="zhao") == [3] and ids(assigned_to="wang") == []
    assert ids() == [3, 2, 1]
    too_long = world.http.get(
        "/api/v1/monitor/alerts", params={"assigned_to": "x" * 129}, headers=world.headers("bank_a")
    )
    assert too_long.status_code == 422


def test_trade_documents_within_consent(world: World) -> None:  # noqa: F811
    ws = world.ws
    with ws.engine.begin() as conn:
        conn.execute(
            insert(TradeDocument),
            [
                dict(
                    id=1,
                    doc_type="purchase_order",
                    seller_id=1,
                    buyer_id=2,
                    issued_on=date(2026, 1, 5),
                    amount=Decimal("1000.00"),
                ),
                dict(
                    id=2,
                    doc_type="invoice",
                    seller_id=2,
                    buyer_id=1,
                    issued_on=date(2026, 1, 6),
                    amount=Decimal("2500.50"),
                ),
                dict(
                    id=3,
                    doc_type="invoice",
                    seller_id=2,
                    buyer_id=2,
                    issued_on=date(2026, 1, 7),
                    amount=Decimal("9.00"),
                ),
            ],
        )
    set_owner(ws.engine, "application", 1, _bank_a(world), 1)  # enterprise 1 is bank A's customer
    path = "/api/v1/enterprises/1/trade-documents"
    own = world.http.get(path, headers=world.headers("e1_admin"))
    assert own.status_code == 200, own.text
    assert [d["id"] for d in own.json()["items"]] == [
        2,
        1,
    ]  # newest first; enterprise 2's own deal is not there
    assert own.json()["items"][0]["amount"] == "2500.50"
    assert [
        d["id"]
        for d in world.http.get(
            path, params={"doc_type": "invoice"}, headers=world.headers("e1_admin")
        ).json()["items"]
    ] == [2]
    # bank A's officer: refused without the consent (and the refusal logged), then allowed with it
    refused = world.http.get(path, headers=world.headers("a_officer"))
    assert refused.status_code == 403 and "trade_documents" in refused.json()["detail"]
    world.http.post(
        "/api/v1/consents",
        headers=world.headers("ent_1"),
        json={
            "enterprise_id": 1,
            "recipient": "bank-a",
            "purpose": "credit_assessment",
            "scopes": ["trade_documents"],
            "window_start": "2020-01-01",
        },
    ).raise_for_status()
    allowed = world.http.get(path, params={"limit": 1}, headers=world.headers("a_officer"))
    assert allowed.status_code == 200 and [d["id"] for d in allowed.json()["items"]] == [2]
    assert allowed.json()["next_cursor"]
    log = [(r["recipient"], r["scope"], r["allowed"]) for r in ws.consent.access_log(1)]
    assert ("bank-a", "trade_documents", False) in log and ("bank-a", "trade_documents", True) in log
    # another bank's officer: not its customer, a 404 as on /enterprises/1; a bad purpose is a 422
    assert (
        world.http.get(
            "/api/v1/enterprises/2/trade-documents", headers=world.headers("a_officer")
        ).status_code
        == 404
    )
    assert (
        world.http.get(path, params={"purpose": "fishing"}, headers=world.headers("e1_admin")).status_code
        == 422
    )


def test_liens_on_an_enterprises_assets(world: World) -> None:  # noqa: F811
    ws = world.ws
    bank_a = _bank_a(world)
    with ws.engine.begin() as conn:
        conn.execute(
            insert(FinanceableAsset),
            [
                dict(
                    id=i,
                    kind="receivable",
                    fingerprint=f"{i:064x}",
                    identity={"n": i},
                    enterprise_id=eid,
                    created_at=AT,
                )
                for i, eid in ((1, 1), (2, 1), (3, 2))
            ],
        )
        conn.execute(
            insert(Lien),
            [
                dict(
                    id=1,
                    asset_id=1,
                    tenant_id=bank_a,
                    financing_ref="A-1",
                    amount=Decimal("100.00"),
                    status="released",
                    placed_at=AT,
                    released_at=AT,
                ),
                dict(
                    id=2,
                    asset_id=2,
                    tenant_id=bank_a,
                    financing_ref="A-2",
                    amount=Decimal("200.00"),
                    status="active",
                    released_at=None,
                    placed_at=AT,
                ),
                dict(
                    id=3,
                    asset_id=3,
                    tenant_id=bank_a,
                    financing_ref="A-3",
                    amount=Decimal("300.00"),
                    status="active",
                    released_at=None,
                    placed_at=AT,
                ),
            ],
        )
    set_owner(ws.engine, "application", 1, bank_a, 1)

    def get(who: str, **params: object) -> tuple[int, list[int]]:
        r = world.http.get("/api/v1/financing/liens", params=params, headers=world.headers(who))
        return r.status_code, [
            lien["id"] for lien in r.json().get("items", [])
        ] if r.status_code == 200 else []

    assert get("bank_a", enterprise_id=1) == (200, [2, 1])
    assert get("bank_a", enterprise_id=1, status="active") == (200, [2])
    assert get("bank_b", enterprise_id=1) == (404, [])  # not bank B's customer
    assert get("ops", enterprise_id=2) == (200, [3])
    assert get("bank_a", enterprise_id=1, status="void")[0] == 422
    assert get("bank_a")[0] == 422  # the enterprise is required
    one = world.http.get(
        "/api/v1/financing/liens", params={"enterprise_id": 1, "limit": 1}, headers=world.headers("bank_a")
    ).json()
    assert (
        one["items"][0]["amount"] == "200.00"
        and one["items"][0]["tenant_code"] == "bank-a"
        and one["next_cursor"]
    )


def test_an_application_states_the_four_eyes_amount(world: World) -> None:  # noqa: F811
    ws = world.ws
    decided = ws.decision.decide(
        Application(1, "iot-working-capital", Decimal("300000"), 12), assessment(1, grade="B", pd="0.05")
    )
    r = world.http.get(
        f"/api/v1/credit-applications/{decided['application_id']}", headers=world.headers("ops")
    )
    assert r.status_code == 200, r.text
    assert Decimal(r.json()["four_eyes_amount"]) == ws.decision.policy.four_eyes_amount
