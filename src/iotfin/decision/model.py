"""Credit decisioning: the records and the pure arithmetic. No I/O, no rules engine, no database.

- `RiskAssessment` is the decision service's input contract for risk: what the risk engine says about
  an enterprise (grade, PD, three sub-scores, features, reasons, consent) plus the inputs the limits
  need (IoT-verified collateral value, trade volume, electricity-derived capacity).
- `Application` is what the enterprise asks for; `validate_application` checks it against the
  product catalogue.
- Pricing: LPR base rate (curve with effective dates) + a spread built from expected loss, operating
  cost, a capital charge at the hurdle rate and a margin; floors, caps and a legal ceiling; RAROC;
  third-party interest subsidies (贴息) give a gross and a net rate.
- Limits: the minimum of the asset-based, activity-based, strategy and exposure-policy limits.
- The APR disclosure: the offer's cash flows as the servicing product books them, and their IRR
  (`servicing_terms`, lending's key facts).

Every amount and rate is a Decimal; money is quantised to the fen where it is offered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, quantize_fen, to_money

GRADES: tuple[str, ...] = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C")
SUB_SCORES: tuple[str, ...] = ("entity", "asset", "transaction")
DECISIONS: tuple[str, ...] = ("approve", "decline", "refer")
ZERO = Decimal("0")
ONE = Decimal("1")
RATE_QUANTUM = Decimal("0.000001")  # rates are kept to 1e-6 (0.0001 %)
BP = Decimal("0.0001")


def to_rate(value: object, what: str) -> Decimal:
    """A rate or ratio as a Decimal. Floats are refused, as for money; ints and strings are fine."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValidationError(f"{what}: must be a decimal string or int, not {type(value).__name__}: {value!r}")
    try:
        rate = value if isinstance(value, Decimal) else Decimal(str(value))
    except Exception:  # noqa: BLE001 - decimal raises several types for garbage
        raise ValidationError(f"{what}: not a number: {value!r}") from None
    if not rate.is_finite():
        raise ValidationError(f"{what}: must be finite: {value!r}")
    return rate


def plain(value: Any) -> Any:
    """JSON-ready copy: Decimals as strings, dates in ISO 8601, tuples as lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def pct(rate: Decimal, places: int = 2) -> str:
    """0.0435 -> '4.35%'."""
    return f"{(rate * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)}%"


# --- reasons -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason, in both languages an enterprise or officer reads."""

    code: str
    zh: str
    en: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "zh": self.zh, "en": self.en}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reason:
        try:
            return cls(str(data["code"]), str(data.get("zh") or data["code"]), str(data.get("en") or data["code"]))
        except (KeyError, TypeError):
            raise ValidationError(f"a reason needs at least a code: {data!r}") from None


# Reasons the service itself adds (the strategy's own reasons carry their texts in the strategy).
NO_DECISION = Reason("NO_DECISION", "决策策略未给出结论，转人工审核", "The strategy returned no decision; referred to an officer")
TERMS_MISSING = Reason("TERMS_MISSING", "决策策略未给出该等级的额度与定价，转人工审核",
                       "The strategy gave no limit and price for this grade; referred to an officer")
LIMIT_BELOW_MINIMUM = Reason("LIMIT_BELOW_MINIMUM", "可授信额度低于产品最低金额",
                             "The limit available is below the product's minimum amount")
# What binds, as the applicant reads it in LIMIT_BELOW_MINIMUM (see `limit_below_minimum`).
LIMIT_NAMES: dict[str, tuple[str, str]] = {
    "asset_based": ("物联网核验的押品价值不足", "too little IoT-verified collateral value"),
    "activity_based": ("经核验的经营流水不足", "too little verified trade or operating activity"),
    "strategy_cap": ("授信策略对该等级的额度上限", "the strategy's cap for the grade"),
    "single_borrower": ("单一客户授信集中度上限", "the single-borrower concentration limit"),
    "core_enterprise": ("同一核心企业供应链授信集中度上限", "the concentration limit for the core enterprise's chain"),
}


def limit_below_minimum(binding: str) -> Reason:
    """LIMIT_BELOW_MINIMUM with the constraint that binds named, so a decline explains itself."""
    zh, en = LIMIT_NAMES.get(binding, ("", binding))
    return Reason(LIMIT_BELOW_MINIMUM.code, f"{LIMIT_BELOW_MINIMUM.zh}（{zh}）" if zh else LIMIT_BELOW_MINIMUM.zh,
                  f"{LIMIT_BELOW_MINIMUM.en} ({en})")
LIMIT_REDUCED = Reason("LIMIT_REDUCED", "批准金额低于申请金额（受额度约束）",
                       "Approved for less than requested (limited by the credit limit)")
TENOR_REDUCED = Reason("TENOR_REDUCED", "批准期限短于申请期限（受策略最长期限约束）",
                       "Approved for a shorter tenor than requested (the strategy's maximum tenor)")
PRICE_ABOVE_CEILING = Reason("PRICE_ABOVE_CEILING", "风险定价超过利率上限，资本回报低于门槛，转人工审核",
                             "The risk-based price exceeds the rate ceiling and RAROC falls below the hurdle; referred")


# --- the risk input contract -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """What the risk engine says about one enterprise, as of a time (the decision's risk input).

    `features` carries what the admission rules read; the keys the default strategy uses are
    `device_coverage` (share of the enterprise's expected devices reporting, 0..1), `history_days`
    (days of trusted device data), `litigation_count` and `blacklisted`. Sub-scores are 0..100.
    `collateral_value` is the IoT-verified value of pledged assets (stock weighed by load cells,
    sealed warehouse receipts, tracked vehicles); `trade_volume_12m` the verified trade volume of the
    last 12 months; `capacity_revenue_12m` the revenue the enterprise's electricity use supports.
    """

    enterprise_id: int
    grade: str
    pd: Decimal
    sub_scores: Mapping[str, Decimal]
    features: Mapping[str, Any]
    reasons: tuple[Reason, ...]
    consent_ok: bool
    as_of: datetime
    collateral_value: Decimal = ZERO
    trade_volume_12m: Decimal = ZERO
    capacity_revenue_12m: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.grade not in GRADES:
            raise ValidationError(f"assessment.grade: {self.grade!r} is not one of {', '.join(GRADES)}")
        if not ZERO <= self.pd <= ONE:
            raise ValidationError(f"assessment.pd: must be between 0 and 1, got {self.pd}")
        missing = [k for k in SUB_SCORES if k not in self.sub_scores]
        if missing:
            raise ValidationError(f"assessment.sub_scores: missing {', '.join(missing)}")
        if self.as_of.tzinfo is None:
            raise ValidationError("assessment.as_of: must be timezone-aware")
        for name in ("collateral_value", "trade_volume_12m", "capacity_revenue_12m"):
            if getattr(self, name) < 0:
                raise ValidationError(f"assessment.{name}: must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {"enterprise_id": self.enterprise_id, "grade": self.grade, "pd": str(self.pd),
                "sub_scores": {k: str(v) for k, v in self.sub_scores.items()},
                "features": plain(dict(self.features)), "reasons": [r.to_json() for r in self.reasons],
                "consent_ok": self.consent_ok, "as_of": self.as_of.isoformat(),
                "collateral_value": str(self.collateral_value), "trade_volume_12m": str(self.trade_volume_12m),
                "capacity_revenue_12m": str(self.capacity_revenue_12m)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RiskAssessment:
        if not isinstance(data, Mapping):
            raise ValidationError("assessment: must be an object")
        try:
            as_of = data["as_of"]
            as_of = as_of if isinstance(as_of, datetime) else datetime.fromisoformat(str(as_of).replace("Z", "+00:00"))
            return cls(
                enterprise_id=_int(data["enterprise_id"], "assessment.enterprise_id"),
                grade=str(data["grade"]),
                pd=to_rate(data["pd"], "assessment.pd"),
                sub_scores={str(k): to_rate(v, f"assessment.sub_scores.{k}") for k, v in dict(data["sub_scores"]).items()},
                features={str(k): _feature(v) for k, v in dict(data.get("features") or {}).items()},
                reasons=tuple(Reason.from_json(r) for r in data.get("reasons") or ()),
                consent_ok=bool(data["consent_ok"]),
                as_of=as_of,
                collateral_value=to_money(data.get("collateral_value", "0")),
                trade_volume_12m=to_money(data.get("trade_volume_12m", "0")),
                capacity_revenue_12m=to_money(data.get("capacity_revenue_12m", "0")),
            )
        except KeyError as exc:
            raise ValidationError(f"assessment: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"assessment: {exc}") from None


_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _feature(value: Any) -> Any:
    """Features travel as JSON; decimal strings ("0.95") come back as Decimals, as they left."""
    if isinstance(value, str) and _NUMBER.match(value):
        return Decimal(value)
    return value


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"{what}: must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{what}: must be an integer, got {value!r}") from None


# --- products and applications -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Product:
    """A loan product. `collateral_secured` is the limit policy (docs/decisioning.md, "Limits"): a
    product secured by pledged goods (inventory / warehouse-receipt pledge) is limited by the
    IoT-verified collateral value x `advance_rate`; for an unsecured product (working capital
    repaid from operating revenue, receivable financing repaid from the buyer's payment) the
    collateral-based figure is reported but does not bind, and the activity-based limit, the
    strategy's cap and the exposure policy decide."""

    code: str
    name_zh: str
    name_en: str
    min_amount: Decimal
    max_amount: Decimal
    min_tenor_months: int
    max_tenor_months: int
    advance_rate: Decimal  # share of IoT-verified collateral value lent against
    lgd: Decimal  # loss given default used in pricing
    servicing: str  # the lending product that books an approval: its method, day count and fees make the APR
    collateral_secured: bool = False  # the asset-based limit binds only for collateral-secured products


PRODUCTS: dict[str, Product] = {p.code: p for p in (
    Product("iot-working-capital", "物联网流动资金贷", "IoT working-capital loan", Decimal("50000"), Decimal("3000000"),
            3, 36, Decimal("0.50"), Decimal("0.45"), "iot-line"),
    Product("receivable-financing", "应收账款融资", "Receivable financing", Decimal("10000"), Decimal("5000000"),
            1, 12, Decimal("0.80"), Decimal("0.35"), "receivable-bullet"),
    Product("inventory-pledge", "存货（仓单）质押贷", "Inventory / warehouse-receipt pledge loan", Decimal("50000"),
            Decimal("5000000"), 1, 12, Decimal("0.60"), Decimal("0.40"), "iot-term", collateral_secured=True),
)}


@dataclass(frozen=True, slots=True)
class Application:
    """What the enterprise applies for. `subsidy_rate` is a third party's interest subsidy (贴息) in
    annual rate points (0.01 = one percentage point), paid to the lender on the borrower's behalf."""

    enterprise_id: int
    product: str
    amount: Decimal
    tenor_months: int
    ref: str | None = None
    core_enterprise_id: int | None = None
    subsidy_rate: Decimal = ZERO
    subsidy_provider: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enterprise_id": self.enterprise_id, "product": self.product, "amount": str(self.amount),
                "tenor_months": self.tenor_months, "ref": self.ref, "core_enterprise_id": self.core_enterprise_id,
                "subsidy_rate": str(self.subsidy_rate), "subsidy_provider": self.subsidy_provider}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Application:
        if not isinstance(data, Mapping):
            raise ValidationError("application: must be an object")
        try:
            core = data.get("core_enterprise_id")
            return cls(
                enterprise_id=_int(data["enterprise_id"], "application.enterprise_id"),
                product=str(data["product"]),
                amount=to_money(data["amount"]),
                tenor_months=_int(data["tenor_months"], "application.tenor_months"),
                ref=None if data.get("ref") is None else str(data["ref"]),
                core_enterprise_id=None if core is None else _int(core, "application.core_enterprise_id"),
                subsidy_rate=to_rate(data.get("subsidy_rate", "0"), "application.subsidy_rate"),
                subsidy_provider=data.get("subsidy_provider"),
            )
        except KeyError as exc:
            raise ValidationError(f"application: missing field {exc.args[0]!r}") from None


def validate_application(app: Application, products: Mapping[str, Product] = PRODUCTS) -> Product:
    """The product the application is for, or a ValidationError that says what is wrong."""
    product = products.get(app.product)
    if product is None:
        raise ValidationError(f"unknown product {app.product!r}; known: {', '.join(sorted(products))}")
    if app.amount != app.amount.quantize(FEN):
        raise ValidationError(f"amount: more precise than a fen: {app.amount}")
    if not product.min_amount <= app.amount <= product.max_amount:
        raise ValidationError(f"amount {app.amount} is out of range for {product.code}: "
                              f"{product.min_amount}..{product.max_amount} yuan")
    if not product.min_tenor_months <= app.tenor_months <= product.max_tenor_months:
        raise ValidationError(f"tenor {app.tenor_months} months is out of range for {product.code}: "
                              f"{product.min_tenor_months}..{product.max_tenor_months} months")
    if not ZERO <= app.subsidy_rate <= Decimal("0.10"):
        raise ValidationError(f"subsidy_rate: must be between 0 and 0.10, got {app.subsidy_rate}")
    if app.subsidy_rate > 0 and not app.subsidy_provider:
        raise ValidationError("subsidy_rate given without the subsidy_provider who pays it")
    return product


# --- the LPR curve -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LprFixing:
    effective: date
    one_year: Decimal
    five_year: Decimal


# Loan Prime Rate fixings published by the National Interbank Funding Center under the PBoC since the
# August 2019 reform, as (effective date, 1Y, 5Y+). Only the dates on which a rate changed are listed;
# a fixing holds until the next one. Last entry known to this code: 20 May 2025. Append newer
# fixings (or pass a curve of your own, see docs/decisioning.md) — the curve is data, not logic.
LPR_HISTORY: tuple[LprFixing, ...] = tuple(LprFixing(date.fromisoformat(d), Decimal(a), Decimal(b)) for d, a, b in (
    ("2019-08-20", "0.0425", "0.0485"),
    ("2019-09-20", "0.0420", "0.0485"),
    ("2019-11-20", "0.0415", "0.0480"),
    ("2020-02-20", "0.0405", "0.0475"),
    ("2020-04-20", "0.0385", "0.0465"),
    ("2021-12-20", "0.0380", "0.0465"),
    ("2022-01-20", "0.0370", "0.0460"),
    ("2022-05-20", "0.0370", "0.0445"),
    ("2022-08-22", "0.0365", "0.0430"),
    ("2023-06-20", "0.0355", "0.0420"),
    ("2023-08-21", "0.0345", "0.0420"),
    ("2024-02-20", "0.0345", "0.0395"),
    ("2024-07-22", "0.0335", "0.0385"),
    ("2024-10-21", "0.0310", "0.0360"),
    ("2025-05-20", "0.0300", "0.0350"),
))


@dataclass(frozen=True, slots=True)
class LprCurve:
    fixings: tuple[LprFixing, ...] = LPR_HISTORY

    def __post_init__(self) -> None:
        if not self.fixings:
            raise ValidationError("an LPR curve needs at least one fixing")
        days = [f.effective for f in self.fixings]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValidationError("LPR fixings must be in strictly increasing effective-date order")

    def fixing_on(self, day: date) -> LprFixing:
        current = None
        for fixing in self.fixings:
            if fixing.effective > day:
                break
            current = fixing
        if current is None:
            raise ValidationError(f"no LPR fixing in effect on {day} (the curve starts {self.fixings[0].effective})")
        return current

    def base_rate(self, day: date, tenor_months: int) -> tuple[Decimal, str]:
        """The reference rate for a loan of this tenor: the 1-year LPR up to 5 years, the 5-year-plus
        LPR above (the PBoC's convention: loans over five years reference the 5Y LPR)."""
        fixing = self.fixing_on(day)
        if tenor_months > 60:
            return fixing.five_year, f"LPR 5Y+ {fixing.effective}"
        return fixing.one_year, f"LPR 1Y {fixing.effective}"

    @classmethod
    def from_json(cls, rows: Sequence[Mapping[str, Any]]) -> LprCurve:
        try:
            return cls(tuple(LprFixing(date.fromisoformat(str(r["effective"])), to_rate(r["one_year"], "one_year"),
                                       to_rate(r["five_year"], "five_year")) for r in rows))
        except (KeyError, ValueError) as exc:
            raise ValidationError(f"LPR curve: bad fixing ({exc})") from None


# --- pricing -----------------------------------------------------------------------------------


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


# --- limits ------------------------------------------------------------------------------------


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


# --- APR disclosure ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfferTerms:
    """What the offer's disclosure states, computed the way lending will book the loan."""

    apr: Decimal  # IRR method, all interest and fees the borrower pays
    fee: Decimal  # one-off fee deducted at drawdown
    first_payment: Decimal  # the first instalment the borrower pays
    method_zh: str
    method_en: str


def servicing_terms(servicing: str, principal: Decimal, annual_rate: Decimal, months: int, start: date) -> OfferTerms:
    """The offer's APR and repayment as the servicing product books it (its repayment method, day
    count, upfront and periodic fees): the key-facts statement at signing shows the same APR."""
    from iotfin.lending.disclosure import METHOD_EN, METHOD_ZH, product_offer_apr  # lending owns the one IRR

    apr, fee, schedule, method = product_offer_apr(servicing, principal, annual_rate, months, start)
    return OfferTerms(apr.quantize(BP, rounding=ROUND_HALF_UP), fee, schedule[0].borrower_total,
                      METHOD_ZH[method], METHOD_EN[method])


def apr_disclosure(amount: Decimal, months: int, net_rate: Decimal, terms: OfferTerms, gross_rate: Decimal,
                   subsidy_rate: Decimal, subsidy_provider: str | None) -> dict[str, str]:
    """The annualised-rate disclosure (年化利率) an enterprise reads before accepting an offer."""
    zh = (f"借款金额 {amount} 元，期限 {months} 个月，还款方式：{terms.method_zh}，首期应还约 {terms.first_payment} 元。"
          f"年化利率（按内部收益率法计算，含一次性服务费 {terms.fee} 元）为 {pct(terms.apr)}。")
    en = (f"Loan of CNY {amount} over {months} months, repaid as {terms.method_en}; first payment about CNY "
          f"{terms.first_payment}. Annualised rate (APR, internal-rate-of-return method, including a one-off service "
          f"fee of CNY {terms.fee}): {pct(terms.apr)}.")
    if subsidy_rate > 0:
        zh += f"贷款利率 {pct(gross_rate)}，其中 {pct(subsidy_rate)} 由{subsidy_provider}贴息，您实际承担 {pct(net_rate)}。"
        en += (f" The loan bears {pct(gross_rate)}, of which {pct(subsidy_rate)} is subsidised by {subsidy_provider}; "
               f"you pay {pct(net_rate)}.")
    return {"zh": zh, "en": en}


# --- champion / challenger ---------------------------------------------------------------------


def in_challenger(key: str, challenger_bps: int, salt: str = "") -> bool:
    """Stable traffic split: SHA-256 of (salt, key) mapped to 0..9999 basis points; the same
    enterprise always lands in the same arm for a given salt, whatever process decides it."""
    if challenger_bps <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") % 10_000
    return bucket < challenger_bps


# --- the decision ------------------------------------------------------------------------------


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
