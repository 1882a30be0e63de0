"""The APR disclosure: the bilingual annualised-rate statement an enterprise reads before accepting,
from the offer's terms as the servicing product books them (the `AprPort`: lending's key facts)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from iotfin.decision.values import pct


class OfferFacts(Protocol):
    """What a disclosure states of an offer; the `AprPort` answers it (lending's `OfferFacts`)."""

    @property
    def apr(self) -> Decimal: ...

    @property
    def fee(self) -> Decimal: ...

    @property
    def first_payment(self) -> Decimal: ...

    @property
    def method_zh(self) -> str: ...

    @property
    def method_en(self) -> str: ...


@dataclass(frozen=True, slots=True)
class OfferTerms:
    """What the offer's disclosure states, computed the way lending will book the loan."""

    apr: Decimal  # IRR method, all interest and fees the borrower pays
    fee: Decimal  # one-off fee deducted at drawdown
    first_payment: Decimal  # the first instalment the borrower pays
    method_zh: str
    method_en: str


def apr_disclosure(amount: Decimal, months: int, net_rate: Decimal, terms: OfferFacts, gross_rate: Decimal,
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
