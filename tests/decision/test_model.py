"""Pricing, limits, APR and the application checks: pure arithmetic against worked values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from iotfin.core.errors import ValidationError
from iotfin.decision.applications import PRODUCTS, Application, validate_application
from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.challenger import in_challenger
from iotfin.decision.disclosure import OfferTerms, apr_disclosure
from iotfin.decision.limits import Exposure, LimitPolicy, credit_limit
from iotfin.decision.lpr import LprCurve
from iotfin.decision.pricing import PricingPolicy, price
from iotfin.lending.disclosure import offer_terms
from tests.decision.conftest import assessment


def test_lpr_curve_effective_dates_and_tenor() -> None:
    curve = LprCurve()
    assert curve.base_rate(date(2024, 10, 20), 12) == (D("0.0335"), "LPR 1Y 2024-07-22")
    assert curve.base_rate(date(2024, 10, 21), 12) == (D("0.0310"), "LPR 1Y 2024-10-21")
    assert curve.base_rate(date(2026, 12, 1), 60)[0] == D("0.0300")  # five years still takes the 1Y LPR
    assert curve.base_rate(date(2026, 12, 1), 61)[0] == D("0.0350")
    with pytest.raises(ValidationError, match="no LPR fixing"):
        curve.base_rate(date(2019, 8, 19), 12)
    with pytest.raises(ValidationError, match="increasing"):
        LprCurve.from_json([{"effective": "2025-01-01", "one_year": "0.03", "five_year": "0.035"},
                            {"effective": "2024-01-01", "one_year": "0.03", "five_year": "0.035"}])


def test_price_is_base_plus_el_opex_capital_margin_and_raroc() -> None:
    p = price(D("0.02"), D("0.45"), D("0.01"), 12, date(2026, 12, 1), LprCurve(), PricingPolicy())
    # 3.00 % LPR + 0.90 % EL + 1.00 % opex + 0.72 % capital (6 % x 12 %) + 1.00 % margin
    assert p.expected_loss == D("0.009") and p.capital_charge == D("0.0072")
    assert p.gross_rate == D("0.066200") and p.bound is None
    assert p.spread == D("0.0362")
    # RAROC = (6.62 - 1.80 funding - 1.00 opex - 0.90 EL) / 6 % capital
    assert p.raroc == D("0.4867")
    assert p.net_rate == p.gross_rate


def test_price_floor_cap_legal_ceiling_and_subsidy() -> None:
    on, curve = date(2026, 12, 1), LprCurve()
    low = price(D("0"), D("0.4"), D("-0.05"), 12, on, curve, PricingPolicy())
    assert low.gross_rate == D("0.03") and low.bound == "floor"
    high = price(D("0.30"), D("0.6"), D("0"), 12, on, curve, PricingPolicy())
    assert high.gross_rate == D("0.12") and high.bound == "legal_ceiling"  # 4 x 3.00 % LPR
    assert high.raroc < PricingPolicy().hurdle_rate
    capped = price(D("0.10"), D("0.6"), D("0"), 12, on, curve, PricingPolicy(cap_rate=D("0.09")))
    assert capped.gross_rate == D("0.09") and capped.bound == "cap"
    subsidised = price(D("0.02"), D("0.45"), D("0.01"), 12, on, curve, PricingPolicy(), subsidy_rate=D("0.02"))
    assert subsidised.gross_rate == D("0.066200") and subsidised.net_rate == D("0.046200")
    fully = price(D("0"), D("0.45"), D("0"), 12, on, curve, PricingPolicy(), subsidy_rate=D("0.10"))
    assert fully.net_rate == D("0")


def test_limit_is_the_minimum_and_names_what_binds() -> None:
    policy = LimitPolicy()
    a = assessment(1, collateral="1000000", trade="8000000")
    lim = credit_limit(a, D("0.5"), D("3000000"), Exposure(), policy, has_core=False)
    assert (lim.asset_based, lim.activity_based, lim.limit, lim.binding) == (D("500000.00"), D("2000000.00"), D("500000.00"), "asset_based")
    lim = credit_limit(assessment(1, collateral="9000000", trade="1000001"), D("0.5"), D("3000000"), Exposure(), policy, False)
    assert lim.binding == "activity_based" and lim.limit == D("250000.00")  # 250000.25 rounded down to hundreds
    lim = credit_limit(assessment(1, collateral="9000000", trade="90000000"), D("0.5"), D("300000"), Exposure(), policy, False)
    assert lim.binding == "strategy_cap" and lim.limit == D("300000.00")
    lim = credit_limit(assessment(1, collateral="90000000", trade="90000000"), D("0.5"), D("9000000"),
                       Exposure(borrower=D("4800000")), policy, False)
    assert lim.binding == "single_borrower" and lim.limit == D("200000.00")
    lim = credit_limit(assessment(1, collateral="90000000", trade="90000000"), D("0.5"), D("9000000"),
                       Exposure(core=D("29950000")), policy, True)
    assert lim.binding == "core_enterprise" and lim.limit == D("50000.00")
    lim = credit_limit(assessment(1, collateral="90000000", trade="90000000"), D("0.5"), D("9000000"),
                       Exposure(borrower=D("6000000")), policy, False)
    assert lim.limit == D("0.00")
    # no trade volume: the electricity-derived capacity decides the activity limit
    a = RiskAssessment(**{**{f: getattr(a, f) for f in RiskAssessment.__slots__}, "trade_volume_12m": D("0"),
                          "capacity_revenue_12m": D("2000000")})
    lim = credit_limit(a, D("0.5"), D("3000000"), Exposure(), policy, False)
    assert lim.activity_basis == "electricity_capacity" and lim.activity_based == D("300000.00")
    # an unsecured product: the collateral figure is reported, it does not bind
    lim = credit_limit(assessment(1, collateral="0", trade="1000000"), D("0.5"), D("3000000"), Exposure(), policy,
                       False, secured=False)
    assert (lim.secured, lim.asset_based, lim.binding, lim.limit) == (False, D("0.00"), "activity_based", D("250000.00"))


def test_disclosure_in_both_languages_with_subsidy() -> None:
    terms = OfferTerms(D("0.0601"), D("2500.00"), D("42916.67"), "等额本息", "equal monthly instalments")
    text = apr_disclosure(D("500000.00"), 12, D("0.0507"), terms, D("0.0607"), D("0.01"), "市财政局")
    assert "年化利率" in text["zh"] and "6.01%" in text["zh"] and "市财政局贴息" in text["zh"] and "等额本息" in text["zh"]
    assert "APR" in text["en"] and "subsidised by 市财政局" in text["en"] and "you pay 5.07%" in text["en"]
    assert "2500.00" in text["zh"] and "42916.67" in text["en"]


@pytest.mark.parametrize("code", sorted(PRODUCTS))
def test_the_apr_offered_is_the_apr_signed(code: str) -> None:
    """Every decision product names the lending product that books it, and the decision's APR is
    the key-facts statement's (same method, day count and fees), whatever the repayment method."""
    from iotfin.lending.disclosure import product_key_facts

    start, principal, rate, months = date(2026, 12, 1), D("300000.00"), D("0.0650"), 6
    offer = offer_terms(PRODUCTS[code].servicing, principal, rate, months, start)
    facts = product_key_facts(PRODUCTS[code].servicing, principal, rate, months, start)
    assert offer.apr == facts.apr_gross.quantize(D("0.0001")) and offer.fee == facts.upfront_fee
    assert offer.first_payment == facts.schedule[0].borrower_total and offer.method_zh and offer.method_en


def test_challenger_split_is_stable_and_proportional() -> None:
    picks = [in_challenger(str(i), 2_000, "salt") for i in range(10_000)]
    assert 1_800 < sum(picks) < 2_200
    assert picks == [in_challenger(str(i), 2_000, "salt") for i in range(10_000)]
    assert not any(in_challenger(str(i), 0, "salt") for i in range(100))
    assert all(in_challenger(str(i), 10_000, "salt") for i in range(100))


@pytest.mark.parametrize(("app", "fragment"), [
    (Application(1, "payday", D("100000"), 12), "unknown product"),
    (Application(1, "iot-working-capital", D("10000"), 12), "out of range"),
    (Application(1, "iot-working-capital", D("9000000"), 12), "out of range"),
    (Application(1, "iot-working-capital", D("100000"), 48), "tenor 48"),
    (Application(1, "iot-working-capital", D("100000.001"), 12), "more precise than a fen"),
    (Application(1, "iot-working-capital", D("100000"), 12, subsidy_rate=D("0.01")), "subsidy_provider"),
])
def test_bad_applications_are_refused(app: Application, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        validate_application(app, PRODUCTS)


@pytest.mark.parametrize(("data", "fragment"), [
    ({"enterprise_id": 1, "product": "p", "amount": 100.5, "tenor_months": 3}, "not float"),
    ({"enterprise_id": 1, "product": "p", "tenor_months": 3}, "missing field 'amount'"),
    ({"enterprise_id": "x", "product": "p", "amount": "1", "tenor_months": 3}, "enterprise_id"),
])
def test_application_json_is_strict(data: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Application.from_json(data)


@pytest.mark.parametrize(("change", "fragment"), [
    ({"grade": "AAAA"}, "grade"), ({"pd": "1.5"}, "pd"), ({"pd": 0.02}, "not float"),
    ({"sub_scores": {"entity": "1"}}, "missing asset"), ({"as_of": "2026-11-30T08:00:00"}, "timezone"),
    ({"collateral_value": "-1"}, "collateral_value"),
])
def test_assessment_json_is_checked(change: dict, fragment: str) -> None:
    data = assessment(1).to_json() | change
    with pytest.raises(ValidationError, match=fragment):
        RiskAssessment.from_json(data)
    assert RiskAssessment.from_json(assessment(1).to_json()) == assessment(1)
