"""The feature catalogue: every credit feature defined once — name, dimension, source scopes, look-back,
unit, zh-CN/en label, a definition in words, and the SQL expression that computes it. Pure: no I/O.

The SQL expressions are evaluated by `iotfin.risk.features.sql.feature_query` over the per-enterprise
aggregates defined there; docs/feature-catalogue.md is generated from this module (and a test
checks the file matches). Run `python -m iotfin.risk.features.catalogue > docs/feature-catalogue.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# Scopes a feature reads. "telemetry:*" stands for the telemetry scopes of every device type the
# enterprise has (a feature about all its devices needs consent for all of them).
ALL_TELEMETRY = "telemetry:*"

DIMENSIONS = {"entity": ("主体", "entity"), "asset": ("资产", "asset"), "transaction": ("交易", "transaction")}

# The metric of each device type that coverage and completeness count (one reading per interval).
PRIMARY_METRIC = {"electricity_meter": "power_kw", "machine_sensor": "runtime_min", "load_cell": "weight_t",
                  "door_seal": "door_open", "env_sensor": "temperature_c", "gps_tracker": "speed_kmh",
                  "tank_gauge": "volume_m3", "livestock_tag": "activity"}
# Daily aggregates the features read; the rest of the telemetry is not needed.
ROLLUP_METRICS = tuple(sorted(set(PRIMARY_METRIC.values())))


# Lending value after a haircut for price risk, liquidity and spoilage, by commodity (collateral
# policy: a lender's own table replaces this default). Livestock tags are valued at the cattle price.
HAIRCUT = {"steel": Decimal("0.60"), "copper": Decimal("0.60"), "cotton": Decimal("0.50"), "grain": Decimal("0.50"),
           "coal": Decimal("0.50"), "diesel": Decimal("0.60"), "oil": Decimal("0.60"), "milk": Decimal("0.30"),
           "cattle": Decimal("0.40")}


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    dimension: str
    scopes: tuple[str, ...]
    lookback_days: int  # data read: business dates (as_of - lookback_days, as_of]
    unit: str
    zh: str
    en: str
    definition: str
    sql: str  # expression over the aggregates of iotfin.risk.features.sql
    kind: str = "double"  # double | decimal | integer | string


REG, TAX, CREDIT, TRADE = "business_registration", "tax_rating", "credit_report", "trade_documents"
ENERGY, EQUIP, INV, GPS, LIVE = "telemetry:energy", "telemetry:equipment", "telemetry:inventory", "telemetry:gps", "telemetry:livestock"

CATALOGUE: tuple[Feature, ...] = (
    # --- entity 主体 ------------------------------------------------------------------------------
    Feature("e_age_years", "entity", (REG,), 1, "years", "成立年限", "years since founding",
            "(as_of - founding date) / 365.25", "CAST(A_DAY - ent.founded_day AS DOUBLE) / 365.25"),
    Feature("e_registered_capital", "entity", (REG,), 1, "yuan", "注册资本", "registered capital",
            "registered capital in yuan", "ent.registered_capital", "decimal"),
    Feature("e_sector", "entity", (REG,), 1, "", "行业", "sector", "industry sector", "ent.sector", "string"),
    Feature("e_region_code", "entity", (REG,), 1, "", "地区", "region", "GB/T 2260 region code of registration",
            "ent.region_code", "string"),
    Feature("e_tax_grade", "entity", (TAX,), 1, "", "纳税信用等级", "tax credit grade", "A/B/M/C/D",
            "ent.tax_grade", "string"),
    Feature("e_litigation_count", "entity", (CREDIT,), 1, "cases", "涉诉案件数", "litigation cases",
            "court cases on record", "ent.litigation_count", "integer"),
    Feature("e_key_person_changes", "entity", (CREDIT,), 1, "changes", "关键人员变更次数", "key-person changes",
            "changes of legal representative, shareholders or directors on record", "ent.key_person_changes", "integer"),
    # --- asset 资产 -------------------------------------------------------------------------------
    Feature("a_collateral_value", "asset", (INV,), 3, "yuan", "物联网核验押品价值", "IoT-verified collateral value",
            "sum over load cells and tank gauges of the last reading on the latest day of the last 3 (t or m³) "
            "× the commodity's latest price on or before as_of × haircut",
            "coll.value", "decimal"),
    Feature("a_inventory_cv_30d", "asset", (INV,), 30, "ratio", "库存波动系数(30天)", "inventory variability (30 d)",
            "sample standard deviation / mean of the daily mean stock over 30 days", "inv.sd_30 / NULLIF(inv.mean_30, 0)"),
    Feature("a_inventory_trend_30d", "asset", (INV,), 30, "ratio", "库存趋势(30天)", "inventory trend (30 d)",
            "mean stock of the last 7 days / mean stock of days 24-30 before as_of - 1",
            "inv.mean_last7 / NULLIF(inv.mean_first7, 0) - 1"),
    Feature("a_livestock_heads", "asset", (LIVE,), 2, "head", "在栏牲畜数", "livestock on hand",
            "livestock tags that reported on as_of or the day before (satellite uplinks lag by hours)",
            "live.heads", "integer"),
    Feature("a_livestock_value", "asset", (LIVE,), 2, "yuan", "活体押品价值", "livestock collateral value",
            "heads × the latest cattle price on or before as_of × haircut", "live.value", "decimal"),
    Feature("a_equipment_utilisation_30d", "asset", (EQUIP,), 30, "ratio", "设备利用率(30天)", "equipment utilisation (30 d)",
            "machine runtime minutes over 30 days / (machines installed × minutes in the days they were installed)",
            "eq.runtime_min / NULLIF(eq.possible_min, 0)"),
    Feature("a_capacity_kw", "asset", (ENERGY,), 365, "kW", "用电容量", "electrical capacity",
            "sum over meters of the highest power reading in the prior 365 days", "cap.capacity_kw"),
    Feature("a_energy_kwh_30d", "asset", (ENERGY,), 30, "kWh", "用电量(30天)", "electricity used (30 d)",
            "sum over days and meters of mean power × 24 h (power rather than the counter, which a replayed "
            "meter runs backwards)", "en.kwh_30d"),
    Feature("a_operating_rate_30d", "asset", (ENERGY,), 365, "ratio", "开工率(30天)", "operating rate (30 d)",
            "mean daily load over 30 days / the peak daily load of the prior 365 days",
            "en.kw_30d / NULLIF(en.kw_peak_365d, 0)"),
    Feature("a_energy_yoy", "asset", (ENERGY,), 395, "ratio", "用电同比", "electricity use year on year",
            "kWh of the last 30 days / kWh of the same 30 days a year earlier - 1; NULL unless 25 of those "
            "earlier days have data", "CASE WHEN en.days_30d_ly >= 25 THEN en.kwh_30d / NULLIF(en.kwh_30d_ly, 0) - 1 END"),
    Feature("a_device_coverage_7d", "asset", (ALL_TELEMETRY,), 7, "ratio", "设备在线覆盖率(7天)", "device coverage (7 d)",
            "devices installed by as_of that reported in the last 7 days / devices installed by as_of",
            "CAST(cov.reporting_7d AS DOUBLE) / NULLIF(cov.installed, 0)"),
    Feature("a_data_completeness_30d", "asset", (ALL_TELEMETRY,), 30, "ratio", "数据完整率(30天)", "data completeness (30 d)",
            "readings received / readings expected from each device's interval, over the days in the last 30 it "
            "was installed", "CAST(cov.readings_30d AS DOUBLE) / NULLIF(cov.expected_30d, 0)"),
    Feature("a_telemetry_days_365d", "asset", (ALL_TELEMETRY,), 365, "days", "有设备数据的天数(365天)",
            "days with device data (365 d)", "business days in the last 365 on which any of the enterprise's devices "
            "reported (0 without devices): how long a history of trusted device data there is",
            "COALESCE(hist.data_days, 0)", "integer"),
    # --- transaction 交易 -------------------------------------------------------------------------
    Feature("t_sales_90d", "transaction", (TRADE,), 90, "yuan", "销售额(90天)", "invoiced sales (90 d)",
            "invoices issued as seller in the last 90 days", "COALESCE(sal.sales_90d, 0)", "decimal"),
    Feature("t_sales_trend_90d", "transaction", (TRADE,), 180, "ratio", "销售趋势(90天环比)", "sales trend (90 d on 90 d)",
            "sales of the last 90 days / sales of the 90 days before - 1",
            "CAST(sal.sales_90d AS DOUBLE) / NULLIF(CAST(sal.sales_prior_90d AS DOUBLE), 0) - 1"),
    Feature("t_chain_tenure_years", "transaction", (TRADE,), 1, "years", "供应链合作年限", "tenure in the chain",
            "years since the enterprise's first trading link in its chain began",
            "CAST(A_DAY - core.since_day AS DOUBLE) / 365.25"),
    Feature("t_core_share_180d", "transaction", (TRADE,), 180, "ratio", "与核心企业交易占比", "share traded with the core enterprise",
            "invoiced amount (either side) with the chain's core enterprise / all invoiced amount, 180 days; NULL for the core itself",
            "CASE WHEN core.core_id <> ent.enterprise_id THEN CAST(cp.core_amount AS DOUBLE) / NULLIF(CAST(cp.total AS DOUBLE), 0) END"),
    Feature("t_counterparty_hhi_180d", "transaction", (TRADE,), 180, "index", "交易对手集中度", "counterparty concentration",
            "Herfindahl index of invoiced amounts (either side) by counterparty over 180 days", "cp.hhi"),
    Feature("t_counterparties_180d", "transaction", (TRADE,), 180, "count", "交易对手数", "counterparties",
            "distinct counterparties invoiced (either side) in 180 days", "COALESCE(cp.n, 0)", "integer"),
    Feature("t_on_time_payment_rate_180d", "transaction", (TRADE,), 180, "ratio", "按时付款率", "on-time payment rate",
            "invoices to the enterprise falling due in the last 180 days that it paid by the due date / all of them",
            "pay.on_time_rate"),
    Feature("t_dso_days", "transaction", (TRADE,), 365, "days", "应收账款周转天数", "days sales outstanding",
            "receivables unpaid at as_of (invoices of the last 365 days) / sales of the last 90 days × 90",
            "CAST(rec.outstanding AS DOUBLE) / NULLIF(CAST(sal.sales_90d AS DOUBLE), 0) * 90"),
    Feature("t_overdue_share_180d", "transaction", (TRADE,), 180, "ratio", "逾期应收占比", "overdue receivable share",
            "amount of the enterprise's invoices due in the last 180 days and unpaid at as_of / amount of all of them",
            "CAST(rec.overdue AS DOUBLE) / NULLIF(CAST(rec.due_180d AS DOUBLE), 0)"),
    Feature("c_invoices_without_delivery_90d", "transaction", (TRADE,), 90, "count", "无发货单发票数", "invoices without a delivery",
            "the enterprise's invoices of the last 90 days whose order has no delivery note issued by as_of",
            "COALESCE(chk.no_delivery, 0)", "integer"),
    Feature("c_deliveries_without_gps_90d", "transaction", (TRADE, GPS), 90, "count", "无车辆轨迹发货单数",
            "deliveries the truck did not drive",
            "delivery notes of the last 90 days naming a truck whose GPS shows no movement (top speed < 5 km/h, "
            "or no data) on the delivery day", "COALESCE(gps.unmatched, 0)", "integer"),
    Feature("c_sales_per_kwh_change", "transaction", (TRADE, ENERGY), 120, "ratio", "产值能耗比变化", "sales per kWh, change",
            "(sales / kWh of the last 30 days) / (sales / kWh of the 90 days before) - 1: output reported without the "
            "energy to make it",
            "(CAST(sal.sales_30d AS DOUBLE) / NULLIF(en.kwh_30d, 0)) / NULLIF(CAST(sal.sales_31_120 AS DOUBLE) / NULLIF(en.kwh_31_120, 0), 0) - 1"),
    # Transaction credit from voucher history (digital debt vouchers, docs/receivables.md): what core
    # enterprises confirmed they owe the enterprise, how those cores pay, and how far up the chain it sits.
    Feature("t_voucher_volume_180d", "transaction", (TRADE,), 180, "yuan", "核心企业确权凭证金额(180天)",
            "voucher volume confirmed by core enterprises (180 d)",
            "face value of the digital debt vouchers the enterprise took in the last 180 days — issued to it by a "
            "core enterprise or passed on to it by a transfer it accepted — not counting vouchers cancelled by as_of",
            "CAST(COALESCE(vq.fen_180d, 0) AS DECIMAL(18, 2)) / 100", "decimal"),
    Feature("t_voucher_core_on_time_180d", "transaction", (TRADE,), 180, "ratio", "核心企业凭证按期兑付率",
            "core enterprises' on-time voucher payment",
            "of the vouchers the enterprise took or issued that matured in the last 180 days, the share the core "
            "enterprise had paid in full by maturity (as known at as_of); NULL when none matured",
            "vp.on_time"),
    Feature("t_voucher_core_days_late_180d", "transaction", (TRADE,), 180, "days", "核心企业凭证平均逾期天数",
            "core enterprises' mean days late on vouchers",
            "mean over the same vouchers of the days between maturity and full payment (or as_of, if unpaid at "
            "as_of); 0 for one paid on time; NULL when none matured", "vp.days_late"),
    Feature("t_voucher_tier", "transaction", (TRADE,), 365, "tier", "凭证流转层级", "tier in the voucher chain",
            "the nearest tier at which the enterprise took a voucher in the last 365 days: 1 issued to it by the "
            "core enterprise, 2 passed on by the core's supplier, 3 from further up the chain; NULL without vouchers",
            "vq.tier_365d", "integer"),
)

BY_NAME = {f.name: f for f in CATALOGUE}


def markdown() -> str:
    """docs/feature-catalogue.md, generated from CATALOGUE."""
    lines = [
        "# Feature catalogue",
        "",
        "Generated from `src/iotfin/risk/features/catalogue.py` "
        "(`python -m iotfin.risk.features.catalogue > docs/feature-catalogue.md`; a test checks this file).",
        "See [features.md](features.md) for how they are computed point-in-time and consent-scoped.",
        "`A_DAY` is the as-of business date as a day number; the aggregates (`en`, `inv`, `sal`, ...) are the",
        "common table expressions of `iotfin.risk.features.sql`.",
        "",
    ]
    for dim, (zh, en) in DIMENSIONS.items():
        lines += [f"## {en.capitalize()} ({zh})", "", "| name | label | unit | scopes | look-back (days) | definition | SQL |",
                  "|---|---|---|---|---|---|---|"]
        for f in CATALOGUE:
            if f.dimension == dim:
                sql = f.sql.replace("|", "\\|")
                lines.append(f"| `{f.name}` | {f.zh} / {f.en} | {f.unit} | {', '.join(f.scopes)} | {f.lookback_days} "
                             f"| {f.definition} | `{sql}` |")
        lines.append("")
    lines += ["## Haircuts", "", "| commodity | haircut (lending value share) |", "|---|---|"]
    lines += [f"| {c} | {h} |" for c, h in HAIRCUT.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
