"""Strategies as data: JSON Decision Models (GoRules JDM) compiled and evaluated with zen-engine.

A strategy is a JDM graph a risk officer edits in the open GoRules editor. What the service expects
of it (see docs/decisioning.md): from the input context (`strategy_context`) it produces
`decision` ("approve" | "decline" | "refer"), `declines` and `referrals` (lists of
{code, zh, en}) and, for the grade, `terms` {limit_cap, margin, max_tenor_months}. Anything else
(no decision, an unknown one, approval without terms) is turned into a referral by the service,
never an approval.

zen-engine compiles rule cells lazily and a cell that does not parse simply never matches, so
`compile_strategy` checks every cell and expression itself first and names the node, the rule row
and the column of the first error it finds; then it has zen-engine build and validate the graph and
evaluates it on sample inputs, so an expression that fails at run time is caught at publish too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson
import zen

from iotfin.core.errors import ValidationError
from iotfin.decision.applications import Application
from iotfin.decision.assessment import GRADES, RiskAssessment
from iotfin.decision.reasons import Reason
from iotfin.decision.result import Terms


class StrategyError(ValidationError):
    """A malformed strategy, with where the error is: node, rule row, column."""

    code = "strategy-invalid"

    def __init__(self, message: str, *, node_id: str | None = None, node_name: str | None = None,
                 rule_index: int | None = None, rule_id: str | None = None, column: str | None = None):
        where = []
        if node_id is not None:
            where.append(f"node {node_id!r}" + (f" ({node_name})" if node_name else ""))
        if rule_index is not None:
            where.append(f"rule {rule_index}" + (f" [{rule_id}]" if rule_id else ""))
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(("in " + ", ".join(where) + ": " if where else "") + message)
        self.location = {"node_id": node_id, "node_name": node_name, "rule_index": rule_index, "rule_id": rule_id,
                         "column": column}

    def problem_extra(self) -> dict[str, object]:
        return {"location": self.location}


def default_strategy_text() -> str:
    return resources.files("iotfin.decision").joinpath("data/default_strategy.json").read_text(encoding="utf-8")


def _zen_error(exc: Exception) -> dict[str, Any]:
    """zen-engine raises RuntimeError whose first line is JSON (or plain text), then a backtrace."""
    first = str(exc).split("\n\nStack backtrace", 1)[0].strip()
    try:
        data = json.loads(first)
        return data if isinstance(data, dict) else {"source": first}
    except ValueError:
        return {"source": first}


# --- static checks, with locations ---------------------------------------------------------------


def _check_structure(graph: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(graph, dict):
        raise StrategyError("a JDM strategy is a JSON object with 'nodes' and 'edges'")
    nodes, edges = graph.get("nodes"), graph.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise StrategyError("a JDM strategy needs a 'nodes' list and an 'edges' list")
    by_id: dict[str, dict[str, Any]] = {}
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str) or not isinstance(node.get("type"), str):
            raise StrategyError(f"nodes[{i}] needs a string 'id' and 'type'")
        if node["id"] in by_id:
            raise StrategyError("duplicate node id", node_id=node["id"], node_name=node.get("name"))
        by_id[node["id"]] = node
    kinds = [n["type"] for n in nodes]
    if kinds.count("inputNode") != 1 or kinds.count("outputNode") < 1:
        raise StrategyError("a strategy needs exactly one input node and at least one output node")
    for i, edge in enumerate(edges):
        if not isinstance(edge, dict):
            raise StrategyError(f"edges[{i}] is not an object")
        for end in ("sourceId", "targetId"):
            if edge.get(end) not in by_id:
                raise StrategyError(f"edges[{i}] ({edge.get('id')}) points at a missing node {edge.get(end)!r}")
    return by_id


def _compile_cell(text: str, unary: bool) -> str | None:
    try:
        (zen.compile_unary_expression if unary else zen.compile_expression)(text)
    except Exception as exc:  # noqa: BLE001 - zen raises RuntimeError with a JSON description
        err = _zen_error(exc)
        return f"{err.get('type', 'error')}: {err.get('source', err)} in {text!r}"
    return None


def _check_cells(by_id: Mapping[str, dict[str, Any]]) -> None:
    for node in by_id.values():
        content = node.get("content") or {}
        nid, name = node["id"], node.get("name")
        if node["type"] == "decisionTableNode":
            if content.get("hitPolicy") not in ("first", "collect"):
                raise StrategyError(f"hitPolicy must be 'first' or 'collect', got {content.get('hitPolicy')!r}",
                                    node_id=nid, node_name=name)
            inputs = {c["id"]: c for c in content.get("inputs") or [] if isinstance(c, dict) and "id" in c}
            outputs = {c["id"]: c for c in content.get("outputs") or [] if isinstance(c, dict) and "id" in c}
            for c in outputs.values():
                if not c.get("field"):
                    raise StrategyError("an output column needs a field", node_id=nid, node_name=name, column=c.get("name"))
            for index, rule in enumerate(content.get("rules") or [], start=1):
                if not isinstance(rule, dict):
                    raise StrategyError("a rule is not an object", node_id=nid, node_name=name, rule_index=index)
                for col_id, cell in rule.items():
                    if col_id.startswith("_") or cell in (None, ""):
                        continue
                    col = inputs.get(col_id) or outputs.get(col_id)
                    if col is None:
                        raise StrategyError(f"cell for unknown column id {col_id!r}", node_id=nid, node_name=name,
                                            rule_index=index, rule_id=rule.get("_id"))
                    problem = _compile_cell(str(cell), unary=col_id in inputs and bool(col.get("field")))
                    if problem:
                        raise StrategyError(problem, node_id=nid, node_name=name, rule_index=index,
                                            rule_id=rule.get("_id"), column=col.get("name") or col.get("field"))
        elif node["type"] == "expressionNode":
            for index, expr in enumerate(content.get("expressions") or [], start=1):
                problem = _compile_cell(str(expr.get("value", "")), unary=False)
                if problem:
                    raise StrategyError(problem, node_id=nid, node_name=name, rule_index=index, rule_id=expr.get("id"),
                                        column=expr.get("key"))


# --- the input context -------------------------------------------------------------------------


def _num(value: Any) -> Any:
    """Numbers for rule comparison only (thresholds, bands); money is never booked from these."""
    if isinstance(value, Decimal):
        return float(value)
    return value


def strategy_context(app: Application, assessment: RiskAssessment) -> dict[str, Any]:
    """The flat JSON a strategy reads. Standard fields at the top; every feature also under `features`."""
    features = {k: _num(v) for k, v in assessment.features.items()}
    return {
        "product": app.product, "amount": float(app.amount), "tenor_months": app.tenor_months,
        "grade": assessment.grade, "pd": float(assessment.pd), "consent_ok": assessment.consent_ok,
        "entity_score": float(assessment.sub_scores["entity"]), "asset_score": float(assessment.sub_scores["asset"]),
        "transaction_score": float(assessment.sub_scores["transaction"]),
        "device_coverage": features.get("device_coverage"), "history_days": features.get("history_days"),
        "litigation_count": features.get("litigation_count"), "blacklisted": bool(features.get("blacklisted", False)),
        "collateral_value": float(assessment.collateral_value), "trade_volume_12m": float(assessment.trade_volume_12m),
        "features": features,
    }


def sample_inputs() -> list[tuple[Application, RiskAssessment]]:
    """Inputs every strategy is evaluated on before it is published: each grade, plus the edges."""
    as_of = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i, grade in enumerate(GRADES):
        for consent, coverage, litigation in ((True, Decimal("0.95"), 0), (False, Decimal("0.3"), 4)):
            assessment = RiskAssessment(
                enterprise_id=1, grade=grade, pd=Decimal("0.005") * (i + 1) ** 2 / 2,
                sub_scores={"entity": Decimal(80 - 7 * i), "asset": Decimal(75 - 6 * i), "transaction": Decimal(78 - 8 * i)},
                features={"device_coverage": coverage, "history_days": 400 - 40 * i, "litigation_count": litigation,
                          "blacklisted": litigation > 3},
                reasons=(), consent_ok=consent, as_of=as_of, collateral_value=Decimal("1000000"),
                trade_volume_12m=Decimal("4000000"))
            out.append((Application(1, "iot-working-capital", Decimal("300000"), 12), assessment))
    return out


# --- compiled strategies -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrategyOutcome:
    decision: str | None  # what the strategy said, unvalidated
    declines: tuple[Reason, ...]
    referrals: tuple[Reason, ...]
    terms: Terms | None
    output: Mapping[str, Any]
    trace: Mapping[str, Any] = field(default_factory=dict)


def _reasons(value: Any) -> tuple[Reason, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(Reason.from_json(v) for v in value if isinstance(v, dict) and v.get("code"))


def _terms(value: Any) -> Terms | None:
    if not isinstance(value, dict):
        return None
    try:
        cap = Decimal(str(value["limit_cap"]))
        margin = Decimal(str(value["margin"]))
        tenor = int(value["max_tenor_months"])
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None
    if cap < 0 or tenor <= 0 or not cap.is_finite() or not margin.is_finite():
        return None
    return Terms(cap, margin, tenor)


def compact_trace(trace: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The rule trace kept with a decision: for each rule node, in evaluation order, its name and the
    ids of the rules that matched (the outputs are in the strategy output kept beside it)."""
    out = {}
    for nid, t in sorted(trace.items(), key=lambda kv: kv[1].get("order", 0)):
        if nodes.get(nid, {}).get("type") in ("inputNode", "outputNode"):
            continue  # they carry nothing to explain
        data = t.get("traceData")
        if isinstance(data, list):
            matched = [d.get("rule", {}).get("_id") for d in data if isinstance(d, dict)]
        elif isinstance(data, dict) and "rule" in data:
            matched = [data["rule"].get("_id")]
        elif isinstance(data, dict):  # an expression node: each key and its value
            matched = [{k: v.get("result") if isinstance(v, dict) else v} for k, v in data.items()]
        else:
            matched = []  # a table where no rule matched
        out[nid] = {"order": t.get("order"), "name": t.get("name"), "matched": matched}
    return out


def outcome_from_result(result: Mapping[str, Any], trace: Mapping[str, Any] | None = None,
                        nodes: Mapping[str, Mapping[str, Any]] | None = None) -> StrategyOutcome:
    decision = result.get("decision")
    return StrategyOutcome(decision if isinstance(decision, str) else None, _reasons(result.get("declines")),
                           _reasons(result.get("referrals")), _terms(result.get("terms")), dict(result),
                           compact_trace(trace, nodes or {}) if trace else {})


class CompiledStrategy:
    """A validated JDM graph, ready to evaluate. Thread-safe: zen decisions may be shared."""

    def __init__(self, text: str, graph: dict[str, Any], decision: Any, nodes: Mapping[str, dict[str, Any]]):
        self.text = text
        self.graph = graph
        self.decision = decision
        self.nodes = nodes
        self.sha256 = hashlib.sha256(canonical_text(graph).encode()).hexdigest()

    def evaluate(self, context: Mapping[str, Any], trace: bool = True) -> StrategyOutcome:
        try:
            response = self.decision.evaluate(orjson.dumps(context).decode(), {"trace": trace})
        except Exception as exc:  # noqa: BLE001 - a run-time failure is a referral, not an approval
            err = _zen_error(exc)
            node = self.nodes.get(str(err.get("nodeId")), {})
            raise StrategyError(f"evaluation failed: {err.get('source', err)}", node_id=err.get("nodeId"),
                                node_name=node.get("name")) from None
        return outcome_from_result(response["result"], response.get("trace"), self.nodes)

    async def evaluate_async(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        return (await self.decision.async_evaluate(orjson.dumps(context).decode()))["result"]


def canonical_text(graph: Mapping[str, Any]) -> str:
    return json.dumps(graph, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


_ENGINE = zen.ZenEngine()


def compiled_graph(graph: Mapping[str, Any]) -> CompiledStrategy:
    """A graph that was validated when it was published or compiled, rebuilt (e.g. in a worker)."""
    text = canonical_text(graph)
    return CompiledStrategy(text, dict(graph), _ENGINE.create_decision(text), {n["id"]: n for n in graph["nodes"]})


def compile_strategy(content: str | bytes | Mapping[str, Any], samples: Sequence[tuple[Application, RiskAssessment]] | None = None
                     ) -> tuple[CompiledStrategy, list[str]]:
    """Parse, check, build and try a strategy. Returns it and warnings (sample inputs for which it
    returned no usable decision: those would be referrals). Raises StrategyError, located."""
    if isinstance(content, Mapping):
        graph: Any = dict(content)
    else:
        try:
            graph = json.loads(content)
        except ValueError as exc:
            raise StrategyError(f"not JSON: {exc}") from None
    nodes = _check_structure(graph)
    _check_cells(nodes)
    text = canonical_text(graph)
    try:
        decision = _ENGINE.create_decision(text)
        decision.validate()
    except Exception as exc:  # noqa: BLE001 - zen's RuntimeError carries the graph error as JSON
        err = _zen_error(exc)
        source = err.get("source")
        node_id = err.get("nodeId") or (source.get("nodeId") if isinstance(source, dict) else None)
        raise StrategyError(f"zen-engine rejected the graph: {err}", node_id=node_id,
                            node_name=nodes.get(str(node_id), {}).get("name") if node_id else None) from None
    compiled = CompiledStrategy(text, graph, decision, nodes)
    warnings = []
    for i, (app, assessment) in enumerate(samples if samples is not None else sample_inputs()):
        outcome = compiled.evaluate(strategy_context(app, assessment), trace=False)
        if outcome.decision not in ("approve", "decline", "refer"):
            warnings.append(f"sample {i} (grade {assessment.grade}): no decision ({outcome.decision!r}); "
                            "it would be referred")
        elif outcome.decision == "approve" and outcome.terms is None:
            warnings.append(f"sample {i} (grade {assessment.grade}): approval without terms; it would be referred")
    return compiled, warnings
