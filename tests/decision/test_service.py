"""The decision service on SQLite and PostgreSQL: decisions stored and anchored, immutable strategy
versions (DB-enforced), deployments with challenger and rollback, replay, the review queue."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict, NotFound, ServiceUnavailable, ValidationError
from iotfin.decision.applications import Application
from iotfin.decision.limits import LimitPolicy
from iotfin.decision.service import DecisionPolicy, DecisionService
from iotfin.decision.strategies import StrategyError, default_strategy_text
from iotfin.decision.tables import CreditDecision, DecisionStrategy
from iotfin.ledger.evidence import verify_bundle
from iotfin.lending.disclosure import offer_terms
from tests.decision.conftest import add_enterprises, assessment

APP = Application(1, "iot-working-capital", D("500000"), 12)


@pytest.fixture
def svc(workspace: Workspace) -> DecisionService:
    """On SQLite and PostgreSQL."""
    add_enterprises(workspace.engine, range(1, 8), core=7)
    return workspace.decisions()


@pytest.fixture
def lite(sqlite_workspace: Workspace) -> DecisionService:
    """SQLite only: for what does not depend on the backend."""
    add_enterprises(sqlite_workspace.engine, range(1, 8), core=7)
    return sqlite_workspace.decisions()


def test_decision_is_stored_anchored_and_provable(svc: DecisionService, workspace: Workspace) -> None:
    result = svc.decide(APP, assessment(1))
    assert result["decision"] == "approve" and result["status"] == "approved"
    assert result["strategy"] == "default" and result["strategy_version"] == 1 and result["arm"] == "champion"
    assert D(result["offered_amount"]) == D("500000.00") and D(result["rate"]) > D(result["pricing"]["base_rate"])
    assert "年化利率" in result["disclosure"]["zh"] and "APR" in result["disclosure"]["en"]
    assert result["exposure"] == {"borrower": "0.00", "core": "0.00"} and result["limit"]["core_headroom"] == "30000000.00"
    shown = svc.application(result["application_id"])
    assert shown["status"] == "approved" and shown["approved_amount"] == D("500000.00")
    assert shown["decisions"][0]["result"]["trace"]["grade-terms"]["matched"] == ["grade-terms-r3"]
    workspace.ledger.checkpoint()
    bundle = workspace.ledger.prove("credit_decision", str(result["decision_id"]))
    assert verify_bundle(bundle, workspace.ledger.verifier_key)["record_type"] == "credit_decision"
    assert workspace.ledger.audit()["ok"]
    # the lender's exposure now counts against the next application of the borrower and of the chain
    again = svc.decide(Application(1, "iot-working-capital", D("500000"), 12), assessment(1))
    assert again["exposure"] == {"borrower": "500000.00", "core": "500000.00"}
    other = svc.decide(Application(2, "iot-working-capital", D("500000"), 12), assessment(2))
    assert other["exposure"] == {"borrower": "0.00", "core": "1000000.00"}


def test_bad_applications_store_nothing(lite: DecisionService, sqlite_workspace: Workspace) -> None:
    svc, workspace = lite, sqlite_workspace
    with pytest.raises(NotFound, match="no enterprise 99"):
        svc.decide(Application(99, "iot-working-capital", D("500000"), 12), assessment(99))
    with pytest.raises(NotFound, match="no enterprise 42"):
        svc.decide(Application(1, "iot-working-capital", D("500000"), 12, core_enterprise_id=42), assessment(1))
    with pytest.raises(ValidationError, match="unknown product"):
        svc.decide(Application(1, "crypto", D("500000"), 12), assessment(1))
    with pytest.raises(ValidationError, match="out of range"):
        svc.decide(Application(1, "iot-working-capital", D("5"), 12), assessment(1))
    with pytest.raises(ValidationError, match="out of range"):
        svc.decide(Application(1, "iot-working-capital", D("3000000.01"), 12), assessment(1))
    with pytest.raises(ValidationError, match="tenor 37 months is out of range"):
        svc.decide(Application(1, "iot-working-capital", D("500000"), 37), assessment(1))
    with pytest.raises(ValidationError, match="tenor 13 months"):
        svc.decide(Application(1, "inventory-pledge", D("500000"), 13), assessment(1))
    with pytest.raises(ValidationError, match="assessment is of enterprise 2"):
        svc.decide(APP, assessment(2))
    with pytest.raises(ServiceUnavailable, match="no risk engine"):
        svc.decide(APP)
    assert svc.queue() == []
    with workspace.engine.connect() as conn:
        assert conn.execute(select(CreditDecision.id)).first() is None
    svc.decide(Application(1, "iot-working-capital", D("500000"), 12, ref="A-1"), assessment(1))
    with pytest.raises(Conflict, match="A-1"):
        svc.decide(Application(1, "iot-working-capital", D("500000"), 12, ref="A-1"), assessment(1))


def test_a_decision_and_its_anchor_commit_together(workspace: Workspace) -> None:
    """The anchor is written in the decision's own transaction: if anchoring fails, nothing of the
    application is stored (and no leaf is left behind); when it succeeds, the decision is anchored
    before decide returns."""
    add_enterprises(workspace.engine, range(1, 3))
    ledger = workspace.ledger

    def anchor_then_fail(conn, decision_id: str) -> None:  # noqa: ANN001
        ledger.anchor_from_source("credit_decision", [decision_id], checkpoint=False, conn=conn)
        raise RuntimeError("the ledger failed after the leaf was written")

    before = ledger.store.size()
    with pytest.raises(RuntimeError, match="ledger failed"):
        DecisionService(workspace.engine, anchor=anchor_then_fail, apr=offer_terms).decide(APP, assessment(1))
    assert ledger.store.size() == before
    with workspace.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM credit_applications")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM credit_decisions")).scalar() == 0
    decided = workspace.decisions().decide(APP, assessment(1))
    assert ledger.store.size() == before + 1
    ledger.checkpoint()
    assert verify_bundle(ledger.prove("credit_decision", str(decided["decision_id"])), ledger.verifier_key)
    assert ledger.audit()["ok"]


def test_a_strategy_without_a_decision_is_stored_as_a_referral(lite: DecisionService) -> None:
    graph = json.loads(default_strategy_text())
    decide_node = next(n for n in graph["nodes"] if n["id"] == "decide")
    decide_node["content"]["expressions"][0]["key"] = "verdict"  # says nothing under `decision`
    published = lite.publish(graph, by="risk")
    assert published["warnings"] and all("no decision" in w for w in published["warnings"])
    result = lite.decide(APP, assessment(1, grade="AAA", pd="0.001"))  # the best applicant: still not approved
    assert result["decision"] == "refer" and result["status"] == "referred"
    assert [r["code"] for r in result["reasons"]] == ["NO_DECISION"]
    assert lite.application(result["application_id"])["approved_amount"] is None  # no exposure taken
    assert [q["id"] for q in lite.queue()] == [result["application_id"]]


def test_assess_port_is_used(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    add_enterprises(workspace.engine, range(1, 3))
    seen = []
    svc = workspace.decisions(assess=lambda eid: seen.append(eid) or assessment(eid, grade="AA"))
    assert svc.decide(APP)["decision"] == "approve" and seen == [1]


def test_published_versions_are_immutable_in_the_database(svc: DecisionService, workspace: Workspace) -> None:
    published = svc.publish(default_strategy_text(), by="王敏 (risk)", note="first")
    assert published["version"] == 1 and published["warnings"] == []
    row = svc.versions()[0]
    assert row["published_by"] == "王敏 (risk)" and row["published_at"].tzinfo is not None
    svc.decide(APP, assessment(1))
    for statement in (update(DecisionStrategy).values(published_by="someone else"), delete(DecisionStrategy),
                      update(CreditDecision).values(decision="decline"), delete(CreditDecision)):
        with pytest.raises((IntegrityError, DBAPIError), match="immutable"), workspace.engine.begin() as conn:
            conn.execute(statement)
    with workspace.engine.connect() as conn:
        assert conn.execute(text("SELECT published_by FROM decision_strategies")).scalar() == "王敏 (risk)"


def test_malformed_strategy_is_rejected_at_publish_and_nothing_stored(lite: DecisionService) -> None:
    svc = lite
    graph = json.loads(default_strategy_text())
    graph["nodes"][1]["content"]["rules"][0]["admission-in-consent_ok"] = "== == false"
    with pytest.raises(StrategyError) as exc:
        svc.publish(graph, by="risk")
    assert exc.value.location["node_id"] == "admission" and exc.value.location["rule_index"] == 1
    assert svc.versions() == [] and svc.deployment() is None
    with pytest.raises(ValidationError, match="who publishes"):
        svc.publish(default_strategy_text(), by=" ")


def _stricter() -> dict:
    graph = json.loads(default_strategy_text())
    terms = next(n for n in graph["nodes"] if n["id"] == "grade-terms")
    for rule in terms["content"]["rules"]:
        if rule["_id"] == "grade-terms-r3":  # grade A now goes to review
            rule["grade-terms-in-grade"] = '"A-never"'
    return graph


def test_champion_challenger_split_and_rollback(lite: DecisionService) -> None:
    svc = lite
    svc.publish(default_strategy_text(), by="risk")
    v2 = svc.publish(_stricter(), by="risk", activate=False)["version"]
    assert svc.deployment()["champion_version"] == 1
    svc.deploy("default", 1, by="cro", challenger=v2, challenger_bps=5_000)
    arms = {eid: svc.decide(Application(eid, "iot-working-capital", D("100000"), 12), assessment(eid))["arm"]
            for eid in range(1, 7)}
    assert set(arms.values()) == {"champion", "challenger"}  # both arms used across six enterprises
    again = {eid: svc.decide(Application(eid, "iot-working-capital", D("100000"), 12), assessment(eid))
             for eid in range(1, 7)}
    assert {eid: r["arm"] for eid, r in again.items()} == arms  # stable per enterprise
    for r in again.values():
        assert r["decision"] == ("approve" if r["arm"] == "champion" else "refer")
        assert r["strategy_version"] == (1 if r["arm"] == "champion" else v2)
    svc.deploy("default", v2, by="cro")
    assert svc.rollback(by="cro")["challenger_version"] == v2  # back to the split
    rolled = svc.rollback(by="cro")
    assert rolled["champion_version"] == v2 and rolled["action"] == "rollback"
    with pytest.raises(ValidationError, match="challenger needs a share"):
        svc.deploy("default", 1, by="cro", challenger=2)
    with pytest.raises(NotFound, match="version 9"):
        svc.deploy("default", 9, by="cro")
    with pytest.raises(NotFound, match="never been deployed"):
        svc.rollback("other", by="cro")


def test_replay_shows_what_a_draft_would_change(lite: DecisionService) -> None:
    svc = lite
    for eid, grade in ((1, "A"), (2, "A"), (3, "AA"), (4, "B"), (5, "CCC")):
        svc.decide(Application(eid, "iot-working-capital", D("200000"), 12),
                   assessment(eid, grade=grade, pd={"A": "0.01", "AA": "0.005", "B": "0.05", "CCC": "0.2"}[grade]))
    report = svc.replay(_stricter())
    assert report["applications"] == 5
    assert report["current"]["approved"] == 3 and report["draft"]["approved"] == 1
    assert report["changes"] == {"approve->refer": 2} and report["changed"] == 2
    assert D(report["delta"]["volume"]) == D("-400000.00")
    assert D(report["delta"]["expected_loss"]) == -2 * D("200000") * D("0.01") * D("0.45")
    assert D(report["delta"]["approval_rate"]) == D("-0.4")
    assert svc.replay(_stricter(), workers=2) == report  # split over worker processes, same answer
    same = svc.replay(default_strategy_text())
    assert same["changed"] == 0 and same["current"] == same["draft"]
    broken = copy.deepcopy(_stricter())
    broken["edges"].append({"id": "x", "sourceId": "decide", "targetId": "zzz", "type": "edge"})
    with pytest.raises(StrategyError):
        svc.replay(broken)


def test_review_queue_with_four_eyes(svc: DecisionService) -> None:
    small = svc.decide(Application(1, "iot-working-capital", D("150000"), 12), assessment(1, grade="B", pd="0.05"))
    big = svc.decide(Application(2, "iot-working-capital", D("1800000"), 12),
                     assessment(2, pd="0.01", litigation=1, collateral="9000000", trade="9000000"))
    assert small["status"] == big["status"] == "referred"
    assert [q["id"] for q in svc.queue()] == [small["application_id"], big["application_id"]]
    evidence = svc.application(big["application_id"])
    assert evidence["decisions"][0]["result"]["reasons"][0]["code"] == "SOME_LITIGATION"
    assert evidence["decisions"][0]["result"]["assessment"]["features"]["litigation_count"] == 1

    with pytest.raises(ValidationError, match="needs a reason"):
        svc.review(small["application_id"], officer="li", action="approve", reason="  ")
    done = svc.review(small["application_id"], officer="li", action="approve", reason="核实订单真实 / orders verified")
    assert done["status"] == "approved" and done["officers"] == ["li"] and "年化利率" in done["disclosure"]["zh"]
    with pytest.raises(Conflict, match="not awaiting review"):
        svc.review(small["application_id"], officer="li", action="decline", reason="changed my mind")

    first = svc.review(big["application_id"], officer="li", action="approve", reason="诉讼已结案 / case closed")
    assert first["status"] == "awaiting_second_approval" and first["four_eyes"]
    with pytest.raises(Conflict, match="second, different officer"):
        svc.review(big["application_id"], officer="li", action="approve", reason="again")
    final = svc.review(big["application_id"], officer="zhao", action="approve", reason="同意 / agree")
    assert final["status"] == "approved" and final["officers"] == ["li", "zhao"]
    assert svc.application(big["application_id"])["approved_amount"] == D(big["offered_amount"])
    assert svc.queue() == []


def test_counter_offer_and_decline(lite: DecisionService) -> None:
    svc = lite
    a = svc.decide(Application(3, "iot-working-capital", D("300000"), 12), assessment(3, grade="B", pd="0.05"))
    with pytest.raises(ValidationError, match="needs amount"):
        svc.review(a["application_id"], officer="li", action="counter_offer", reason="smaller")
    with pytest.raises(ValidationError, match="legal ceiling"):
        svc.review(a["application_id"], officer="li", action="counter_offer", reason="x", amount="100000",
                   tenor_months=6, rate="0.30")
    with pytest.raises(ValidationError, match="out of range"):
        svc.review(a["application_id"], officer="li", action="counter_offer", reason="x", amount="1", tenor_months=6,
                   rate="0.08")
    offer = svc.review(a["application_id"], officer="li", action="counter_offer", reason="降额 / reduced",
                       amount="100000", tenor_months=6, rate="0.085")
    assert offer["decision"] == "counter_offer" and offer["offered_amount"] == "100000.00" and offer["rate"] == "0.085"
    b = svc.decide(Application(4, "iot-working-capital", D("300000"), 12), assessment(4, grade="B", pd="0.05"))
    out = svc.review(b["application_id"], officer="li", action="decline", reason="经营异常 / abnormal operations")
    assert out["status"] == "declined" and "offered_amount" not in out


def test_concurrent_decisions_cannot_spend_the_same_headroom(workspace: Workspace) -> None:
    add_enterprises(workspace.engine, range(1, 3))
    policy = DecisionPolicy(limits=LimitPolicy(single_borrower_max=D("1000000")))
    svc = DecisionService(workspace.engine, policy=policy, apr=offer_terms)
    svc.ensure_default()
    apps = [Application(1, "iot-working-capital", D("800000"), 12, ref=f"race-{i}") for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: svc.decide(a, assessment(1, grade="AA", pd="0.005")), apps))
    approved = sorted(D(r["offered_amount"]) for r in results if r["decision"] == "approve")
    assert sum(approved) == D("1000000.00") and approved == [D("250000.00"), D("750000.00")]  # activity limit 750k
    assert sorted(r["decision"] for r in results) == ["approve", "approve", "decline", "decline"]


@pytest.mark.parametrize("query", ["_BORROWER_EXPOSURE", "_CHAIN_EXPOSURE"])
def test_exposure_sums_read_the_approved_entries_of_an_index_only(sqlite_workspace: Workspace, query: str) -> None:
    """The sums every decision runs: by borrower or core enterprise *and* status, from the index alone
    (by owner alone they visited every application of a supply chain's core, a cost growing with the book)."""
    import iotfin.decision.store as store

    compiled = getattr(store, query).compile(sqlite_workspace.engine)
    values = compiled.construct_params({"eid": 1, "core": 1})
    with sqlite_workspace.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}", tuple(values[name] for name in compiled.positiontup or ())).all())
    assert "USING COVERING INDEX ix_credit_applications_" in plan and "=? AND status=?" in plan, plan
