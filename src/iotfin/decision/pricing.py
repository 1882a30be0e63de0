"""Risk-based pricing: LPR base + expected loss, operating cost, capital charge and margin; floors,
caps and the legal ceiling; RAROC; a third-party interest subsidy (贴息) gives a gross and a net rate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from iotfin.decision.lpr import LprCurve
from iotfin.decision.values import BP, RATE_QUANTUM, ZERO


@dataclass(frozen=True, slots=True)
class PricingPolicy:
    """The lender's pricing parameters (annual rates as fractions).

    capital_ratio is the economic capital held per yuan lent (e.g. 8 % x 75 % SME risk weight);
    the capital charge is that capital's required return at the hurdle rate. The legal ceiling is
    the lower of `ceiling_lpr_multiple` x the 1-year LPR (the judicial protection ceiling for private
    lending, 4 x LPR) and `ceiling_abs`; a lender can tighten both.
    """

    funding_cost: Decimal = Decimal("0.0180")
    opex_rate: Decimal = Decimal("0.0100")
    capital_ratio: Decimal = Decimal("0.0600")
    hurdle_rate: Decimal = Decimal("0.1200")
    base_margin: Decimal = Decimal("0.0000")
    floor_rate: Decimal = Decimal("0.0300")
    cap_rate: Decimal = Decimal("0.1800")
    ceiling_lpr_multiple: Decimal = Decimal("4")
    ceiling_abs: Decimal = Decimal("0.2400")


@dataclass(frozen=True, slots=True)
class Pricing:
    base_rate: Decimal
    base_source: str
    expected_loss: Decimal
    operating_cost: Decimal
    capital_charge: Decimal
    margin: Decimal
    risk_rate: Decimal  # base + spread before floors and caps
    gross_rate: Decimal  # what the loan bears, after floors and caps
    subsidy_rate: Decimal
    net_rate: Decimal  # what the borrower pays after the third-party subsidy
    floor: Decimal
    cap: Decimal
    legal_ceiling: Decimal
    bound: str | None  # "floor", "cap", "legal_ceiling" or None
    raroc: Decimal

    @property
    def spread(self) -> Decimal:
        return self.expected_loss + self.operating_cost + self.capital_charge + self.margin

    def to_json(self) -> dict[str, Any]:
        return {"base_rate": str(self.base_rate), "base_source": self.base_source, "spread": str(self.spread),
                "expected_loss": str(self.expected_loss), "operating_cost": str(self.operating_cost),
                "capital_charge": str(self.capital_charge), "margin": str(self.margin),
                "risk_rate": str(self.risk_rate), "gross_rate": str(self.gross_rate),
                "subsidy_rate": str(self.subsidy_rate), "net_rate": str(self.net_rate), "floor": str(self.floor),
                "cap": str(self.cap), "legal_ceiling": str(self.legal_ceiling), "bound": self.bound,
                "raroc": str(self.raroc)}


def price(pd: Decimal, lgd: Decimal, margin: Decimal, tenor_months: int, on: date, curve: LprCurve,
          policy: PricingPolicy, subsidy_rate: Decimal = ZERO) -> Pricing:
    """Risk-based price: base (LPR) + EL (PD x LGD) + operating cost + capital x hurdle + margin,
    bounded by the floor, the cap and the legal ceiling; RAROC of the resulting rate:

        RAROC = (gross rate - funding cost - operating cost - expected loss) / capital ratio

    The subsidy lowers what the borrower pays (net rate, never below zero), not what the loan earns.
    """
    base, source = curve.base_rate(on, tenor_months)
    el = (pd * lgd).quantize(RATE_QUANTUM)
    capital_charge = (policy.capital_ratio * policy.hurdle_rate).quantize(RATE_QUANTUM)
    total_margin = policy.base_margin + margin
    risk_rate = base + el + policy.opex_rate + capital_charge + total_margin
    legal = min(policy.ceiling_lpr_multiple * curve.fixing_on(on).one_year, policy.ceiling_abs)
    gross, bound = risk_rate, None
    if gross < policy.floor_rate:
        gross, bound = policy.floor_rate, "floor"
    if gross > policy.cap_rate:
        gross, bound = policy.cap_rate, "cap"
    if gross > legal:
        gross, bound = legal, "legal_ceiling"
    gross = gross.quantize(RATE_QUANTUM)
    net = max(ZERO, gross - subsidy_rate).quantize(RATE_QUANTUM)
    raroc = ((gross - policy.funding_cost - policy.opex_rate - el) / policy.capital_ratio).quantize(BP)
    return Pricing(base, source, el, policy.opex_rate, capital_charge, total_margin, risk_rate.quantize(RATE_QUANTUM),
                   gross, subsidy_rate, net, policy.floor_rate, policy.cap_rate, legal, bound, raroc)
