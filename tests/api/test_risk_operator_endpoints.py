"""API endpoints added for the console's risk manager and operator pages (issue 19): the portfolio of
the caller's own book (a bank's risk manager: its tenant; the operator: all) with vintage curves, the
fleet summary, the ledger's status (with the platform witness's cosignature) and audit, a tenant's
users and partner clients, and the risk model versions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from iotfin.lending import vintage
from tests.openapi_world import PASSWORD, World, world  # noqa: F401  (fixture)


def _user(w: World, username: str, roles: list[str], tenant: str | None) -> dict[str, str]:
    w.ws.identity.create_user(username, PASSWORD, roles, tenant=tenant)
    r = w.http.post("/oauth/token", data={"grant_type": "password", "username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _loan(w: World, bank: str, enterprise_id: int, principal: str, start: str) -> None:
    r = w.http.post("/api/v1/lending/loans", headers=w.headers(bank), json={
        "enterprise_id": enterprise_id, "product": "iot-term", "principal": principal, "annual_rate": "0.05",
        "term": 12, "start": start, "reason": "migrated from the core banking system"})
    assert r.status_code == 201, r.text


def test_portfolio_is_the_callers_own_book(world: World) -> None:  # noqa: F811
    _loan(world, "bank_a", 1, "100000.00", "2026-01-05")
    _loan(world, "bank_a", 1, "20000.00", "2026-02-10")
    _loan(world, "bank_b", 2, "250000.00", "2026-01-20")
    a_risk = _user(world, "a-risk", ["risk_manager"], "bank-a")
    b_risk = _user(world, "b-risk", ["risk_manager"], "bank-b")

    def book(headers: dict[str, str], **params: Any) -> dict[str, Any]:
        r = world.http.get("/api/v1/lending/portfolio", headers=headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    a, b, everything = book(a_risk), book(b_risk), book(world.headers("admin"))
    assert (a["active_loans"], Decimal(a["principal_outstanding"])) == (2, Decimal("120000.00"))
    assert (b["active_loans"], Decimal(b["principal_outstanding"])) == (1, Decimal("250000.00"))
    assert (everything["active_loans"], Decimal(everything["principal_outstanding"])) == (3, Decimal("370000.00"))
    assert Decimal(a["allowance"]) + Decimal(b["allowance"]) == Decimal(everything["allowance"])
    curves = book(a_risk, vintages="true")["vintages"]
    assert [(c["cohort"], c["loans"], Decimal(c["principal"])) for c in curves] == [
        ("2026-01", 1, Decimal("100000.00")), ("2026-02", 1, Decimal("20000.00"))]
    assert "vintages" not in a  # only when asked
    # a lender's officer, an enterprise, a bank's core system: not theirs to read
    for who in ("a_officer", "e1_admin", "bank_a"):
        r = world.http.get("/api/v1/lending/portfolio", headers=world.headers(who))
        assert r.status_code == 403 and "portfolio:read" in r.json()["detail"], (who, r.text)


def test_vintage_curves_count_principal_from_the_month_it_went_bad() -> None:
    rows = [  # start, principal, dpd, overdue since, status, written off on
        (date(2026, 1, 10), Decimal("100.00"), 45, date(2026, 2, 20), "active", None),   # bad from 03-23: month 2
        (date(2026, 1, 15), Decimal("300.00"), 0, None, "active", None),
        (date(2026, 1, 20), Decimal("100.00"), 10, date(2026, 4, 5), "active", None),    # 1-30 dpd: not bad
        (date(2026, 3, 2), Decimal("50.00"), 0, None, "written_off", date(2026, 3, 30)),  # bad in month 0
    ]
    curves = vintage.curves(rows, date(2026, 4, 15))
    assert curves == [
        {"cohort": "2026-01", "loans": 3, "principal": Decimal("500.00"),
         "points": [[0, "0.0000"], [1, "0.0000"], [2, "0.2000"], [3, "0.2000"]]},
        {"cohort": "2026-03", "loans": 1, "principal": Decimal("50.00"), "points": [[0, "1.0000"], [1, "1.0000"]]},
    ]
    assert vintage.curves(rows, None) == []


def test_fleet_summary_is_the_operators(world: World) -> None:  # noqa: F811
    ws = world.ws
    ws.quarantine.put_raw("{not json", "malformed_json", "http", device_id=7)
    ws.quarantine.put_raw("{\"ts\": -1}", "bad_timestamp", "mqtt", device_id=7)
    ws.quarantine.put_raw("x", "malformed_json", "http", device_id=8)
    r = world.http.get("/api/v1/fleet", headers=world.headers("admin"))
    assert r.status_code == 200, r.text
    fleet = r.json()
    assert fleet["rejected_by_reason"] == {"malformed_json": 2, "bad_timestamp": 1} and fleet["rejected"] == 3
    assert fleet["quarantined_devices"] == 2
    assert fleet["online"] + fleet["offline"] + fleet["never_seen"] == fleet["devices"]
    assert sum(fleet["by_status"].values()) == fleet["devices"]
    for who in ("a_officer", "e1_admin"):
        refused = world.http.get("/api/v1/fleet", headers=world.headers(who))
        assert refused.status_code == 403 and "operator" in refused.json()["detail"], refused.text


def test_ledger_status_cosignature_and_audit(world: World) -> None:  # noqa: F811
    _loan(world, "bank_a", 1, "100000.00", "2026-01-05")
    ws = world.ws
    ws.ledger.anchor_all("loan_contract")
    headers = world.headers("a_auditor")
    first = world.http.get("/api/v1/ledger/status", headers=headers)
    assert first.status_code == 200, first.text
    status = first.json()
    assert status["size"] >= 1 and status["origin"] == ws.ledger.origin
    assert status["checkpoint"].startswith(f"{status['origin']}\n{status['size']}\n{status['root']}\n\n")
    assert status["signatures"] and status["signatures"][0].startswith("— ")
    assert len(status["witness_cosignatures"]) == 1 and status["witness_cosignatures"][0].startswith("— iotfin-witness ")
    assert {"leaf_index": 0, "record_type": "loan_contract", "record_id": "1"} in status["recent_anchors"]
    # asked again at the same size, the witness (which remembers what it cosigned) still answers
    again = world.http.get("/api/v1/ledger/status", headers=headers).json()
    assert again["size"] == status["size"] and len(again["witness_cosignatures"]) == 1
    audit = world.http.post("/api/v1/ledger/audit", headers=headers)
    assert audit.status_code == 200, audit.text
    assert audit.json() | {"records_checked": None} == {"ok": True, "leaves": status["size"], "records_checked": None,
                                                        "log": [], "records": []}
    assert world.http.post("/api/v1/ledger/audit", headers=world.headers("a_officer")).status_code == 403


def test_tenant_users_and_clients(world: World) -> None:  # noqa: F811
    admin = world.headers("admin")
    world["bank_a"]  # bank A's core system: a partner client of the tenant
    made = world.http.post("/api/v1/tenants/bank-a/users", headers=admin, json={
        "username": "a-new-officer", "password": "long enough password", "roles": ["risk_officer"]})
    assert made.status_code == 201, made.text
    users = world.http.get("/api/v1/tenants/bank-a/users", headers=admin)
    assert users.status_code == 200, users.text
    row = next(u for u in users.json()["items"] if u["username"] == "a-new-officer")
    assert row["roles"] == ["risk_officer"] and row["active"] is True
    assert not any("password" in k for u in users.json()["items"] for k in u)
    clients = world.http.get("/api/v1/tenants/bank-a/clients", headers=admin).json()["items"]
    assert [c["name"] for c in clients] == ["bank A core"] and not any("secret" in k for c in clients for k in c)
    assert world.http.get("/api/v1/tenants/bank-b/users", headers=admin).json()["items"] == []
    missing = world.http.get("/api/v1/tenants/no-such-bank/users", headers=admin)
    assert missing.status_code == 404
    assert world.http.get("/api/v1/tenants/bank-a/users", headers=world.headers("a_officer")).status_code == 403


def test_model_versions_list_is_empty_without_a_trained_model(world: World) -> None:  # noqa: F811
    r = world.http.get("/api/v1/risk/models", headers=world.headers("admin"))
    assert r.status_code == 200 and r.json() == {"items": []}
