"""Warning rules as a versioned JDM decision model, evaluated with zen-engine.

A rule set maps one signal event (signal, device type, whether the condition is already held, value)
to a tier and an incident type. Thresholds for entering and for leaving a condition are rows of the
same table (the `active` column), so hysteresis is data, reviewed and versioned like any other rule.
A model that does not parse or compile, or that answers without a valid tier, is refused at load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import zen

from iotfin.core.errors import ValidationError
from iotfin.monitor.model import Decision, SignalEvent, Tier

MEMO_SIZE = 100_000
REQUIRED_OUTPUTS = ("tier", "incident_type", "rule", "reason_zh", "reason_en")
# Probe inputs every rule set must answer (with a valid tier) before it is accepted.
_PROBES = ({"signal": "geofence_exit", "device_type": "gps_tracker", "active": False, "value": 1.0},
           {"signal": "inventory_drop", "device_type": "load_cell", "active": True, "value": 0.0},
           {"signal": "no_such_signal", "device_type": "", "active": False, "value": 0.0})


@dataclass
class RuleSet:
    version: str
    digest: str  # sha256 of the model as loaded: which rules raised an alert is on record
    content: str
    _decision: Any
    _memo: dict[tuple[str, str, bool, float], Decision] = field(default_factory=dict)

    @staticmethod
    def load(text: str | bytes, version: str | None = None) -> RuleSet:
        raw = text.decode() if isinstance(text, bytes) else text
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"rules: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
            raise ValidationError("rules: not a JDM decision model (no 'nodes' list)")
        version = version or str((doc.get("metadata") or {}).get("version") or "")
        if not version:
            raise ValidationError("rules: a version is required (metadata.version or --version)")
        try:
            decision = zen.ZenEngine().create_decision(raw)
        except Exception as exc:  # zen raises plain RuntimeError/ValueError with the parser's message
            raise ValidationError(f"rules {version}: does not compile: {_one_line(exc)}") from None
        _check_cells(doc, version)
        try:
            decision.validate()
        except Exception as exc:
            raise ValidationError(f"rules {version}: does not compile: {_one_line(exc)}") from None
        rules = RuleSet(version, hashlib.sha256(raw.encode()).hexdigest(), raw, decision)
        for probe in _PROBES:
            rules._evaluate(probe)
        return rules

    @staticmethod
    def default() -> RuleSet:
        return RuleSet.load(resources.files("iotfin.monitor").joinpath("rules/warning_rules.json").read_text())

    def _evaluate(self, context: dict[str, Any]) -> Decision:
        try:
            result = self._decision.evaluate(context)["result"]
        except Exception as exc:
            raise ValidationError(f"rules {self.version}: evaluation failed: {_one_line(exc)}") from None
        missing = [k for k in REQUIRED_OUTPUTS if k not in result]
        if missing:
            raise ValidationError(f"rules {self.version}: output lacks {', '.join(missing)} for input {context}")
        return Decision(Tier.parse(str(result["tier"])), str(result["incident_type"]), str(result["rule"]),
                        str(result["reason_zh"]), str(result["reason_en"]))

    def decide(self, event: SignalEvent, active: bool) -> Decision:
        # A decision model is a pure function of its input and signal values are quantised (5 % or
        # 10 % steps, 0/1 conditions), so answers are memoised per input: zen costs ~0.5-1 ms a call.
        key = (event.signal, event.device_type, active, event.value)
        decision = self._memo.get(key)
        if decision is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            decision = self._memo[key] = self._evaluate(
                {"signal": event.signal, "device_type": event.device_type, "active": active, "value": event.value})
        return decision


def _one_line(exc: Exception) -> str:
    """zen's messages carry a Rust backtrace after a blank line; keep the cause, on one line."""
    text = str(exc).split("Stack backtrace")[0]
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _check_cells(doc: dict[str, Any], version: str) -> None:
    """Compile every decision-table cell: zen treats a malformed cell as 'no match' at run time,
    which would silently disable a rule; refuse the model instead, naming the rule and column."""
    for node in doc["nodes"]:
        if not isinstance(node, dict) or node.get("type") != "decisionTableNode":
            continue
        content = node.get("content") or {}
        inputs = {c.get("id") for c in content.get("inputs", [])}
        outputs = {c.get("id") for c in content.get("outputs", [])}
        for row in content.get("rules", []):
            for column, cell in row.items():
                if column == "_id" or not isinstance(cell, str) or not cell.strip():
                    continue
                # compile_*, not validate_*: in zen 2.1 validate_unary_expression rejects valid
                # unary tests such as ">= 1".
                if column in inputs:
                    compile_cell = zen.compile_unary_expression
                elif column in outputs:
                    compile_cell = zen.compile_expression
                else:
                    continue
                try:
                    compile_cell(cell)
                except Exception as exc:
                    raise ValidationError(f"rules {version}: rule {row.get('_id')} column {column}: "
                                          f"{_one_line(exc)} in {cell!r}") from None
