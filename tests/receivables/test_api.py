"""Vouchers over the public API: the journey issue → split → transfer → offer → finance → pay, and every
bad input refused with a 4xx problem naming the reason, with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from tests.receivables.world import TODAY, World, build, client_for


@pytest.fixture
def env(sim_workspace: Workspace) -> Iterator[tuple[Workspace, World, dict[str, TestClient]]]:
    ws = sim_workspace
    world = build(ws)
    base = TestClient(create_app(ws))
    rw = "vouchers:read vouchers:write"
    clients = {
        "core": client_for(ws, base, rw, enterprise_id=world.core),
        "tier1": client_for(ws, base, rw, enterprise_id=world.tier1),
        "tier2a": client_for(ws, base, rw, enterprise_id=world.tier2a),
        "tier2b": client_for(ws, base, rw, enterprise_id=world.tier2b),
        "outsider": client_for(ws, base, rw, enterprise_id=world.outsider),
        "bank-a": client_for(ws, base, "vouchers:read vouchers:finance", tenant="bank-a"),
        "bank-b": client_for(ws, base, "vouchers:read vouchers:finance", tenant="bank-b"),
        "ops": client_for(ws, base, "vouchers:read ledger:evidence", tenant="ops"),
    }
    yield ws, world, clients


def issue(c: TestClient, world: World, amount: str = "100000.00", matures_on: str = "2026-06-30",
          on: str = TODAY.isoformat()) -> dict[str, Any]:
    r = c.post("/api/v1/vouchers", json={"supplier_id": world.tier1, "amount": amount, "matures_on": matures_on,
                                         "document_ids": world.docs, "on": on})
    assert r.status_code == 201, r.text
    return r.json()


def snapshot(ws: Workspace, voucher_id: int) -> tuple[Any, ...]:
    v = ws.receivables.voucher(voucher_id)
    return (v["status"], v["paid_fen"], tuple((p["id"], p["start_fen"], p["end_fen"], p["holder_kind"], p["holder_id"],
                                               p["status"]) for p in v["parts"]),
            len(ws.receivables.chain_of_title(voucher_id)))


def problem(r: Any, status: int, fragment: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert fragment in r.text, r.text


def test_journey_issue_split_transfer_finance_pay(env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world)
    assert v["amount"] == "100000.00" and v["evidence_level"] == "documents"
    [whole] = v["parts"]
    assert (whole["start_fen"], whole["end_fen"], whole["holder_id"]) == (0, 10_000_000, world.tier1)

    split = c["tier1"].post(f"/api/v1/voucher-parts/{whole['id']}/split",
                            json={"amounts": ["30000.00", "20000.00"], "on": "2026-03-03"})
    assert split.status_code == 201, split.text
    a, b, rest = split.json()["parts"]
    assert [(p["start_fen"], p["end_fen"]) for p in (a, b, rest)] == [(0, 3_000_000), (3_000_000, 5_000_000),
                                                                        (5_000_000, 10_000_000)]
    moved = c["tier1"].post(f"/api/v1/voucher-parts/{a['id']}/transfer",
                            json={"to_enterprise_id": world.tier2a, "on": "2026-03-04"})
    assert moved.status_code == 200 and moved.json()["holder_id"] == world.tier1  # sent, awaiting acceptance
    assert moved.json()["pending_to_id"] == world.tier2a
    assert c["tier2a"].get("/api/v1/voucher-parts").json()["items"] == []
    incoming = c["tier2a"].get("/api/v1/voucher-parts", params={"incoming": "true"}).json()["items"]
    assert [p["id"] for p in incoming] == [a["id"]]
    accepted = c["tier2a"].post(f"/api/v1/voucher-parts/{a['id']}/accept", json={"on": "2026-03-04"})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["holder_id"], accepted.json()["pending_to_id"]) == (world.tier2a, None)
    held = c["tier2a"].get("/api/v1/voucher-parts").json()["items"]
    assert [p["id"] for p in held] == [a["id"]] and held[0]["amount"] == "30000.00"

    offered = c["tier2a"].post(f"/api/v1/voucher-parts/{a['id']}/offers", json={"lender": "bank-a", "on": "2026-03-05"})
    assert offered.status_code == 201, offered.text
    assert [o["id"] for o in c["bank-a"].get("/api/v1/voucher-offers").json()["items"]] == [offered.json()["id"]]
    assert c["bank-a"].get(f"/api/v1/vouchers/{v['id']}").json()["evidence_level"] == "documents"  # to decide
    problem(c["bank-b"].get(f"/api/v1/vouchers/{v['id']}"), 404, "no voucher")
    decided = c["bank-a"].post(f"/api/v1/voucher-offers/{offered.json()['id']}/decision",
                               json={"accept": True, "on": "2026-03-05"})
    assert decided.status_code == 200, decided.text
    d = decided.json()
    assert d["status"] == "accepted" and d["loan_id"] and d["lien_id"]
    assert 29_000 < float(d["principal"]) < 30_000  # discounted
    lender_parts = c["bank-a"].get("/api/v1/voucher-parts").json()["items"]
    assert [(p["id"], p["status"]) for p in lender_parts] == [(a["id"], "financed")]
    loan = ws.lending.loan(d["loan_id"])
    assert loan["enterprise_id"] == world.tier2a

    paid = c["core"].post(f"/api/v1/vouchers/{v['id']}/payments", json={"amount": "100000.00", "on": "2026-06-30"})
    assert paid.status_code == 200, paid.text
    pay = paid.json()["payment"]
    assert sum(pay["by_holder"].values()) == 10_000_000
    assert pay["by_holder"] == {f"lender:{world.lenders['bank-a']}": 3_000_000, f"enterprise:{world.tier1}": 7_000_000}
    assert paid.json()["voucher"]["status"] == "paid"
    assert ws.lending.trial_balance()["balanced"]
    assert ws.lending.loan(d["loan_id"])["status"] in ("settled", "closed", "paid_off")
    assert ws.financing.lien(d["lien_id"]).status == "released"
    assert ws.receivables.audit(v["id"])["ok"]

    kinds = [e["kind"] for e in c["core"].get(f"/api/v1/vouchers/{v['id']}/chain").json()["events"]]
    assert kinds == ["issue", "split", "send", "transfer", "offer", "finance", "pay"]


def test_bad_input_is_refused_and_changes_nothing(env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world)
    part = v["parts"][0]["id"]
    before = snapshot(ws, v["id"])

    # splitting more than held
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["100000.01"], "on": "2026-03-03"}),
            422, "splitting more than held")
    # a part below the minimum (100 yuan by default), also as the remainder
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["99.99"], "on": "2026-03-03"}),
            422, "below the minimum")
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["99950.00"], "on": "2026-03-03"}),
            422, "below the minimum")
    # acting on another holder's part
    problem(c["tier2a"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["500.00"], "on": "2026-03-03"}),
            403, "not held by")
    problem(c["tier2a"].post(f"/api/v1/voucher-parts/{part}/transfer",
                             json={"to_enterprise_id": world.tier2b, "on": "2026-03-03"}), 403, "not held by")
    problem(c["outsider"].post(f"/api/v1/voucher-parts/{part}/offers", json={"lender": "bank-a", "on": "2026-03-03"}),
            403, "not held by")
    # a transfer after maturity
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/transfer",
                            json={"to_enterprise_id": world.tier2a, "on": "2026-06-30"}), 409, "matured")
    # outside the holder's supply chain
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/transfer",
                            json={"to_enterprise_id": world.outsider, "on": "2026-03-03"}), 422, "supply chain")
    # a JSON number for money
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": [500.5], "on": "2026-03-03"}),
            422, "amounts")
    # a fraction of a fen
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["500.001"], "on": "2026-03-03"}),
            422, "more precise than a fen")
    # paying more than owed, paying someone else's voucher
    problem(c["core"].post(f"/api/v1/vouchers/{v['id']}/payments", json={"amount": "100000.01", "on": "2026-06-30"}),
            422, "more than")
    problem(c["tier1"].post(f"/api/v1/vouchers/{v['id']}/payments", json={"amount": "1.00", "on": "2026-06-30"}),
            404, "no voucher")
    # reading someone else's voucher
    problem(c["outsider"].get(f"/api/v1/vouchers/{v['id']}"), 404, "no voucher")
    assert snapshot(ws, v["id"]) == before


def test_term_beyond_limit_and_unmatched_documents_issue_nothing(env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    body = {"supplier_id": world.tier1, "amount": "1000.00", "document_ids": world.docs, "on": TODAY.isoformat()}
    problem(c["core"].post("/api/v1/vouchers", json=body | {"matures_on": "2026-09-03"}), 422, "term beyond the limit")
    problem(c["core"].post("/api/v1/vouchers", json=body | {"matures_on": "2027-03-03"}), 422, "term beyond the limit")
    problem(c["core"].post("/api/v1/vouchers", json=body | {"matures_on": "2026-03-01"}), 422, "after the issue date")
    problem(c["core"].post("/api/v1/vouchers", json=body | {"matures_on": "2026-06-01", "document_ids": world.docs[:2]}),
            422, "missing invoice")
    problem(c["core"].post("/api/v1/vouchers", json=body | {"matures_on": "2026-06-01", "amount": "1000000.01"}),
            422, "more than invoiced")
    problem(c["tier2a"].post("/api/v1/vouchers", json=body | {"matures_on": "2026-06-01"}), 422, "not supplier")
    problem(c["core"].post("/api/v1/vouchers", json=body | {"matures_on": "2026-06-01", "amount": "99.00"}),
            422, "below the minimum")
    assert c["core"].get("/api/v1/vouchers").json()["items"] == []


def test_financing_an_already_financed_range_and_double_offer(env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world)
    part = v["parts"][0]["id"]
    first = c["tier1"].post(f"/api/v1/voucher-parts/{part}/offers", json={"lender": "bank-a", "on": "2026-03-03"})
    assert first.status_code == 201
    # a part offered to two lenders: refused, naming the first offer
    second = c["tier1"].post(f"/api/v1/voucher-parts/{part}/offers", json={"lender": "bank-b", "on": "2026-03-03"})
    problem(second, 409, "offered to lender")
    assert second.json()["winner"]["offer_id"] == first.json()["id"]
    ok = c["bank-a"].post(f"/api/v1/voucher-offers/{first.json()['id']}/decision", json={"accept": True, "on": "2026-03-03"})
    assert ok.status_code == 200, ok.text
    before = snapshot(ws, v["id"])
    # financing the financed range again: the former holder is told who financed it
    again = c["tier1"].post(f"/api/v1/voucher-parts/{part}/offers", json={"lender": "bank-b", "on": "2026-03-04"})
    problem(again, 409, "already financed by")
    assert again.json()["winner"]["holder"] == f"lender:{world.lenders['bank-a']}"
    assert again.json()["winner"]["lien_id"] == ok.json()["lien_id"]
    # the same offer decided twice
    problem(c["bank-a"].post(f"/api/v1/voucher-offers/{first.json()['id']}/decision",
                             json={"accept": True, "on": "2026-03-04"}), 409, "already accepted")
    # a lender not party to the offer
    problem(c["bank-b"].post(f"/api/v1/voucher-offers/{first.json()['id']}/decision",
                             json={"accept": True, "on": "2026-03-04"}), 404, "no offer")
    # cancelling after a transfer (financing moves title too)
    problem(c["core"].post(f"/api/v1/vouchers/{v['id']}/cancel"), 409, "cannot be cancelled")
    assert snapshot(ws, v["id"]) == before


def test_cancel_before_transfer_only_by_issuer(env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world)
    problem(c["tier1"].post(f"/api/v1/vouchers/{v['id']}/cancel"), 404, "no voucher")
    done = c["core"].post(f"/api/v1/vouchers/{v['id']}/cancel")
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    assert [p["status"] for p in done.json()["parts"]] == ["cancelled"]
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{v['parts'][0]['id']}/split",
                            json={"amounts": ["500.00"], "on": "2026-03-03"}), 409, "cancelled")


def test_declined_on_rating_and_evidence_bundle_verifies_offline(env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world)
    part = v["parts"][0]["id"]
    parts = c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["40000.00"], "on": "2026-03-03"})
    p1, p2 = parts.json()["parts"]
    c["tier1"].post(f"/api/v1/voucher-parts/{p1['id']}/transfer", json={"to_enterprise_id": world.tier2b, "on": "2026-03-04"})
    assert c["tier2b"].post(f"/api/v1/voucher-parts/{p1['id']}/accept", json={"on": "2026-03-04"}).status_code == 200
    offer = c["tier1"].post(f"/api/v1/voucher-parts/{p2['id']}/offers", json={"lender": "bank-b", "on": "2026-03-04"})
    declined = c["bank-b"].post(f"/api/v1/voucher-offers/{offer.json()['id']}/decision",
                                json={"accept": False, "on": "2026-03-04"})
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert ws.receivables.part(p2["id"])["status"] == "held"

    bundle = c["ops"].get(f"/api/v1/vouchers/{v['id']}/evidence")
    assert bundle.status_code == 200, bundle.text
    # composition-root helper, as the CLI's `vouchers verify` uses it: needs only the bundle and the key
    from iotfin.app.receivables_evidence import verify_title  # noqa: PLC0415 - the verifier under test

    proved = verify_title(bundle.json(), ws.ledger.verifier_key)
    assert proved["events"] == 6 and proved["total_fen"] == 10_000_000  # issue, split, send, transfer, offer, decline
    holders = {h["holder"] for h in proved["holders"].values()}
    assert holders == {f"enterprise:{world.tier2b}", f"enterprise:{world.tier1}"}
    tampered = bundle.json()
    assert tampered["events"][3]["record"]["body"]["kind"] == "transfer"
    tampered["events"][3]["record"]["body"]["detail"]["to"] = f"enterprise:{world.outsider}"
    with pytest.raises(Exception, match="disclosed body"):
        verify_title(tampered, ws.ledger.verifier_key)


def test_maturity_at_risk_is_listed_for_those_who_see_the_voucher(env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world, matures_on="2026-05-29")
    part = v["parts"][0]["id"]
    moved = c["tier1"].post(f"/api/v1/voucher-parts/{part}/transfer", json={"to_enterprise_id": world.tier2a,
                                                                            "on": "2026-03-03"})
    assert moved.status_code == 200
    assert c["tier2a"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-03-03"}).status_code == 200
    assert c["core"].get("/api/v1/vouchers/at-risk", params={"on": "2026-05-01"}).json()["items"] == []
    for who in ("core", "tier2a", "ops"):
        items = c[who].get("/api/v1/vouchers/at-risk", params={"on": "2026-06-02"}).json()["items"]
        assert [i["voucher_id"] for i in items] == [v["id"]] and "past maturity" in items[0]["reason"], who
    assert c["outsider"].get("/api/v1/vouchers/at-risk", params={"on": "2026-06-02"}).json()["items"] == []
    problem(c["core"].get("/api/v1/vouchers/at-risk", params={"horizon_days": -1}), 422, "horizon_days")


def test_transfer_is_accepted_by_the_receiver_only_before_maturity(
        env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world)
    part = v["parts"][0]["id"]
    sent = c["tier1"].post(f"/api/v1/voucher-parts/{part}/transfer", json={"to_enterprise_id": world.tier2a,
                                                                           "on": "2026-03-03"})
    assert sent.status_code == 200 and sent.json()["pending_to_id"] == world.tier2a, sent.text
    before = snapshot(ws, v["id"])
    # while pending the part is frozen: no split, offer or second transfer by the holder
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["500.00"], "on": "2026-03-03"}),
            409, "awaiting its acceptance")
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/offers", json={"lender": "bank-a", "on": "2026-03-03"}),
            409, "awaiting its acceptance")
    again = c["tier1"].post(f"/api/v1/voucher-parts/{part}/transfer", json={"to_enterprise_id": world.tier2b,
                                                                            "on": "2026-03-03"})
    problem(again, 409, f"sent to enterprise:{world.tier2a}")
    assert again.json()["winner"]["to"] == f"enterprise:{world.tier2a}"
    # nor does the receiver act on it before accepting
    problem(c["tier2a"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["500.00"], "on": "2026-03-03"}),
            403, "not held by")
    # accepted by someone who is not the receiver (another tier-2 supplier, the holder itself, an outsider)
    problem(c["tier2b"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-03-03"}), 403, "not to enterprise")
    problem(c["tier1"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-03-03"}), 403, "only the receiver")
    problem(c["outsider"].post(f"/api/v1/voucher-parts/{part}/reject"), 403, "not to enterprise")
    problem(c["bank-a"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-03-03"}), 403, "scope")
    # accepted on or after maturity
    problem(c["tier2a"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-06-30"}), 409, "matured")
    # the issuer cannot cancel a voucher with a transfer pending
    problem(c["core"].post(f"/api/v1/vouchers/{v['id']}/cancel"), 409, "sent to a receiver")
    assert snapshot(ws, v["id"]) == before

    ok = c["tier2a"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-03-04"})
    assert ok.status_code == 200 and ok.json()["holder_id"] == world.tier2a, ok.text
    after = snapshot(ws, v["id"])
    # accepted twice: refused naming the holder, nothing changed
    twice = c["tier2a"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-03-04"})
    problem(twice, 409, "already accepted")
    assert twice.json()["winner"]["holder"] == f"enterprise:{world.tier2a}"
    problem(c["tier2a"].post(f"/api/v1/voucher-parts/{part}/reject"), 409, "already accepted")
    assert snapshot(ws, v["id"]) == after
    assert [e["kind"] for e in ws.receivables.chain_of_title(v["id"])] == ["issue", "send", "transfer"]


def test_a_transfer_rejected_or_recalled_leaves_the_part_with_its_holder(
        env: tuple[Workspace, World, dict[str, TestClient]]) -> None:
    ws, world, c = env
    v = issue(c["core"], world)
    part = v["parts"][0]["id"]
    body = {"to_enterprise_id": world.tier2a, "on": "2026-03-03"}
    assert c["tier1"].post(f"/api/v1/voucher-parts/{part}/transfer", json=body).status_code == 200
    declined = c["tier2a"].post(f"/api/v1/voucher-parts/{part}/reject")  # the receiver declines
    assert declined.status_code == 200 and declined.json()["pending_to_id"] is None, declined.text
    problem(c["tier2a"].post(f"/api/v1/voucher-parts/{part}/accept", json={"on": "2026-03-03"}), 409,
            "no transfer awaiting acceptance")
    assert c["tier1"].post(f"/api/v1/voucher-parts/{part}/transfer", json=body).status_code == 200
    recalled = c["tier1"].post(f"/api/v1/voucher-parts/{part}/reject")  # the holder recalls
    assert recalled.status_code == 200 and recalled.json()["holder_id"] == world.tier1
    split = c["tier1"].post(f"/api/v1/voucher-parts/{part}/split", json={"amounts": ["500.00"], "on": "2026-03-03"})
    assert split.status_code == 201, split.text  # free to act on again
    chain = ws.receivables.chain_of_title(v["id"])
    assert [(e["kind"], e["detail"].get("by")) for e in chain] == [
        ("issue", None), ("send", None), ("reject", "receiver"), ("send", None), ("reject", "holder"), ("split", None)]
    assert ws.receivables.audit(v["id"])["ok"]
