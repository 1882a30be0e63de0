"""Offer → contract, one chain, over the open API: an approval makes an offer, the enterprise accepts it
after its key facts, the offer's lender books exactly it (the contract's APR is the disclosed APR, per
product), and every wrong step is a 4xx that changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from iotfin.lending import disclosure
from iotfin.webhooks.tables import WebhookEvent
from tests.decision.conftest import assessment
from tests.openapi_world import World, world  # noqa: F401  fixture

DECIDED = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: the decision's (and offer's) value date
VALUE_DATE = date(2026, 3, 2)
APPLY = {"enterprise_id": 1, "product": "iot-working-capital", "amount": "500000.00", "tenor_months": 12}


@pytest.fixture
def w(world: World) -> World:  # noqa: F811
    """Enterprises 1 and 2 consent to bank A's credit assessment (2 also to bank B's); the platform assesses
    (a fixed assessment: grade A, or B for enterprise 2) on 2 March 2026."""
    for ent, bank in ((1, "bank-a"), (2, "bank-a"), (2, "bank-b")):
        world.http.post("/api/v1/consents", headers=world.headers(f"ent_{ent}"), json={
            "enterprise_id": ent, "recipient": bank, "purpose": "credit_assessment", "scopes": ["credit_report"],
            "window_start": "2020-01-01"}).raise_for_status()
    svc = world.ws.decisions(assess=lambda eid: assessment(eid, grade="B" if eid == 2 else "A",
                                                           pd="0.05" if eid == 2 else "0.01"))
    svc.clock = lambda: DECIDED
    world.http.app.state.decision_service = svc
    return world


def post(w: World, who: str, path: str, body: Any) -> Any:
    return w.http.post(f"/api/v1{path}", headers=w.headers(who), json=body)


def get(w: World, who: str, path: str, **params: Any) -> Any:
    return w.http.get(f"/api/v1{path}", headers=w.headers(who), params=params)


def apply(w: World, who: str = "bank_a", **change: Any) -> dict[str, Any]:
    r = post(w, who, "/credit-applications", APPLY | change)
    assert r.status_code == 201, r.text
    return r.json()


def accept(w: World, offer: dict[str, Any], who: str = "ent_1") -> Any:
    return post(w, who, f"/offers/{offer['id']}/acceptance", {"key_facts_digest": offer["key_facts"]["digest"]})


def state(w: World) -> tuple[Any, ...]:
    """What a refused step must leave as it was: offers, loans, lines, the trial balance."""
    offers = get(w, "ops", "/offers", limit=200).json()["items"]
    loans = get(w, "ops", "/lending/loans", limit=200).json()["items"]
    lines = get(w, "ops", "/lending/credit-lines", limit=200).json()["items"]
    tb = get(w, "ops", "/lending/trial-balance").json()
    return offers, loans, lines, tb["total_debit"]


@pytest.mark.parametrize(("product", "servicing"), [("iot-working-capital", "iot-line"),
                                                    ("receivable-financing", "receivable-bullet"),
                                                    ("inventory-pledge", "iot-term")])
def test_the_chain_books_what_was_offered_and_the_contract_apr_is_the_disclosed_apr(
        w: World, product: str, servicing: str) -> None:
    decided = apply(w, product=product)
    assert decided["decision"] == "approve"
    offer = decided["offer"]
    assert offer["status"] == "open" and offer["lender"] == "bank-a" and offer["servicing_product"] == servicing
    assert (offer["amount"], offer["tenor_months"], offer["start"]) == (decided["offered_amount"], 12, "2026-03-02")
    # the offer's APR is the decision's, disclosed to 0.01 %
    assert Decimal(offer["apr"]).quantize(Decimal("0.0001")) == Decimal(decided["apr"])
    assert "贷款关键信息说明" in offer["key_facts"]["zh"] and "Key facts statement" in offer["key_facts"]["en"]
    assert disclosure.percent(Decimal(offer["apr"])) in offer["key_facts"]["zh"]
    # the enterprise reads it and accepts; its lender books it
    assert get(w, "ent_1", f"/offers/{offer['id']}").json()["key_facts"] == offer["key_facts"]
    accepted = accept(w, offer)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["accepted_by"].startswith("client:")
    booked = post(w, "bank_a", "/lending/loans", {"offer_id": offer["id"], "contract_ref": f"C-{product}"})
    assert booked.status_code == 201, booked.text
    b = booked.json()
    assert b["apr"] == offer["apr"] and b["offer"]["status"] == "booked" and b["offer"]["loan_id"] == b["loan_id"]
    loan = get(w, "bank_a", f"/lending/loans/{b['loan_id']}").json()
    assert (loan["product"], loan["principal"], loan["annual_rate"], loan["term"], loan["start_date"]) == (
        servicing, offer["amount"], offer["annual_rate"], 12, "2026-03-02")
    # the contract's key facts, from the booked loan's own terms, show the offer's APR
    contract = disclosure.product_key_facts(loan["product"], Decimal(loan["principal"]), Decimal(loan["annual_rate"]),
                                            loan["term"], date.fromisoformat(loan["start_date"]))
    assert contract.apr_net == Decimal(offer["apr"])
    booking = next(e for e in loan["events"] if e["kind"] == "booked")
    assert booking["detail"]["signed"]["key_facts_digest"] == offer["key_facts"]["digest"]
    if servicing == "iot-line":  # a line-serviced offer opens the lender's line and draws the amount under it
        lines = get(w, "bank_a", "/lending/credit-lines").json()["items"]
        assert [(ln["id"], ln["credit_limit"], ln["drawn"], ln["expires_on"]) for ln in lines] == [
            (b["credit_line_id"], offer["amount"], offer["amount"], "2027-03-02")]
        assert get(w, "bank_b", "/lending/credit-lines").json()["items"] == []
    else:
        assert b["credit_line_id"] is None
    # booked once
    again = post(w, "bank_a", "/lending/loans", {"offer_id": offer["id"]})
    assert again.status_code == 409 and "booked" in again.json()["detail"]


def test_wrong_steps_are_refused_and_change_nothing(w: World) -> None:
    offer = apply(w)["offer"]
    before = state(w)
    # booking before acceptance
    r = post(w, "bank_a", "/lending/loans", {"offer_id": offer["id"]})
    assert r.status_code == 409 and "only an accepted offer" in r.json()["detail"]
    # the wrong digest; another enterprise; a lender accepting
    r = post(w, "ent_1", f"/offers/{offer['id']}/acceptance", {"key_facts_digest": "0" * 64})
    assert r.status_code == 422 and "key_facts_digest" in r.json()["detail"]
    assert accept(w, offer, "ent_2").status_code == 404
    assert accept(w, offer, "bank_a").status_code == 403
    assert get(w, "ent_2", f"/offers/{offer['id']}").status_code == 404
    assert get(w, "bank_b", f"/offers/{offer['id']}").status_code == 404
    # expired: 16 days later (validity 15 days)
    clock = w.ws.offers.clock
    w.ws.offers.clock = lambda: clock() + timedelta(days=16)
    try:
        r = accept(w, offer)
        assert r.status_code == 409 and "expired" in r.json()["detail"]
        assert get(w, "ent_1", f"/offers/{offer['id']}").json()["status"] == "expired"
        assert [o["id"] for o in get(w, "ent_1", "/offers", status="expired").json()["items"]] == [offer["id"]]
    finally:
        w.ws.offers.clock = clock
    assert state(w) == before
    # accepted twice; another lender's booking; terms sent with an offer
    assert accept(w, offer).status_code == 200
    after = state(w)
    r = accept(w, offer)
    assert r.status_code == 409 and "accepted" in r.json()["detail"]
    assert post(w, "bank_b", "/lending/loans", {"offer_id": offer["id"]}).status_code == 404
    r = post(w, "bank_a", "/lending/loans", {"offer_id": offer["id"], "principal": "1.00"})
    assert r.status_code == 422 and "as offered" in r.text
    r = post(w, "bank_a", "/lending/loans", {"offer_id": offer["id"], "start": "2026-03-01"})
    assert r.status_code == 422 and "before the offer's value date" in r.json()["detail"]
    assert state(w) == after
    # a later value date books when the annualised rate is the one disclosed (to 0.01 %)
    r = post(w, "bank_a", "/lending/loans", {"offer_id": offer["id"], "start": "2026-03-20"})
    assert r.status_code == 201 and r.json()["apr"] == offer["apr"] and r.json()["start"] == "2026-03-20"


def test_manual_booking_needs_its_scope_a_reason_the_ranges_and_the_ceiling(w: World) -> None:
    manual = {"enterprise_id": 1, "product": "iot-term", "principal": "100000.00", "annual_rate": "0.08",
              "term": 12, "start": "2026-03-02", "reason": "portfolio migration from the core system"}
    before = state(w)
    r = post(w, "a_approver", "/lending/loans", manual)  # lending:write, not lending:manual
    assert r.status_code == 403 and "lending:manual" in r.json()["detail"]
    cases = [({"reason": ""}, 422, "reason"), ({"reason": "  "}, 422, "reason"),
             ({"annual_rate": "0.30"}, 422, "ceiling"), ({"principal": "9000000.00"}, 422, "principal"),
             ({"term": 120}, 422, "term"), ({"enterprise_id": 999}, 404, "no enterprise 999"),
             ({"product": "payday"}, 422, "unknown product")]
    for change, status, fragment in cases:
        r = post(w, "bank_a", "/lending/loans", manual | change)
        assert r.status_code == status and fragment in r.text, (change, r.text)
    assert state(w) == before
    r = post(w, "bank_a", "/lending/loans", manual)
    assert r.status_code == 201 and r.json()["manual"] is True, r.text
    loan = get(w, "bank_a", f"/lending/loans/{r.json()['loan_id']}").json()
    assert loan["events"][0]["detail"]["signed"]["reason"] == manual["reason"]
    assert [x["id"] for x in get(w, "bank_a", "/lending/loans").json()["items"]] == [loan["id"]]
    assert get(w, "bank_b", "/lending/loans").json()["items"] == []


def test_a_counter_offer_offers_its_own_terms_and_a_decline_none(w: World) -> None:
    referred = apply(w, enterprise_id=2)
    assert referred["decision"] == "refer" and referred["offer"] is None
    r = post(w, "bank_a", f"/credit-applications/{referred['application_id']}/reviews", {
        "officer": "x", "action": "counter_offer", "reason": "smaller and shorter", "amount": "300000.00",
        "tenor_months": 6, "rate": "0.08"})
    assert r.status_code == 200, r.text
    offer = r.json()["offer"]
    assert (offer["amount"], offer["tenor_months"], Decimal(offer["annual_rate"]), offer["enterprise_id"]) == (
        "300000.00", 6, Decimal("0.08"), 2)
    declined = apply(w, enterprise_id=2, ref="d-1")
    d = post(w, "bank_a", f"/credit-applications/{declined['application_id']}/reviews",
             {"officer": "x", "action": "decline", "reason": "no"}).json()
    assert d["offer"] is None
    assert [o["id"] for o in get(w, "ent_2", "/offers").json()["items"]] == [offer["id"]]


def test_upfront_fee_is_deducted_never_overdue(w: World) -> None:
    offer = apply(w, product="inventory-pledge")["offer"]
    assert Decimal(offer["upfront_fee"]) > 0
    accept(w, offer).raise_for_status()
    b = post(w, "bank_a", "/lending/loans", {"offer_id": offer["id"]}).json()
    assert Decimal(b["net_proceeds"]) == Decimal(offer["amount"]) - Decimal(offer["upfront_fee"])
    w.ws.lending.close_through(VALUE_DATE + timedelta(days=10))
    loan = get(w, "bank_a", f"/lending/loans/{b['loan_id']}").json()
    assert (loan["tier"], loan["tier_zh"], loan["dpd"]) == ("normal", "正常", 0)
    assert loan["due"] == {"penalty": "0.00", "fee": "0.00", "interest": "0.00", "principal": "0.00"}
    tb = get(w, "ops", "/lending/trial-balance").json()
    assert tb["balanced"] and tb["reconciliation"]["reconciled"]
    # the repayment list
    paid = post(w, "bank_a", f"/lending/loans/{b['loan_id']}/repayments",
                {"amount": "1000.00", "date": "2026-03-12", "prepay": True})
    assert paid.status_code == 200, paid.text
    reps = get(w, "ent_1", f"/lending/loans/{b['loan_id']}/repayments").json()
    assert [(x["amount"], x["date"]) for x in reps["items"]] == [("1000.00", "2026-03-12")]
    assert get(w, "bank_b", f"/lending/loans/{b['loan_id']}/repayments").status_code == 404


def test_lists_are_tenant_isolated_and_paged(w: World) -> None:
    mine = [apply(w, ref=f"a-{k}")["application_id"] for k in range(3)]
    other = apply(w, "bank_b", enterprise_id=2, ref="b-1")["application_id"]

    def ids(who: str, path: str, **params: Any) -> list[int]:
        out, cursor = [], None
        while True:
            page = get(w, who, path, limit=2, **params | ({"cursor": cursor} if cursor else {})).json()
            out += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    assert ids("bank_a", "/credit-applications") == mine[::-1]
    assert ids("bank_b", "/credit-applications") == [other]
    assert ids("ent_1", "/credit-applications") == mine[::-1]
    assert ids("ops", "/credit-applications", enterprise_id=2) == [other]
    assert ids("bank_a", "/credit-applications", status="declined") == []
    assert get(w, "ops", "/credit-applications", status="nonsense").status_code == 422
    assert len(ids("bank_a", "/offers", status="open")) == 3 and ids("bank_b", "/offers") == []
    assert ids("ent_2", "/offers", enterprise_id=1) == []
    assert get(w, "ops", "/offers", status="nonsense").status_code == 422
    assert ids("bank_b", "/lending/loans") == [] and ids("ent_1", "/lending/loans") == []


def test_lenders_open_their_own_credit_lines(w: World) -> None:
    body = {"enterprise_id": 1, "limit": "200000.00", "annual_rate": "0.06", "expires_on": "2027-03-01"}
    r = post(w, "bank_a", "/lending/credit-lines", body)
    assert r.status_code == 201, r.text
    line = r.json()["credit_line_id"]
    assert [x["id"] for x in get(w, "bank_a", "/lending/credit-lines").json()["items"]] == [line]
    assert get(w, "bank_b", "/lending/credit-lines").json()["items"] == []
    assert post(w, "bank_a", "/lending/credit-lines", body | {"enterprise_id": 999}).status_code == 404
    assert post(w, "bank_a", "/lending/credit-lines", body | {"annual_rate": "0.30"}).status_code == 422
    assert post(w, "bank_a", "/lending/credit-lines", body | {"product": "iot-term"}).status_code == 422
    assert post(w, "ent_1", "/lending/credit-lines", body).status_code == 403
    assert len(get(w, "ops", "/lending/credit-lines").json()["items"]) == 1
    # the lender draws under its own line (a manual booking), another lender cannot
    draw = {"enterprise_id": 1, "product": "iot-line", "principal": "50000.00", "annual_rate": "0.06", "term": 6,
            "start": "2026-03-02", "credit_line_id": line, "reason": "drawdown requested by the borrower"}
    assert post(w, "bank_b", "/lending/loans", draw).status_code == 404
    assert post(w, "bank_a", "/lending/loans", draw).status_code == 201
    assert get(w, "bank_a", "/lending/credit-lines").json()["items"][0]["available"] == "150000.00"


def test_offer_accepted_is_an_event(w: World) -> None:
    offer = apply(w)["offer"]
    accept(w, offer).raise_for_status()
    with w.ws.engine.connect() as conn:
        rows = conn.execute(select(WebhookEvent.event_type, WebhookEvent.payload, WebhookEvent.enterprise_id)
                            .where(WebhookEvent.event_type == "offer.accepted")).all()
    assert [(t, p["id"], p["apr"], e) for t, p, e in rows] == [("offer.accepted", offer["id"], offer["apr"], 1)]


def test_python_client_and_cli_walk_the_chain(w: World) -> None:
    first, second = apply(w, ref="c-1")["offer"], apply(w, ref="c-2")["offer"]
    firm, bank = w["ent_1"], w["bank_a"]
    assert [o["id"] for o in firm.offers(status="open", limit=1)] == [second["id"], first["id"]]
    assert firm.offer(first["id"])["key_facts"] == first["key_facts"]
    assert firm.accept_offer(first["id"])["status"] == "accepted"
    booked = bank.book_offer(first["id"], contract_ref="C-CLIENT-1")
    assert booked["apr"] == first["apr"] and booked["credit_line_id"] is not None
    assert [x["id"] for x in bank.loans()] == [booked["loan_id"]]
    assert [x["id"] for x in bank.credit_lines()] == [booked["credit_line_id"]]
    assert len(list(bank.applications())) == 2 and list(bank.repayments(booked["loan_id"])) == []
    assert bank.open_credit_line(1, "1000.00", "0.05", "2027-01-01")["status"] == "active"
    # the operator's command line: list, accept for the enterprise, book
    env = os.environ | {"IOTFIN_DATABASE_URL": str(w.ws.engine.url.render_as_string(hide_password=False))}
    base = ["--data-dir", str(w.ws.settings.data_dir), "--json"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "iotfin", "loan", "offer", *args, *base], capture_output=True,
                              text=True, timeout=120, env=env)

    listed = cli("list", "--status", "open")
    assert listed.returncode == 0, listed.stderr
    assert [o["id"] for o in json.loads(listed.stdout)] == [second["id"]]
    wrong = cli("accept", str(second["id"]), "--digest", "0" * 64)
    assert wrong.returncode != 0 and "key_facts_digest" in wrong.stderr
    assert cli("accept", str(second["id"]), "--digest", second["key_facts"]["digest"]).returncode == 0
    done = cli("book", str(second["id"]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["apr"] == second["apr"]
    again = cli("book", str(second["id"]))
    assert again.returncode != 0 and "booked" in again.stderr
