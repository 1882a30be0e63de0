"""Industry activity indices (产业分析): the rules, as pure functions over firm-day measures.

Measures per firm and local business day (computed from the telemetry store's daily aggregates by
`iotfin.analytics.store`):

- `energy_kwh`: electricity use, the sum over the firm's meters of mean power x 24 h (robust to lost
  readings, unlike a count of readings x interval);
- `runtime_min` / `capacity_min`: machine runtime over the minutes the machines reported (operating rate);
- `truck_km`: distance driven, the sum of GPS speed readings x their 10-minute interval;
- `stock_t`: tonnes on the firm's load cells (mean of the day).

Indices of a cell (sector x region x supply chain, any of them "*" for all) follow the China
Electricity Council's practice: the period's value over the same length of a base period x 100. Every
index is computed on daily averages, so a leap-year February (29 days) compares with a 28-day one on
equal terms (the CEC's leap-day adjustment); a calendar-adjusted daily index also divides out the
cell's weekday pattern measured in the base period. Year-on-year compares a day with the same
calendar day a year before (29 February with 28 February). Trends are 7- and 30-day means and their
change against the window before.

Privacy: a cell is served only when at least `min_firms` firms contribute (`suppress`), and a firm's
activity relative to its peers only when its peers alone reach that number (and the firm consented).

Resumption (2020 "back to work" practice from grid data): a firm counts as resumed on a day when its
daily kWh exceeds 30 % of its average daily kWh over the days before the shock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from iotfin.core.errors import ValidationError

EPOCH = date(1970, 1, 1)
ALL = "*"
DIMENSIONS = ("sector", "region_code", "chain_id")
# measure -> (numerator column, denominator column or None): the index is the ratio of cell sums.
MEASURES: dict[str, tuple[str, str | None]] = {
    "energy": ("energy_kwh", None),
    "operating": ("runtime_min", "capacity_min"),
    "logistics": ("truck_km", None),
    "inventory": ("stock_t", None),
}
MEASURE_LABELS = {
    "energy": ("用电活跃指数", "energy-based activity index"),
    "operating": ("设备开工指数", "operating-rate index"),
    "logistics": ("物流活跃指数", "logistics index"),
    "inventory": ("库存指数", "inventory index"),
}
FIRM_COLUMNS = ("energy_kwh", "runtime_min", "capacity_min", "truck_km", "stock_t")
GPS_INTERVAL_H = 600 / 3600  # GPS trackers report every 10 minutes
MACHINE_SLOT_MIN = 15.0  # a machine reading is the runtime minutes of its 15-minute slot


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """`min_firms`: the fewest firms a served cell may come from; `base_days`: the base period is the
    first `base_days` days of data unless `base_start` is given; `resumption_share`: the 30 % rule;
    `baseline_days`: days before a shock that make a firm's pre-shock daily average."""

    min_firms: int = 5
    base_days: int = 14
    base_start: date | None = None
    resumption_share: float = 0.30
    baseline_days: int = 14

    def __post_init__(self) -> None:
        if self.min_firms < 2:
            raise ValidationError("min_firms must be at least 2: one firm's data is never an aggregate", field="min_firms")
        if not 7 <= self.base_days <= 366:
            raise ValidationError(f"base_days must be between 7 and 366, not {self.base_days}", field="base_days")
        if not 0 < self.resumption_share < 1:
            raise ValidationError("resumption_share must be between 0 and 1", field="resumption_share")
        if not 3 <= self.baseline_days <= 90:
            raise ValidationError("baseline_days must be between 3 and 90", field="baseline_days")


def day_number(d: date) -> int:
    return (d - EPOCH).days


def day_of(n: int) -> date:
    return EPOCH + timedelta(days=int(n))


def same_day_last_year(d: date) -> date:
    """The calendar day a year before: 29 February compares with 28 February."""
    if d.month == 2 and d.day == 29:
        return date(d.year - 1, 2, 28)
    return d.replace(year=d.year - 1)


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise ValidationError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}", field="measure")
    return measure


def cell_values(cells: pd.DataFrame, measure: str) -> pd.Series:
    """The cell's value of a measure per row: a sum, or a ratio of sums (operating rate)."""
    num, den = MEASURES[measure]
    if den is None:
        return cells[num].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cells[num] / cells[den].where(cells[den] > 0)).astype(float)


def compute_indices(cells: pd.DataFrame, settings: IndexSettings) -> pd.DataFrame:
    """Index rows from cell sums: `cells` has lday, the DIMENSIONS, `firms_<measure>` and the
    FIRM_COLUMNS summed. One output row per (cell, measure, day) with a value."""
    out = []
    keys = list(DIMENSIONS)
    for measure in MEASURES:
        firms = cells[f"firms_{measure}"]
        part = cells.loc[firms > 0, ["lday", *keys]].copy()
        part["measure"] = measure
        part["firms"] = firms[firms > 0].astype(np.int64)
        part["value"] = cell_values(cells.loc[firms > 0], measure)
        out.append(part)
    frame = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["lday", *keys, "measure", "firms", "value"])
    if frame.empty:
        for col in ("index", "index_adj", "yoy_pct", "trend7", "trend30", "change7_pct", "change30_pct"):
            frame[col] = pd.Series(dtype=float)
        return frame
    frame = frame.sort_values([*keys, "measure", "lday"], kind="stable").reset_index(drop=True)
    groups = frame.groupby([*keys, "measure"], sort=False)
    # A day is whole for a cell when at least half its firms reported (the first local day of a store
    # holds a few early readings of skewed device clocks); only whole days make a base period.
    whole = frame["firms"] >= 0.5 * groups["firms"].transform("max")
    first = int(frame.loc[whole, "lday"].min())
    base_lo = day_number(settings.base_start) if settings.base_start else first
    base_hi = base_lo + settings.base_days - 1
    in_base = frame["lday"].between(base_lo, base_hi) & whole
    base_mean = frame["value"].where(in_base).groupby([frame[k] for k in (*keys, "measure")], sort=False).transform("mean")
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["index"] = 100.0 * frame["value"] / base_mean.where(base_mean > 0)
    # Calendar adjustment: the weekday pattern of the base period divided out.
    weekday = (frame["lday"] + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    wd_mean = frame["value"].where(in_base).groupby([*(frame[k] for k in (*keys, "measure")), weekday],
                                                    sort=False).transform("mean")
    factor = wd_mean / base_mean
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["index_adj"] = frame["index"] / factor.where(factor > 0)
    frame["yoy_pct"] = _yoy(frame, keys)
    group = groups.ngroup().to_numpy()
    index = frame["index"].to_numpy(dtype=float)
    for window in (7, 30):
        mean = _rolling_mean(index, group, window, 0)
        prev = _rolling_mean(index, group, window, window)
        frame[f"trend{window}"] = mean
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"change{window}_pct"] = 100.0 * (mean / np.where(prev > 0, prev, np.nan) - 1.0)
    return frame


def _rolling_mean(values: np.ndarray, group: np.ndarray, window: int, lag: int) -> np.ndarray:
    """Mean of the `window` rows ending `lag` rows back, within each run of equal `group` (rows sorted by
    group, then day); NaN where fewer than half the window is known. Cumulative sums instead of
    pandas' per-group rolling: one pass for thousands of cells (measured 30x faster)."""
    n = values.size
    known = np.isfinite(values)
    csum = np.r_[0.0, np.cumsum(np.where(known, values, 0.0))]
    ccount = np.r_[0, np.cumsum(known)]
    pos = np.arange(n)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    hi = pos - lag + 1  # exclusive end in csum terms
    lo = np.maximum(hi - window, first)
    valid = hi > first
    hi_c, lo_c = np.where(valid, hi, 0), np.where(valid, lo, 0)
    total = csum[hi_c] - csum[lo_c]
    count = ccount[hi_c] - ccount[lo_c]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid & (count >= max(1, window // 2)), total / np.maximum(count, 1), np.nan)


def _yoy(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Year-on-year change of the value, in %, where the same calendar day a year before is known."""
    days = sorted(set(frame["lday"].astype(int)))
    before = {d: day_number(same_day_last_year(day_of(d))) for d in days}
    last_year = frame[[*keys, "measure", "lday", "value"]].rename(columns={"value": "ly_value", "lday": "ly_day"})
    probe = frame[[*keys, "measure"]].copy()
    probe["ly_day"] = frame["lday"].astype(int).map(before)
    joined = probe.merge(last_year, on=[*keys, "measure", "ly_day"], how="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        return (100.0 * (frame["value"].to_numpy() / joined["ly_value"].where(joined["ly_value"] > 0).to_numpy() - 1.0))


def period_index(values: pd.Series, days: pd.Series, base_values: pd.Series, base_days: pd.Series) -> float:
    """A period's index on daily averages: mean over the period's days / mean over the base's x 100
    (the leap-day-adjusted CEC figure: a 29-day February is not 1/28 busier for having a day more)."""
    base = float(base_values.sum()) / max(int(base_days.nunique()), 1)
    now = float(values.sum()) / max(int(days.nunique()), 1)
    return float("nan") if base <= 0 else 100.0 * now / base


def suppress(frame: pd.DataFrame, min_firms: int, universe: pd.DataFrame | None = None) -> pd.DataFrame:
    """Only the cells at least `min_firms` firms contribute to: the rest are never served. Also withheld:
    a cell whose parent (one of its dimensions widened to all, same day and measure, looked up in
    `universe`) has between 1 and `min_firms` - 1 firms more, since subtracting the two would describe
    those few firms. One pass: a complement over several served siblings is not checked."""
    ok = frame["firms"] >= min_firms
    source = frame if universe is None else universe
    key = ["lday", "measure", *DIMENSIONS]
    parents = source[key + ["firms"]].rename(columns={"firms": "parent_firms"})
    for dim in DIMENSIONS:
        child = frame[ok & (frame[dim] != ALL)]
        if child.empty:
            continue
        probe = child[key + ["firms"]].copy()
        probe[dim] = ALL
        gap = probe.merge(parents, on=key, how="left")["parent_firms"].to_numpy() - probe["firms"].to_numpy()
        ok.loc[child.index[(gap > 0) & (gap < min_firms)]] = False
    return frame[ok]


def resumption(firm_kwh: pd.DataFrame, shock_day: int, settings: IndexSettings) -> pd.DataFrame:
    """Per firm and day from `shock_day` on: resumed (daily kWh > share x the firm's daily average over
    the `baseline_days` before the shock). `firm_kwh`: enterprise_id, lday, energy_kwh."""
    lo = shock_day - settings.baseline_days
    base = firm_kwh[(firm_kwh["lday"] >= lo) & (firm_kwh["lday"] < shock_day)]
    baseline = base.groupby("enterprise_id")["energy_kwh"].mean()
    after = firm_kwh[firm_kwh["lday"] >= shock_day].copy()
    after["baseline_kwh"] = after["enterprise_id"].map(baseline)
    after = after[after["baseline_kwh"] > 0]
    after["resumed"] = after["energy_kwh"] > settings.resumption_share * after["baseline_kwh"]
    return after


def resumed_day(per_day: pd.DataFrame, stopped_from: int) -> pd.Series:
    """Per firm: the first day on or after `stopped_from` that the firm is resumed, having been stopped
    (not resumed) on some day before it; firms never seen stopped are absent."""
    frame = per_day[per_day["lday"] >= stopped_from].sort_values(["enterprise_id", "lday"])
    stopped = frame.groupby("enterprise_id")["resumed"].transform(lambda s: (~s).cummax())
    came_back = frame[stopped & frame["resumed"]]
    return came_back.groupby("enterprise_id")["lday"].min()


def relative_activity(firm_ratio: float, peer_ratio: float) -> float:
    """A firm's activity against its peers': its own index over the peers' index (1.0 = in step)."""
    if not np.isfinite(firm_ratio) or not np.isfinite(peer_ratio) or peer_ratio <= 0:
        return float("nan")
    return firm_ratio / peer_ratio


def scope_of(drop_firm: float, drop_peers: float, peers: int, min_firms: int, threshold: float = 0.5) -> str:
    """Whether a firm's fall in activity is its own or its sector's: `drop_*` are the falls against
    their baselines (0.6 = down 60 %). Sector-wide when enough peers fell by at least `threshold` of
    the firm's fall; 'unknown' when the peers are too few to say."""
    if peers < min_firms or not np.isfinite(drop_peers):
        return "unknown"
    return "sector_wide" if drop_peers >= threshold * max(drop_firm, 1e-9) else "firm_specific"


RELATIVE_FEATURES = {
    "a_rel_energy_7d": ("企业用电趋势相对同业(7天)", "electricity trend against sector peers (7 d)"),
    "a_rel_energy_30d": ("企业用电趋势相对同业(30天)", "electricity trend against sector peers (30 d)"),
    "a_rel_operating_30d": ("企业开工率相对同业(30天)", "operating rate against sector peers (30 d)"),
}


def relative_features(frame: pd.DataFrame, sector_of: dict[int, str], as_of_days: list[int], min_firms: int) -> pd.DataFrame:
    """Point-in-time relative-activity features of every firm at each as-of day, from firm-days up to
    that day only: the firm's own trend (recent window over the window before it) divided by its
    sector peers' trend (the peers' sums without the firm). NaN where the peers are fewer than
    `min_firms` (no firm is ever compared with a group small enough to reveal a member).

    a_rel_energy_7d: kWh of the last 7 days / of the 28 before, firm over peers; a_rel_energy_30d: last
    30 / the 60 before; a_rel_operating_30d: operating rate of the last 30 days, firm over peers."""
    firms = sorted(sector_of)
    pos = {e: i for i, e in enumerate(firms)}
    if frame.empty or not as_of_days:
        return pd.DataFrame(columns=["enterprise_id", "as_of_day", *RELATIVE_FEATURES])
    lo = int(frame["lday"].min())
    width = int(max(frame["lday"].max(), max(as_of_days))) - lo + 1
    known = frame[frame["enterprise_id"].isin(pos)]
    rows, cols = known["enterprise_id"].map(pos).to_numpy(), (known["lday"] - lo).to_numpy()

    def matrix(column: str) -> np.ndarray:
        m = np.full((len(firms), width), np.nan)
        m[rows, cols] = known[column].to_numpy(dtype=float)
        return m

    energy, runtime, capacity = matrix("energy_kwh"), matrix("runtime_min"), matrix("capacity_min")
    labels = sorted(set(sector_of.values()))
    group = np.array([labels.index(sector_of[e]) for e in firms])
    out = []
    for a in as_of_days:
        end = a - lo + 1
        feats = {}
        for name, recent, before in (("a_rel_energy_7d", 7, 28), ("a_rel_energy_30d", 30, 60)):
            r, b = _window_sum(energy, end, recent), _window_sum(energy, end, before, recent)
            feats[name] = _relative(r / recent, b / before, group, min_firms)
        run, cap = _window_sum(runtime, end, 30), _window_sum(capacity, end, 30)
        feats["a_rel_operating_30d"] = _relative(run, cap, group, min_firms)
        out.append(pd.DataFrame({"enterprise_id": firms, "as_of_day": a, **feats}))
    return pd.concat(out, ignore_index=True)


def _window_sum(m: np.ndarray, end: int, days: int, skip: int = 0) -> np.ndarray:
    """Row sums over the `days` columns ending `skip` columns before column `end` (exclusive); NaN
    for a row with no value there."""
    hi, start = max(end - skip, 0), max(end - skip - days, 0)
    part = m[:, start:hi]
    return np.where(np.isfinite(part).any(axis=1), np.nansum(part, axis=1), np.nan)


def _relative(num: np.ndarray, den: np.ndarray, group: np.ndarray, min_firms: int) -> np.ndarray:
    """(num/den of the firm) / (sum num / sum den of its group without it); NaN for too few peers."""
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    g_num = np.bincount(group[ok], weights=num[ok], minlength=group.max() + 1)
    g_den = np.bincount(group[ok], weights=den[ok], minlength=group.max() + 1)
    g_n = np.bincount(group[ok], minlength=group.max() + 1)
    peers = g_n[group] - ok
    p_num, p_den = g_num[group] - np.where(ok, num, 0), g_den[group] - np.where(ok, den, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        firm = num / den
        peer = p_num / p_den
        return np.where(ok & (peers >= min_firms) & (peer > 0), firm / peer, np.nan)
