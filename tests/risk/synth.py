"""Synthetic enterprise feature tables with a known risk structure, tagged by dimension (what the
feature catalogue of issue 5 item 1 will provide), for the risk-model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

DIMENSIONS = {
    "age_years": "entity", "registered_capital": "entity", "sector": "entity", "tax_grade": "entity",
    "collateral_cover": "asset", "utilisation": "asset", "data_completeness": "asset",
    "on_time_rate": "transaction", "dso_days": "transaction", "top_buyer_share": "transaction",
}
LABELS = {
    "age_years": {"en": "Years in business", "zh": "经营年限"},
    "registered_capital": {"en": "Registered capital (10k CNY)", "zh": "注册资本（万元）"},
    "sector": {"en": "Sector", "zh": "行业"},
    "tax_grade": {"en": "Tax credit grade", "zh": "纳税信用等级"},
    "collateral_cover": {"en": "IoT-verified collateral cover", "zh": "物联网核验押品覆盖率"},
    "utilisation": {"en": "Equipment utilisation", "zh": "设备利用率"},
    "data_completeness": {"en": "Device data completeness", "zh": "设备数据完整度"},
    "on_time_rate": {"en": "On-time payment rate", "zh": "按时付款率"},
    "dso_days": {"en": "Days sales outstanding", "zh": "应收账款周转天数"},
    # top_buyer_share deliberately has no label: reasons fall back to the column name
}
SECTORS = ["manufacturing", "agriculture", "logistics", "retail", "construction", "food"]
TAX = ["A", "B", "M", "C", "D"]


def enterprises(n: int, seed: int = 1, shift: float = 0.0) -> pd.DataFrame:
    """`shift` moves the asset and transaction features towards risk (for drift tests)."""
    rng = np.random.default_rng(seed)
    age = rng.gamma(2.0, 3.0, n)
    capital = np.exp(rng.normal(5.0, 1.0, n))
    sector = rng.choice(SECTORS, n, p=[0.3, 0.15, 0.15, 0.2, 0.1, 0.1])
    tax = rng.choice(TAX, n, p=[0.25, 0.35, 0.2, 0.15, 0.05])
    cover = np.clip(rng.normal(1.2 - shift, 0.4, n), 0, None)
    util = np.clip(rng.beta(5, 2, n) - shift * 0.3, 0, 1)
    complete = np.clip(rng.beta(8, 1.5, n), 0, 1)
    on_time = np.clip(rng.beta(9 - 4 * shift, 1.2, n), 0, 1)
    dso = rng.gamma(3.0, 15.0, n) * (1 + shift)
    top_share = rng.beta(2, 3, n)
    sector_risk = {"manufacturing": 0.0, "agriculture": 0.4, "logistics": 0.1, "retail": 0.2, "construction": 0.7, "food": -0.1}
    tax_risk = {"A": -0.6, "B": -0.1, "M": 0.2, "C": 0.6, "D": 1.2}
    logit = (-2.2 - 0.08 * (age - 6) - 0.25 * (np.log(capital) - 5) + np.vectorize(sector_risk.get)(sector)
             + np.vectorize(tax_risk.get)(tax)
             - 1.6 * (cover - 1.2) - 1.5 * (util - 0.7) - 1.0 * (complete - 0.85)
             - 5.0 * (on_time - 0.88) + 0.012 * (dso - 45) + 0.8 * (top_share - 0.4))
    default = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "enterprise_id": [f"E{seed:02d}{i:06d}" for i in range(n)],
        "as_of": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
        "age_years": np.round(age, 1), "registered_capital": np.round(capital, 0), "sector": sector,
        "tax_grade": tax, "collateral_cover": np.round(cover, 3), "utilisation": np.round(util, 3),
        "data_completeness": np.round(complete, 3), "on_time_rate": np.round(on_time, 3),
        "dso_days": np.round(dso, 1), "top_buyer_share": np.round(top_share, 3), "default": default.astype(int)})
    # Missing values where real data has them: young firms without a tax grade, meters gone quiet.
    frame.loc[rng.random(n) < 0.08, "tax_grade"] = None
    frame.loc[rng.random(n) < 0.05, "utilisation"] = np.nan
    frame["as_of"] = frame["as_of"].dt.strftime("%Y-%m-%d")
    return frame
