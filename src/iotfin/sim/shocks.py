"""Sector-wide and regional shocks with ground truth (issue 24): what the industry indices must see.

Three shocks, switched on together by `SimConfig(shocks=True)` and drawn from their own random
stream (`rng(cfg, "shocks")`), so a run without shocks is byte-for-byte the run it always was:

- **holiday**: a Spring Festival shutdown. Plants in manufacturing, logistics and infrastructure stop
  two days before the festival eve; each firm resumes on its own day (staggered: 5 to ~25 days after
  the eve, logistics first), at 60 % of its normal activity for three days and then in full. Energy
  and agriculture run through (continuous processes, animals). The eve is the real one when it falls
  inside the horizon with room for the resumption; otherwise at 30 % of the horizon.
- **outage**: a regional power cut of two days in the region with the most firms, every firm there
  at zero activity (standby load only). At 80 % of the horizon.
- **slump**: a commodity-price slump for the energy sector (coal and oil prices -25 %, output cut to
  70 % of what it would be) from 60 % of the horizon to the end.

Ground truth: `ground_truth/shocks.parquet` (one row per shock: kind, sector or region, first and
last day, effect) and `ground_truth/resumption.parquet` (per firm of a holiday shutdown: the day it
stopped and the day it resumed). The manifest lists the shocks too.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from iotfin.sim.config import SimConfig, rng
from iotfin.sim.reference import REGIONS, SECTORS

# Spring Festival (lunar new year) days; the eve is the day before.
SPRING_FESTIVAL = (date(2024, 2, 10), date(2025, 1, 29), date(2026, 2, 17), date(2027, 2, 6), date(2028, 1, 26),
                   date(2029, 2, 13), date(2030, 2, 3))
HOLIDAY_SECTORS = ("manufacturing", "logistics", "infrastructure")
SLUMP_SECTOR = "energy"
SLUMP_COMMODITIES = ("coal", "oil")
SLUMP_OUTPUT = 0.70
SLUMP_PRICE = 0.75
RAMP_LEVEL, RAMP_DAYS = 0.6, 3
OUTAGE_DAYS = 2
MIN_DAYS = 30  # shorter horizons have no room for a shutdown and its resumption


def holiday_eve(cfg: SimConfig) -> int:
    """The day index of the festival eve the holiday shock uses."""
    for festival in SPRING_FESTIVAL:
        eve = (festival - timedelta(days=1) - cfg.start_date).days
        if 3 <= eve <= cfg.days - 30:
            return eve
    return int(cfg.days * 0.3)


def apply(cfg: SimConfig, sector_idx: np.ndarray, region_idx: np.ndarray, activity: np.ndarray) -> dict[str, pa.Table]:
    """Scale `activity` (enterprise x day) in place by the shocks; returns the ground-truth tables."""
    if cfg.days < MIN_DAYS:
        raise ValueError(f"shocks need a horizon of at least {MIN_DAYS} days, not {cfg.days}")
    r = rng(cfg, "shocks")
    n, days = activity.shape
    rows: list[dict[str, Any]] = []

    # holiday shutdown with staggered resumption
    eve = holiday_eve(cfg)
    stop = max(eve - 2, 0)
    affected = np.flatnonzero(np.isin(sector_idx, [SECTORS.index(s) for s in HOLIDAY_SECTORS]))
    logistics = sector_idx[affected] == SECTORS.index("logistics")
    latest = max(days - 10 - eve, 8)
    lag = np.where(logistics, 5 + r.gamma(2.0, 2.0, affected.size), 7 + r.gamma(2.5, 3.0, affected.size))
    resume = eve + np.minimum(np.round(lag).astype(np.int64), latest)
    for e, back in zip(affected, resume, strict=True):
        activity[e, stop:back] = 0.0
        activity[e, back:back + RAMP_DAYS] *= RAMP_LEVEL
    rows.append({"kind": "holiday", "sector": ",".join(HOLIDAY_SECTORS), "region_code": None,
                 "first_day": cfg.day(stop), "last_day": cfg.day(int(resume.max()) - 1) if affected.size else cfg.day(stop),
                 "detail": {"name": "Spring Festival", "eve": cfg.day(eve).isoformat(), "firms": int(affected.size),
                            "resumption_ramp": [RAMP_LEVEL, RAMP_DAYS]}})
    resumption = pa.table({
        "enterprise_id": (affected + 1).astype(np.int64), "sector": [SECTORS[s] for s in sector_idx[affected]],
        "region_code": [REGIONS[g][0] for g in region_idx[affected]],
        "stopped_on": pa.array([cfg.day(stop)] * affected.size, pa.date32()),
        "resumed_on": pa.array([cfg.day(int(b)) for b in resume], pa.date32())})

    # commodity-price slump for one sector
    slump_from = int(days * 0.6)
    in_sector = sector_idx == SECTORS.index(SLUMP_SECTOR)
    activity[np.ix_(in_sector, np.arange(slump_from, days))] *= SLUMP_OUTPUT
    rows.append({"kind": "slump", "sector": SLUMP_SECTOR, "region_code": None, "first_day": cfg.day(slump_from),
                 "last_day": cfg.day(days - 1),
                 "detail": {"commodities": list(SLUMP_COMMODITIES), "price_factor": SLUMP_PRICE,
                            "output_factor": SLUMP_OUTPUT, "firms": int(in_sector.sum())}})

    # regional power outage
    region = int(np.bincount(region_idx, minlength=len(REGIONS)).argmax())
    out_from = int(days * 0.8)
    in_region = region_idx == region
    activity[in_region, out_from:out_from + OUTAGE_DAYS] = 0.0
    rows.append({"kind": "outage", "sector": None, "region_code": REGIONS[region][0], "first_day": cfg.day(out_from),
                 "last_day": cfg.day(min(out_from + OUTAGE_DAYS, days) - 1),
                 "detail": {"region": REGIONS[region][2], "firms": int(in_region.sum())}})

    shocks = pa.table({
        "shock_id": np.arange(1, len(rows) + 1, dtype=np.int64), "kind": [x["kind"] for x in rows],
        "sector": pa.array([x["sector"] for x in rows], pa.string()),
        "region_code": pa.array([x["region_code"] for x in rows], pa.string()),
        "first_day": pa.array([x["first_day"] for x in rows], pa.date32()),
        "last_day": pa.array([x["last_day"] for x in rows], pa.date32()),
        "detail": [json.dumps(x["detail"], sort_keys=True, ensure_ascii=False) for x in rows]})
    return {"shocks": shocks, "resumption": resumption}


def slump_prices(cfg: SimConfig, prices: pa.Table) -> pa.Table:
    """The commodity price table with the slumped commodities cut from the slump's first day."""
    slump_from = cfg.day(int(cfg.days * 0.6))
    out = []
    for day, commodity, price in zip(prices["day"].to_pylist(), prices["commodity"].to_pylist(),
                                     prices["price"].to_pylist(), strict=True):
        if commodity in SLUMP_COMMODITIES and day >= slump_from:
            price = (price * Decimal(str(SLUMP_PRICE))).quantize(Decimal("0.01"))
        out.append(price)
    return prices.set_column(prices.schema.get_field_index("price"), "price", pa.array(out, prices.schema.field("price").type))
