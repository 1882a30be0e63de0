"""Key facts and the IRR-based annualised rate."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy_financial as npf
import pytest

from iotfin.core.errors import ValidationError
from iotfin.lending import model as m
from iotfin.lending.disclosure import annualised_rate, key_facts, product_key_facts

D = Decimal


def test_pboc_example_add_on_rate_is_about_eleven_percent() -> None:
    """The example used to explain PBOC announcement [2021] No. 3: 12,000 yuan over 12 months, 1,000 principal
    plus 60 interest a month ("0.5 % a month") costs 10.90 % a year by IRR, not 6 %."""
    flows = [(0, D(12000))] + [(t, D(-1060)) for t in range(1, 13)]
    assert annualised_rate(flows) == D("0.108964")


def test_annualised_rate_agrees_with_numpy_financial() -> None:
    """The textbook equal instalment PMT(0.5 %, 12, 100,000) = 8,606.64, with and without a fee of
    1,000 deducted at drawdown, against numpy-financial's float IRR."""
    payments = [(t, D("-8606.64")) for t in range(1, 13)]
    for received, expected in ((D(100000), D("0.059999")), (D(99000), D("0.078861"))):
        rate = annualised_rate([(0, received), *payments])
        assert rate == expected
        assert abs(float(rate) - 12 * npf.irr([-float(received)] + [8606.64] * 12)) < 1e-6


def test_emi_without_fees_has_apr_equal_to_the_contract_rate() -> None:
    facts = key_facts(m.Terms(D("100"), D("0.12"), 6, date(2024, 1, 1)))
    assert abs(facts.apr_gross - D("0.12")) < D("0.0001") and facts.apr_net == facts.apr_gross
    assert facts.total_interest == D("3.53") and facts.total_repayment == D("103.53")


def test_fees_raise_the_apr_and_the_subsidy_lowers_the_net_apr() -> None:
    facts = product_key_facts("iot-term", D("100000"), D("0.08"), 12, date(2026, 1, 1), subsidy_rate=D("0.03"))
    assert facts.upfront_fee == D("500.00") and facts.apr_gross > D("0.08") + D("0.008")
    assert facts.subsidy > 0 and facts.apr_net < facts.apr_gross - D("0.025")
    assert facts.total_cost == facts.total_interest - facts.subsidy + facts.upfront_fee
    for text in (facts.text_zh, facts.text_en):
        assert "9.02%" in text and "5.98%" in text and "12378" in text
    assert "年化利率" in facts.text_zh and "贴息" in facts.text_zh and "提前偿还" in facts.text_zh
    assert facts.penalty_rate == D("0.120000")


def test_no_rate_without_money_both_ways() -> None:
    with pytest.raises(ValidationError):
        annualised_rate([(0, D(100)), (1, D(5))])
    with pytest.raises(ValidationError):
        annualised_rate([])
