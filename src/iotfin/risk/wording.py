"""Reasons as sentences a borrower understands, in zh-CN and en. Pure: no I/O, no pandas.

A rating's reasons name what cost it points. A bin label such as `[-inf, 0.9853)` means nothing to a
borrower; a reason says which fact about the enterprise was low or high, and where the line was:
"近30天设备数据完整率偏低（低于98.5%）" / "Device data completeness over the last 30 days was low
(below 98.5%)". Which side is "low" comes from the points: a bin that scores less than a bin of
higher values is low (its upper edge is the line), one that scores less than a bin of lower values
is high (its lower edge is the line). The bootstrap scorecard (`iotfin.risk.bootstrap`) and trained
models (`iotfin.risk.reasons`) both word their reasons here.

Thresholds are shown in the feature's unit (catalogue features: ratios as percentages, yuan, days,
years...); for integer features a fractional edge is rounded up (fewer than 2.5 cases is fewer than
3). Features outside the catalogue (a generic model's columns) use their label and a plain number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from iotfin.risk.features.catalogue import BY_NAME

# What each catalogue feature is, as the subject of a sentence (zh, en).
SUBJECTS: dict[str, tuple[str, str]] = {
    "e_age_years": ("企业成立年限", "The enterprise's age"),
    "e_registered_capital": ("注册资本", "Registered capital"),
    "e_sector": ("所属行业", "The sector"),
    "e_region_code": ("注册地区", "The region of registration"),
    "e_tax_grade": ("纳税信用等级", "The tax credit grade"),
    "e_litigation_count": ("涉诉案件数", "The number of court cases on record"),
    "e_key_person_changes": ("关键人员变更次数", "The number of key-person changes on record"),
    "a_collateral_value": ("物联网核验的押品价值", "IoT-verified collateral value"),
    "a_inventory_cv_30d": ("近30天库存波动", "Inventory variability over the last 30 days"),
    "a_inventory_trend_30d": ("近30天库存变化", "The change in inventory over the last 30 days"),
    "a_livestock_heads": ("在栏牲畜数", "Livestock on hand"),
    "a_livestock_value": ("活体押品价值", "Livestock collateral value"),
    "a_equipment_utilisation_30d": ("近30天设备利用率", "Equipment utilisation over the last 30 days"),
    "a_capacity_kw": ("用电容量", "Electrical capacity"),
    "a_energy_kwh_30d": ("近30天用电量", "Electricity used over the last 30 days"),
    "a_operating_rate_30d": ("近30天开工率", "The operating rate over the last 30 days"),
    "a_energy_yoy": ("用电量同比变化", "Electricity use against a year earlier"),
    "a_device_coverage_7d": ("近7天设备在线覆盖率", "The share of devices reporting over the last 7 days"),
    "a_data_completeness_30d": ("近30天设备数据完整率", "Device data completeness over the last 30 days"),
    "a_telemetry_days_365d": ("近一年有设备数据的天数", "The number of days with device data in the last year"),
    "t_sales_90d": ("近90天开票销售额", "The amount invoiced over the last 90 days"),
    "t_sales_trend_90d": ("近90天销售额环比变化", "The change in sales over the last 90 days against the 90 days before"),
    "t_chain_tenure_years": ("供应链合作年限", "The time trading in the supply chain"),
    "t_core_share_180d": ("与核心企业的交易占比", "The share of trade with the core enterprise"),
    "t_counterparty_hhi_180d": ("交易对手集中度", "Concentration of trade on few counterparties"),
    "t_counterparties_180d": ("近180天交易对手数", "The number of counterparties over the last 180 days"),
    "t_on_time_payment_rate_180d": ("近180天按时付款率", "On-time payment of invoices over the last 180 days"),
    "t_dso_days": ("应收账款周转天数", "The time to collect receivables (days sales outstanding)"),
    "t_overdue_share_180d": ("逾期应收账款占比", "The share of receivables overdue"),
    "c_invoices_without_delivery_90d": ("近90天无发货单的发票数", "The number of invoices without a delivery note over the last 90 days"),
    "c_deliveries_without_gps_90d": ("近90天无车辆轨迹印证的发货单数",
                                     "The number of deliveries without a matching truck journey over the last 90 days"),
    "c_sales_per_kwh_change": ("单位用电产值变化", "The change in sales per kWh used"),
    "t_voucher_volume_180d": ("近180天核心企业确权的数字债权凭证金额",
                              "The value of digital debt vouchers core enterprises confirmed to it over the last 180 days"),
    "t_voucher_core_on_time_180d": ("其所持凭证的核心企业按期兑付率",
                                    "On-time payment at maturity by the core enterprises behind its vouchers"),
    "t_voucher_core_days_late_180d": ("其所持凭证的核心企业平均逾期兑付天数",
                                      "How late the core enterprises behind its vouchers paid at maturity, on average"),
    "t_voucher_tier": ("在凭证流转链中的层级", "Its tier in the chain the vouchers pass along"),
}

# unit -> (zh suffix, en suffix) for thresholds; ratios and yuan are formatted on their own
_UNITS = {"years": ("年", " years"), "days": ("天", " days"), "cases": ("件", " cases"), "changes": ("次", " changes"),
          "count": ("个", ""), "head": ("头", " head"), "kWh": ("千瓦时", " kWh"), "kW": ("千瓦", " kW"), "tier": ("级", "")}
MISSING = ("缺少{s}数据（未提供或未获授权）", "{s}: no data (not provided, or not authorised)")
UNKNOWN = ("{s}不在已知类别中", "{s} is not a known category")


def subject(name: str, label: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(zh, en) subject of a sentence about feature `name`."""
    if name in SUBJECTS:
        return SUBJECTS[name]
    label = label or {}
    en = str(label.get("en") or name)
    if en != name:  # a label: a sentence starts with a capital; a bare column name is kept as it is
        en = en[:1].upper() + en[1:]
    return str(label.get("zh") or en), en


def _plain(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    text = f"{x:.4g}"
    if "e" in text:  # tiny values: fixed point, never an exponent
        text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text


def threshold(name: str, x: float) -> tuple[str, str]:
    """A bin edge in the feature's unit, (zh, en)."""
    f = BY_NAME.get(name)
    if f is not None and f.kind == "integer":
        x = float(math.ceil(x - 1e-9))
    unit = f.unit if f is not None else ""
    if unit == "ratio":
        pct = _plain(round(x * 100, 1))
        return f"{pct}%", f"{pct}%"
    if unit == "yuan":
        zh = f"{_plain(x / 10_000)}万元" if abs(x) >= 10_000 else f"{_plain(x)}元"
        return zh, f"CNY {_plain(x)}"
    zh_unit, en_unit = _UNITS.get(unit, ("", ""))
    return f"{_plain(x)}{zh_unit}", f"{_plain(x)}{en_unit}"


def low(name: str, below: float, label: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The value was under the line `below` (the bin's upper edge), and higher values score better."""
    zh_s, en_s = subject(name, label)
    zh_x, en_x = threshold(name, below)
    return f"{zh_s}偏低（低于{zh_x}）", f"{en_s} was low (below {en_x})"


def high(name: str, at_least: float, label: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The value was at or over the line `at_least` (the bin's lower edge), and lower values score better."""
    zh_s, en_s = subject(name, label)
    zh_x, en_x = threshold(name, at_least)
    return f"{zh_s}偏高（{zh_x}及以上）", f"{en_s} was high ({en_x} or more)"


def numeric(name: str, lower: float, upper: float, worse_than_higher: bool,
            label: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The reason for a value in [lower, upper) that scores less than values above it (then it is
    "low", below `upper`) or than values below it ("high", at least `lower`)."""
    if worse_than_higher and math.isfinite(upper):
        return low(name, upper, label)
    if not worse_than_higher and math.isfinite(lower):
        return high(name, lower, label)
    zh_s, en_s = subject(name, label)  # an unbounded side (cannot happen for a bin that lost points)
    return f"{zh_s}不理想", f"{en_s} was unfavourable"


def categorical(name: str, categories: Sequence[str], label: Mapping[str, str] | None = None,
                limit: int = 4) -> tuple[str, str]:
    """The value was one of `categories`."""
    zh_s, en_s = subject(name, label)
    shown = [str(c) for c in categories[:limit]]
    more = len(categories) > limit
    zh = "、".join(shown) + ("等" if more else "")
    en = (", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else (shown[0] if shown else "")) + (
        " and others" if more else "")
    return f"{zh_s}为{zh}", f"{en_s} is {en}"


def missing(name: str, label: Mapping[str, str] | None = None) -> tuple[str, str]:
    zh_s, en_s = subject(name, label)
    return MISSING[0].format(s=zh_s), MISSING[1].format(s=en_s)


def unknown(name: str, label: Mapping[str, str] | None = None) -> tuple[str, str]:
    zh_s, en_s = subject(name, label)
    return UNKNOWN[0].format(s=zh_s), UNKNOWN[1].format(s=en_s)
