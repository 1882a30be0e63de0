"""Hardship relief end to end, on SQLite and PostgreSQL: an enterprise asks its lender for relief
over the API, the lender approves, and lending reschedules the loan (audited on both sides)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.openapi_world import World

LOAN = {"enterprise_id": 1, "product": "iot-term", "principal": "120000.00", "annual_rate": "0.06",
        "term": 12, "start": "2026-10-10", "reason": "booked by the officer for the relief tests"}


def _ask(world: World, loan_ref: str, relief: str, who: str = "ent_1") -> dict[str, Any]:
    r = world.http.post("/api/v1/hardship-requests", headers=world.headers(who), json={
        "tenant": "bank-a", "loan_ref": loan_ref, "reason_code": "disaster", "relief": relief,
        "description": "flood in the workshop / 车间被淹"})
    assert r.status_code == 201, r.text
    return r.json()


def _decide(world: World, request_id: int, approve: bool = True, who: str = "a_approver") -> dict[str, Any]:
    r = world.http.post(f"/api/v1/hardship-requests/{request_id}/decision", headers=world.headers(who),
                        json={"approve": approve, "reason": "verified with the county emergency office"})
    assert r.status_code == 200, r.text
    return r.json()


def test_approved_deferral_reschedules_the_loan(world: World) -> None:
    loan_id = world.http.post("/api/v1/lending/loans", headers=world.headers("bank_a"), json=LOAN).json()["loan_id"]
    before = world.http.get(f"/api/v1/lending/loans/{loan_id}", headers=world.headers("bank_a")).json()
    request = _ask(world, f"L-{loan_id}", "deferral")
    decided = _decide(world, request["id"])
    assert decided["status"] == "approved" and decided["relief_status"] == "applied"
    assert decided["relief_ref"].startswith(f"loan:{loan_id}:restructured:")
    after = world.http.get(f"/api/v1/lending/loans/{loan_id}", headers=world.headers("ent_1")).json()
    event = [e for e in after["events"] if e["kind"] == "restructured"]
    assert len(event) == 1 and event[0]["actor"] == f"hardship:{request['id']}"
    assert f"hardship request {request['id']} (disaster)" in event[0]["detail"]["reason"]
    assert event[0]["detail"]["grace_principal"] == 3
    # the next three instalments are interest-only, and the principal is all still owed
    nxt = [i for i in after["schedule"] if i["seq"] >= after["next_instalment"]["seq"]]
    assert [i["principal"] for i in nxt[:3]] == ["0.00", "0.00", "0.00"]
    assert sum(Decimal(i["principal"]) for i in nxt) == Decimal(before["principal_not_due"])
    assert after["schedule"] != before["schedule"]


def test_restructure_extends_the_term_and_declines_change_nothing(world: World) -> None:
    loan_id = world.http.post("/api/v1/lending/loans", headers=world.headers("bank_a"), json=LOAN).json()["loan_id"]
    declined = _decide(world, _ask(world, str(loan_id), "restructure")["id"], approve=False)
    assert declined["status"] == "declined" and declined["relief_status"] == "not_applicable"
    untouched = world.http.get(f"/api/v1/lending/loans/{loan_id}", headers=world.headers("bank_a")).json()
    assert all(e["kind"] != "restructured" for e in untouched["events"])
    approved = _decide(world, _ask(world, str(loan_id), "restructure")["id"])
    assert approved["relief_status"] == "applied"
    after = world.http.get(f"/api/v1/lending/loans/{loan_id}", headers=world.headers("bank_a")).json()
    assert len(after["schedule"]) > len(untouched["schedule"])


def test_relief_on_a_loan_of_another_lender_or_enterprise_is_not_applied(world: World) -> None:
    loan_id = world.http.post("/api/v1/lending/loans", headers=world.headers("bank_b"), json=LOAN).json()["loan_id"]
    other = _decide(world, _ask(world, f"L-{loan_id}", "deferral")["id"])  # filed with bank A, loan is bank B's
    assert other["status"] == "approved" and other["relief_status"] == "awaiting_lending"
    assert other["relief_ref"].startswith("refused: ")
    mine = world.http.post("/api/v1/lending/loans", headers=world.headers("bank_a"), json=LOAN).json()["loan_id"]
    wrong_firm = _decide(world, _ask(world, f"L-{mine}", "deferral", who="ent_2")["id"])
    assert wrong_firm["relief_status"] == "awaiting_lending"
    for lid in (loan_id, mine):
        shown = world.http.get(f"/api/v1/lending/loans/{lid}", headers=world.headers("ops")).json()
        assert all(e["kind"] != "restructured" for e in shown["events"])


def test_fee_waiver_waits_for_an_officer(world: World) -> None:
    loan_id = world.http.post("/api/v1/lending/loans", headers=world.headers("bank_a"), json=LOAN).json()["loan_id"]
    decided = _decide(world, _ask(world, f"L-{loan_id}", "fee_waiver")["id"])
    assert decided["relief_status"] == "awaiting_lending" and decided["relief_ref"] is None
