"""Reasons, in both languages an enterprise or officer reads, and the ones the service itself adds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iotfin.core.errors import ValidationError


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
