"""Strategies: the packaged default, malformed graphs rejected with the error located, and every
way a strategy can fail to decide ending in a referral, never an approval."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest
import zen

from iotfin.decision.applications import Application
from iotfin.decision.limits import Exposure
from iotfin.decision.pricing import PricingPolicy
from iotfin.decision.service import DecisionPolicy, evaluate_application
from iotfin.decision.strategies import (
    CompiledStrategy,
    StrategyError,
    compile_strategy,
    default_strategy_text,
)
from iotfin.lending.disclosure import offer_terms
from tests.decision.conftest import assessment

DEFAULT: dict[str, Any] = json.loads(default_strategy_text())
ON = date(2026, 12, 1)


def node(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in graph["nodes"] if n["id"] == node_id)


def decide(graph: dict[str, Any] | str, app: Application | None = None, policy: DecisionPolicy | None = None,
           **kw: Any):  # noqa: ANN201
    compiled, _ = compile_strategy(graph, samples=())
    app = app or Application(1, "iot-working-capital", D("500000"), 12)
    return evaluate_application(compiled, app, assessment(1, **kw), policy or DecisionPolicy(), Exposure(), ON,
                                apr=offer_terms)


def test_default_strategy_is_a_jdm_graph_that_compiles_cleanly() -> None:
    assert DEFAULT["contentType"] == "application/vnd.gorules.decision"
    compiled, warnings = compile_strategy(default_strategy_text())
    assert warnings == [] and len(compiled.sha256) == 64
    kinds = {n["type"] for n in DEFAULT["nodes"]}
    assert {"inputNode", "decisionTableNode", "expressionNode", "outputNode"} <= kinds


@pytest.mark.parametrize(("kw", "decision", "codes"), [
    ({}, "approve", []),
    ({"consent": False}, "decline", ["NO_CONSENT"]),
    ({"coverage": "0.3"}, "decline", ["LOW_DEVICE_COVERAGE"]),
    ({"history": 30}, "decline", ["SHORT_HISTORY"]),
    ({"litigation": 3}, "decline", ["LITIGATION"]),
    ({"blacklisted": True}, "decline", ["BLACKLIST"]),
    ({"grade": "CCC", "pd": "0.2"}, "decline", ["GRADE_TOO_LOW"]),
    ({"grade": "B", "pd": "0.05"}, "refer", ["REVIEW_GRADE_B"]),
    ({"pd": "0.09"}, "refer", ["HIGH_PD"]),
    ({"litigation": 1}, "refer", ["SOME_LITIGATION"]),
    ({"coverage": "0.6"}, "refer", ["PARTIAL_COVERAGE"]),
    ({"transaction": "30"}, "refer", ["WEAK_TRANSACTION"]),
])
def test_default_admission_and_routing(kw: dict[str, Any], decision: str, codes: list[str]) -> None:
    result = decide(DEFAULT, **kw)
    assert result.decision == decision
    assert [r.code for r in result.reasons] == codes
    assert all(r.zh and r.en for r in result.reasons)
    if decision != "decline":
        assert result.pricing is not None and result.limit is not None and result.disclosure is not None
    # the trace says which rows matched in which node
    matched = {nid: t["matched"] for nid, t in result.trace.items()}
    assert matched["grade-terms"] == {"A": ["grade-terms-r3"], "B": ["grade-terms-r6"], "CCC": []}[kw.get("grade", "A")]
    assert matched["admission"] == [f"admission-r{i}" for i in range(1, 7) if
                                    ["NO_CONSENT", "LOW_DEVICE_COVERAGE", "SHORT_HISTORY", "LITIGATION", "BLACKLIST",
                                     "GRADE_TOO_LOW"][i - 1] in codes]
    assert matched["decide"] == [{"decision": decision}] or result.decision != decision


def test_amount_above_limit_is_approved_for_less_and_says_so() -> None:
    result = decide(DEFAULT, Application(1, "iot-working-capital", D("1500000"), 30), trade="2000000")
    assert result.decision == "approve" and result.offered_amount == D("500000.00")  # 25 % of the trade volume
    assert [r.code for r in result.reasons] == ["LIMIT_REDUCED", "TENOR_REDUCED"] and result.tenor_months == 24
    assert result.limit is not None and result.limit.binding == "activity_based"


def test_limit_below_product_minimum_declines_and_names_what_binds() -> None:
    result = decide(DEFAULT, collateral="60000", trade="100000")
    assert result.decision == "decline" and [r.code for r in result.reasons] == ["LIMIT_BELOW_MINIMUM"]
    assert "经营流水" in result.reasons[0].zh and "activity" in result.reasons[0].en


def test_collateral_binds_only_for_the_collateral_secured_product() -> None:
    """The limit policy per product: an enterprise with no IoT-verified stock gets an unsecured
    working-capital or receivable-financing loan sized on its activity, but no inventory pledge;
    with stock, the pledge loan is limited by collateral x advance rate."""
    no_stock = {"collateral": "0", "trade": "2000000"}
    for product, tenor in (("iot-working-capital", 12), ("receivable-financing", 6)):
        result = decide(DEFAULT, Application(1, product, D("300000"), tenor), **no_stock)
        assert result.decision == "approve" and result.offered_amount == D("300000.00"), product
        assert result.limit is not None and not result.limit.secured and result.limit.asset_based == D("0.00")
        assert result.limit.to_json()["secured"] is False
    pledge = decide(DEFAULT, Application(1, "inventory-pledge", D("300000"), 6), **no_stock)
    assert pledge.decision == "decline" and pledge.limit is not None and pledge.limit.binding == "asset_based"
    assert pledge.limit.secured and "押品" in pledge.reasons[0].zh and "collateral" in pledge.reasons[0].en
    stocked = decide(DEFAULT, Application(1, "inventory-pledge", D("900000"), 6), collateral="1000000", trade="9000000")
    assert stocked.decision == "approve" and stocked.offered_amount == D("600000.00")  # 60 % advance rate
    assert stocked.limit is not None and stocked.limit.binding == "asset_based"
    # unsecured, but no verified activity either: nothing to lend against
    idle = decide(DEFAULT, Application(1, "iot-working-capital", D("300000"), 12), collateral="5000000", trade="0")
    assert idle.decision == "decline" and idle.limit is not None and idle.limit.binding == "activity_based"
    # the policy is data: the same enterprise under a catalogue where working capital is secured
    secured = {**DecisionPolicy().products}
    secured["iot-working-capital"] = replace(secured["iot-working-capital"], collateral_secured=True)
    strict = decide(DEFAULT, Application(1, "iot-working-capital", D("300000"), 12),
                    policy=DecisionPolicy(products=secured), **no_stock)
    assert strict.decision == "decline" and strict.limit is not None and strict.limit.binding == "asset_based"


def test_price_over_the_ceiling_with_raroc_below_hurdle_is_referred() -> None:
    result = decide(DEFAULT, policy=DecisionPolicy(pricing=PricingPolicy(cap_rate=D("0.06"))), pd="0.075", grade="BB")
    assert result.pricing is not None and result.pricing.bound == "cap" and result.pricing.raroc < D("0.12")
    assert result.decision == "refer" and [r.code for r in result.reasons] == ["PRICE_ABOVE_CEILING"]


def test_no_decision_unknown_decision_and_missing_terms_are_referrals() -> None:
    silent = copy.deepcopy(DEFAULT)
    node(silent, "decide")["content"]["expressions"][0]["key"] = "verdict"
    assert decide(silent).decision == "refer" and decide(silent).reasons[0].code == "NO_DECISION"
    odd = copy.deepcopy(DEFAULT)
    node(odd, "decide")["content"]["expressions"][0]["value"] = "'yes please'"
    assert decide(odd).decision == "refer"
    termless = copy.deepcopy(DEFAULT)
    node(termless, "decide")["content"]["expressions"][0]["value"] = "'approve'"
    assert decide(termless, grade="CCC", pd="0.2").decision == "refer"
    assert decide(termless, grade="CCC", pd="0.2").reasons[0].code == "TERMS_MISSING"
    _, warnings = compile_strategy(silent)
    assert warnings and all("no decision" in w for w in warnings)


def test_a_strategy_failing_at_run_time_gives_a_referral() -> None:
    broken = copy.deepcopy(DEFAULT)
    node(broken, "decide")["content"]["expressions"][0]["value"] = "features.missing.deeper + 1 > 0 ? 'approve' : 'approve'"
    with pytest.raises(StrategyError) as exc:
        compile_strategy(broken)  # the samples catch it at publish
    assert exc.value.location["node_id"] == "decide"
    # published before this check existed, or failing only on some inputs: decided as a referral
    unchecked = CompiledStrategy(json.dumps(broken), broken, zen.ZenEngine().create_decision(json.dumps(broken)),
                                 {n["id"]: n for n in broken["nodes"]})
    result = evaluate_application(unchecked, Application(1, "iot-working-capital", D("500000"), 12),
                                  assessment(1), DecisionPolicy(), Exposure(), ON, apr=offer_terms)
    assert result.decision == "refer" and result.reasons[0].code == "NO_DECISION"
    assert "Decide" in result.reasons[0].en


def _bad(change) -> StrategyError:  # noqa: ANN001
    graph = copy.deepcopy(DEFAULT)
    change(graph)
    with pytest.raises(StrategyError) as exc:
        compile_strategy(graph)
    return exc.value


def test_malformed_cells_are_located_by_node_rule_and_column() -> None:
    err = _bad(lambda g: node(g, "admission")["content"]["rules"][3].update({"admission-in-litigation_count": ">= >= 3"}))
    assert err.location == {"node_id": "admission", "node_name": "Admission / 准入（硬性拒绝）", "rule_index": 4,
                            "rule_id": "admission-r4", "column": "Litigation / 涉诉"}
    assert "rule 4 [admission-r4]" in str(err) and "parserError" in str(err)
    err = _bad(lambda g: node(g, "grade-terms")["content"]["rules"][0].update({"grade-terms-out-margin": "0.004 +"}))
    assert err.location["rule_id"] == "grade-terms-r1" and err.location["column"] == "Margin / 利润加点"
    err = _bad(lambda g: node(g, "decide")["content"]["expressions"][0].update({"value": "len(declines > 0 ?"}))
    assert err.location["node_id"] == "decide" and err.location["column"] == "decision"


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda g: g["edges"].append({"id": "x", "sourceId": "decide", "targetId": "nowhere", "type": "edge"}), "missing node"),
    (lambda g: g["edges"].append({"id": "x", "sourceId": "decide", "targetId": "request", "type": "edge"}), "cyclic"),
    (lambda g: node(g, "admission")["content"].pop("hitPolicy"), "hitPolicy"),
    (lambda g: g["nodes"].append(copy.deepcopy(g["nodes"][0])), "duplicate node id"),
    (lambda g: g.pop("edges"), "'edges' list"),
    (lambda g: g["nodes"].__delitem__(0), "exactly one input node"),
])
def test_malformed_graphs_are_rejected(change, fragment: str) -> None:  # noqa: ANN001
    assert fragment in str(_bad(change))


def test_not_json_is_rejected() -> None:
    with pytest.raises(StrategyError, match="not JSON"):
        compile_strategy("{nodes: oops")
