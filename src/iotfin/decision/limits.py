"""Credit limits: the minimum of the asset-based, activity-based, strategy and exposure-policy limits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from iotfin.core.money import quantize_fen
from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.values import ZERO


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """activity_share: share of verified annual trade volume (or, failing that, of the annual revenue
    the enterprise's electricity use supports, at `capacity_share`) that can be lent; the exposure
    caps are the lender's concentration policy on one borrower and on one core enterprise's chain."""

    activity_share: Decimal = Decimal("0.25")
    capacity_share: Decimal = Decimal("0.15")
    single_borrower_max: Decimal = Decimal("5000000")
    per_core_max: Decimal = Decimal("30000000")
    rounding: Decimal = Decimal("100")  # offers are rounded down to whole hundreds of yuan


@dataclass(frozen=True, slots=True)
class Exposure:
    """The lender's existing exposure: to the borrower, and to the borrower's core enterprise's chain."""

    borrower: Decimal = ZERO
    core: Decimal = ZERO

    def to_json(self) -> dict[str, str]:
        return {"borrower": str(self.borrower), "core": str(self.core)}


@dataclass(frozen=True, slots=True)
class LimitBreakdown:
    asset_based: Decimal
    activity_based: Decimal
    activity_basis: str
    strategy_cap: Decimal
    single_borrower_headroom: Decimal
    core_headroom: Decimal | None
    limit: Decimal
    binding: str
    secured: bool = True  # whether the asset-based limit took part (collateral-secured product)

    def to_json(self) -> dict[str, Any]:
        return {"secured": self.secured, "asset_based": str(self.asset_based), "activity_based": str(self.activity_based),
                "activity_basis": self.activity_basis, "strategy_cap": str(quantize_fen(self.strategy_cap)),
                "single_borrower_headroom": str(self.single_borrower_headroom),
                "core_headroom": None if self.core_headroom is None else str(self.core_headroom),
                "limit": str(self.limit), "binding": self.binding}


def credit_limit(assessment: RiskAssessment, advance_rate: Decimal, strategy_cap: Decimal, exposure: Exposure,
                 policy: LimitPolicy, has_core: bool, secured: bool = True) -> LimitBreakdown:
    """min(asset-based, activity-based, strategy cap, exposure headroom), rounded down, never negative.
    The asset-based limit takes part only for a collateral-secured product (`secured`); for an
    unsecured one it is still computed and reported, but the other limits decide."""
    asset = quantize_fen(assessment.collateral_value * advance_rate)
    if assessment.trade_volume_12m > 0:
        activity, basis = quantize_fen(assessment.trade_volume_12m * policy.activity_share), "trade_volume"
    else:
        activity, basis = quantize_fen(assessment.capacity_revenue_12m * policy.capacity_share), "electricity_capacity"
    single = max(ZERO, policy.single_borrower_max - exposure.borrower)
    core = max(ZERO, policy.per_core_max - exposure.core) if has_core else None
    candidates = {"activity_based": activity, "strategy_cap": strategy_cap, "single_borrower": single}
    if secured:
        candidates = {"asset_based": asset} | candidates  # (first: it is named when it ties)
    if core is not None:
        candidates["core_enterprise"] = core
    binding = min(candidates, key=lambda k: candidates[k])
    limit = max(ZERO, candidates[binding])
    limit = (limit / policy.rounding).to_integral_value(ROUND_DOWN) * policy.rounding
    return LimitBreakdown(asset, activity, basis, strategy_cap, single, core, quantize_fen(limit), binding, secured)
