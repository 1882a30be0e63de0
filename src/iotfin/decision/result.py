"""The decision: what a strategy's grade table gives, and the result a decision records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from iotfin.core.money import quantize_fen
from iotfin.decision.applications import Application
from iotfin.decision.limits import LimitBreakdown
from iotfin.decision.pricing import Pricing
from iotfin.decision.reasons import Reason
from iotfin.decision.values import ZERO

DECISIONS: tuple[str, ...] = ("approve", "decline", "refer")


@dataclass(frozen=True, slots=True)
class Terms:
    """What a strategy's grade table gives: the cap, the margin and the longest tenor."""

    limit_cap: Decimal
    margin: Decimal
    max_tenor_months: int


@dataclass(frozen=True, slots=True)
class DecisionResult:
    decision: str  # approve | decline | refer
    application: Application
    strategy: str
    strategy_version: int | None
    arm: str
    reasons: tuple[Reason, ...]
    offered_amount: Decimal | None = None
    tenor_months: int | None = None
    pricing: Pricing | None = None
    limit: LimitBreakdown | None = None
    apr: Decimal | None = None
    disclosure: Mapping[str, str] | None = None
    trace: Mapping[str, Any] = field(default_factory=dict)
    strategy_output: Mapping[str, Any] = field(default_factory=dict)

    def with_version(self, version: int) -> DecisionResult:
        return replace(self, strategy_version=version)

    @property
    def expected_loss(self) -> Decimal:
        """PD x LGD x offered amount, in yuan (zero for a decline)."""
        if self.offered_amount is None or self.pricing is None:
            return ZERO
        return quantize_fen(self.pricing.expected_loss * self.offered_amount)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision, "application": self.application.to_json(), "strategy": self.strategy,
            "strategy_version": self.strategy_version, "arm": self.arm,
            "reasons": [r.to_json() for r in self.reasons],
            "offered_amount": None if self.offered_amount is None else str(self.offered_amount),
            "tenor_months": self.tenor_months,
            "rate": None if self.pricing is None else str(self.pricing.gross_rate),
            "net_rate": None if self.pricing is None else str(self.pricing.net_rate),
            "apr": None if self.apr is None else str(self.apr),
            "disclosure": None if self.disclosure is None else dict(self.disclosure),
            "pricing": None if self.pricing is None else self.pricing.to_json(),
            "limit": None if self.limit is None else self.limit.to_json(),
            "expected_loss": str(self.expected_loss),
            "strategy_output": dict(self.strategy_output),
            "trace": dict(self.trace),
        }
