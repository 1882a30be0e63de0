"""Industry indices as use cases: update (incremental), rebuild (a range of days), and the reads a
lender may make — cell indices above the privacy threshold, resumption shares, and a firm's activity
relative to its peers under the firm's consent (logged by the consent port).

Incremental: the telemetry kernel's daily rollup rebuilds only the UTC partitions whose files changed;
a firm-day (a local day spans two UTC partitions) is rebuilt only when one of its two rollup files is
new or changed (`state.json` keeps what each was built from). The cell table is then re-derived from
the firm-days (one DuckDB GROUPING SETS query: cheap next to reading the telemetry).
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from iotfin.analytics import store
from iotfin.analytics.model import (
    ALL,
    DIMENSIONS,
    MEASURE_LABELS,
    IndexSettings,
    check_measure,
    compute_indices,
    day_number,
    day_of,
    period_index,
    relative_activity,
    resumed_day,
    resumption,
    same_day_last_year,
    suppress,
)
from iotfin.analytics.ports import Consent
from iotfin.core.errors import Forbidden, NotFound, ValidationError
from iotfin.telemetry import daily
from iotfin.telemetry.store import TelemetryStore

SCOPE = "telemetry:energy"
_EPOCH = date(1970, 1, 1)


class IndustryService:
    def __init__(self, engine: Engine, telemetry: TelemetryStore, data_dir: Path, consent: Consent | None = None,
                 settings: IndexSettings | None = None):
        self.engine = engine
        self.telemetry = telemetry
        self.root = Path(data_dir) / "analytics"
        self.consent = consent
        self.settings = settings or IndexSettings()
        self.rollup_dir = self.root / "rollup"
        self.firm_dir = self.root / "firm_day"
        self.index_path = self.root / "indices.parquet"
        self.state_path = self.root / "state.json"

    # --- computing ------------------------------------------------------------------------------

    def update(self, full: bool = False, since: date | None = None, until: date | None = None) -> dict[str, Any]:
        """Bring the indices up to date with the store: only new or changed days unless `full`
        (recompute every day in [since, until], default all)."""
        t0 = time.perf_counter()
        self.root.mkdir(parents=True, exist_ok=True)
        rollups = daily.refresh(self.telemetry, self.rollup_dir, store.METRICS)
        return self.update_from(rollups, full, since, until, started=t0)

    def update_from(self, rollups: list[Path], full: bool = False, since: date | None = None,
                    until: date | None = None, started: float | None = None) -> dict[str, Any]:
        """The update over given per-UTC-day device rollups (`daily.refresh`'s files)."""
        t0 = started if started is not None else time.perf_counter()
        t_rollup = time.perf_counter() - t0
        self.firm_dir.mkdir(parents=True, exist_ok=True)
        by_day = {int((date.fromisoformat(p.stem.removeprefix("day=")) - _EPOCH).days): p for p in rollups}
        state = {} if full or not self.state_path.exists() else json.loads(self.state_path.read_text())
        firms, devices = store.load_firms(self.engine)
        lo = day_number(since) if since else -10**9
        hi = day_number(until) if until else 10**9
        todo = []
        for lday in sorted({d for d in by_day} | {d + 1 for d in by_day}):
            if not lo <= lday <= hi:
                continue
            files = [by_day[d] for d in (lday - 1, lday) if d in by_day]
            fp = ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
            if state.get(str(lday)) != fp or not (self.firm_dir / f"lday={lday}.parquet").exists():
                todo.append((lday, files, fp))
        con = duckdb.connect()
        try:
            for lday, files, fp in todo:
                table = store.firm_days(con, files, devices, lday)
                target = self.firm_dir / f"lday={lday}.parquet"
                tmp = target.with_suffix(".tmp")  # written even when empty: the day is done
                pq.write_table(table, tmp)
                os.replace(tmp, target)
                state[str(lday)] = fp
            t_firm = time.perf_counter() - t0 - t_rollup
            rows = self._rebuild_cells(con, firms)
        finally:
            con.close()
        tmp_state = self.state_path.with_suffix(".tmp")
        tmp_state.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp_state, self.state_path)
        return {"days_computed": len(todo), "days": sorted(day_of(d).isoformat() for d, *_ in todo)[-3:],
                "index_rows": rows, "firms": firms.num_rows,
                "timings_s": {"rollup": round(t_rollup, 2), "firm_days": round(t_firm, 2),
                              "total": round(time.perf_counter() - t0, 2)}}

    def _rebuild_cells(self, con: duckdb.DuckDBPyConnection, firms: pa.Table) -> int:
        if not any(self.firm_dir.glob("lday=*.parquet")):
            return 0
        cells = store.cells(con, self.firm_dir, firms).to_pandas()
        frame = compute_indices(cells, self.settings)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        tmp = self.index_path.with_suffix(".tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, self.index_path)
        return table.num_rows

    # --- reading --------------------------------------------------------------------------------

    def _frame(self) -> pd.DataFrame:
        if not self.index_path.exists():
            raise NotFound("no industry indices yet: run `iotfin industry update` first")
        return pq.read_table(self.index_path).to_pandas()

    def indices(self, measure: str = "energy", sector: str = ALL, region_code: str = ALL, chain_id: str = ALL,
                since: date | None = None, until: date | None = None) -> dict[str, Any]:
        """A cell's daily index rows, served only when at least `min_firms` firms make the cell."""
        check_measure(measure)
        frame = self._frame()
        pick = (frame["measure"] == measure) & (frame["sector"] == sector) & (frame["region_code"] == region_code) \
            & (frame["chain_id"] == chain_id)
        if since:
            pick &= frame["lday"] >= day_number(since)
        if until:
            pick &= frame["lday"] <= day_number(until)
        rows = frame[pick]
        served = suppress(rows, self.settings.min_firms, universe=frame[frame["measure"] == measure])
        zh, en = MEASURE_LABELS[measure]
        return {"measure": measure, "label_zh": zh, "label_en": en,
                "cell": {"sector": sector, "region_code": region_code, "chain_id": chain_id},
                "min_firms": self.settings.min_firms, "suppressed_days": int(len(rows) - len(served)),
                "rows": [_row(r) for r in served.itertuples(index=False)]}

    def period(self, measure: str, start: date, end: date, sector: str = ALL, region_code: str = ALL,
               chain_id: str = ALL) -> dict[str, Any]:
        """A period's index on daily averages (leap-day adjusted: a 29-day February against a 28-day
        one compares averages, not totals), and year-on-year against the same dates a year before.
        Served only when every day of both periods has at least `min_firms` firms."""
        check_measure(measure)
        if end < start:
            raise ValidationError("the period ends before it starts", field="end")
        frame = self._frame()
        rows = frame[(frame["measure"] == measure) & (frame["sector"] == sector) & (frame["region_code"] == region_code)
                     & (frame["chain_id"] == chain_id)]
        lo, hi = day_number(start), day_number(end)
        now = rows[rows["lday"].between(lo, hi)]
        ly_lo, ly_hi = day_number(same_day_last_year(start)), day_number(same_day_last_year(end))
        before = rows[rows["lday"].between(ly_lo, ly_hi)]
        base = rows[rows["lday"].between(*self._base_range(rows))]
        out: dict[str, Any] = {"measure": measure, "cell": {"sector": sector, "region_code": region_code,
                                                            "chain_id": chain_id},
                               "start": start.isoformat(), "end": end.isoformat(), "days_with_data": int(len(now)),
                               "min_firms": self.settings.min_firms}
        small = any(len(part) and int(part["firms"].min()) < self.settings.min_firms for part in (now, before, base))
        if now.empty or small:
            return out | {"index": None, "yoy_pct": None,
                          "withheld_zh": "无数据或企业数不足" if not now.empty else "无数据",
                          "withheld_en": "no data, or too few firms" if not now.empty else "no data"}
        index = period_index(now["value"], now["lday"], base["value"], base["lday"])
        yoy = (100.0 * (now["value"].mean() / before["value"].mean() - 1.0)
               if len(before) and before["value"].mean() > 0 else float("nan"))
        return out | {"index": _num(index), "yoy_pct": _num(yoy), "days_last_year": int(len(before))}

    def _base_range(self, rows: pd.DataFrame) -> tuple[int, int]:
        """The base period of a cell's rows: from `base_start`, or its first whole day (as compute_indices)."""
        whole = rows[rows["firms"] >= 0.5 * rows["firms"].max()] if len(rows) else rows
        lo = day_number(self.settings.base_start) if self.settings.base_start else \
            (int(whole["lday"].min()) if len(whole) else 0)
        return lo, lo + self.settings.base_days - 1

    def cells(self, measure: str = "energy", on: date | None = None) -> dict[str, Any]:
        """Every cell of one day that may be served (the latest day by default)."""
        check_measure(measure)
        frame = self._frame()
        frame = frame[frame["measure"] == measure]
        day = day_number(on) if on else int(frame["lday"].max())
        rows = frame[frame["lday"] == day]
        served = suppress(rows, self.settings.min_firms)  # a day's every cell: the parents are among them
        return {"measure": measure, "day": day_of(day).isoformat(), "min_firms": self.settings.min_firms,
                "suppressed_cells": int(len(rows) - len(served)),
                "rows": [_row(r) for r in served.sort_values(list(DIMENSIONS)).itertuples(index=False)]}

    def _firm_days(self, since: int, until: int) -> pd.DataFrame:
        con = duckdb.connect()
        try:
            return store.firm_frame(con, self.firm_dir, since, until).to_pandas()
        finally:
            con.close()

    def resumption(self, shock: date, sector: str = ALL, region_code: str = ALL, until: date | None = None) -> dict[str, Any]:
        """Share of a cell's firms resumed on each day from `shock` (daily kWh above the share of the
        firm's pre-shock daily average), and each firm's resumption day internally for the share."""
        s = day_number(shock)
        end = day_number(until) if until else 10**7
        firms, _ = store.load_firms(self.engine)
        per_day = self.firm_resumption(s, end)
        meta = firms.to_pandas().set_index("enterprise_id")
        per_day = per_day.join(meta, on="enterprise_id")
        if sector != ALL:
            per_day = per_day[per_day["sector"] == sector]
        if region_code != ALL:
            per_day = per_day[per_day["region_code"] == region_code]
        daily_share = per_day.groupby("lday").agg(firms=("resumed", "size"), resumed=("resumed", "sum"))
        daily_share = daily_share[daily_share["firms"] >= self.settings.min_firms]
        return {"shock": shock.isoformat(), "cell": {"sector": sector, "region_code": region_code},
                "rule": f"daily kWh > {self.settings.resumption_share:.0%} of the firm's average over the "
                        f"{self.settings.baseline_days} days before the shock",
                "min_firms": self.settings.min_firms,
                "rows": [{"day": day_of(int(d)).isoformat(), "firms": int(r.firms),
                          "resumed_share": round(float(r.resumed) / float(r.firms), 4)}
                         for d, r in daily_share.iterrows()]}

    def firm_resumption(self, shock_day: int, until_day: int) -> pd.DataFrame:
        """Per firm and day from the shock: resumed or not (internal: the API serves only shares)."""
        frame = self._firm_days(shock_day - self.settings.baseline_days, until_day)
        return resumption(frame[["enterprise_id", "lday", "energy_kwh"]].dropna(), shock_day, self.settings)

    def resumed_days(self, shock_day: int, until_day: int) -> pd.Series:
        """Per firm stopped by the shock: the day it resumed (internal)."""
        return resumed_day(self.firm_resumption(shock_day, until_day), shock_day)

    def relative(self, enterprise_id: int, on: date, *, recipient: str | None, purpose: str = "credit_assessment",
                 window: int = 7) -> dict[str, Any]:
        """The firm's energy activity over `window` days to `on` against its sector-and-region peers'
        (the sector's when the region has fewer than `min_firms` others), each against its base period. A lender (`recipient`) needs the firm's consent to
        telemetry:energy for `purpose`; the peers must alone reach `min_firms`."""
        if not 1 <= window <= 90:
            raise ValidationError("window must be between 1 and 90 days", field="window")
        end = day_number(on)
        if recipient is not None:
            if self.consent is None:
                raise Forbidden("no consent service: relative activity is served to the enterprise or the operator only")
            start = day_of(end - window + 1)
            decision = self.consent.check(recipient, enterprise_id, SCOPE, purpose, (start, on),
                                          detail="industry relative activity")
            if not decision.allowed:
                raise Forbidden(f"no consent from enterprise {enterprise_id} for {SCOPE} ({purpose}): {decision.reason}")
        firms, _ = store.load_firms(self.engine)
        meta = firms.to_pandas().set_index("enterprise_id")
        if enterprise_id not in meta.index:
            raise NotFound(f"no enterprise {enterprise_id}")
        sector, region = meta.loc[enterprise_id, "sector"], meta.loc[enterprise_id, "region_code"]
        # Peers: the firm's sector in its region, or the whole sector when the region has too few.
        peers = set(meta.index[(meta["sector"] == sector) & (meta["region_code"] == region)]) - {enterprise_id}
        if len(peers) < self.settings.min_firms:
            peers, region = set(meta.index[meta["sector"] == sector]) - {enterprise_id}, ALL
        value = relative_values(self._firm_days(-10**7, end), enterprise_id, peers, end, window, self.settings)
        out = {"enterprise_id": enterprise_id, "on": on.isoformat(), "window_days": window,
               "cell": {"sector": sector, "region_code": region}, "peers": value["peers"],
               "min_firms": self.settings.min_firms}
        if value["peers"] < self.settings.min_firms:
            return out | {"relative_activity": None, "withheld_zh": "同业企业数不足，不提供比较",
                          "withheld_en": "too few peers to compare without revealing one of them"}
        return out | {"firm_index": value["firm_index"], "peer_index": value["peer_index"],
                      "relative_activity": value["relative"]}


def relative_values(frame: pd.DataFrame, enterprise_id: int, peers: set[int], end: int, window: int,
                    settings: IndexSettings) -> dict[str, Any]:
    """Firm and peer energy indices over the window (each against its own first `base_days`), and their ratio."""
    frame = frame[frame["lday"] <= end].dropna(subset=["energy_kwh"])
    if frame.empty:
        return {"peers": 0, "firm_index": None, "peer_index": None, "relative": None}
    per_day = frame.groupby("lday")["enterprise_id"].nunique()
    whole = per_day[per_day >= 0.5 * per_day.max()].index  # days most firms reported (see compute_indices)
    base_lo = day_number(settings.base_start) if settings.base_start else int(whole.min())
    base = frame[frame["lday"].between(base_lo, base_lo + settings.base_days - 1)]
    recent = frame[frame["lday"] > end - window]

    def index(ids: set[int]) -> tuple[float, int]:
        b = base[base["enterprise_id"].isin(ids)]
        r = recent[recent["enterprise_id"].isin(ids)]
        both = set(b["enterprise_id"]) & set(r["enterprise_id"])
        if not both:
            return float("nan"), 0
        b_daily = b[b["enterprise_id"].isin(both)].groupby("lday")["energy_kwh"].sum().mean()
        r_daily = r[r["enterprise_id"].isin(both)].groupby("lday")["energy_kwh"].sum().mean()
        return (100.0 * r_daily / b_daily if b_daily > 0 else float("nan")), len(both)

    firm, _ = index({enterprise_id})
    peer, n = index(peers)
    rel = relative_activity(firm, peer)
    return {"peers": n, "firm_index": _num(firm), "peer_index": _num(peer), "relative": _num(rel)}


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _row(r: Any) -> dict[str, Any]:
    return {"day": day_of(int(r.lday)).isoformat(), "sector": r.sector, "region_code": r.region_code,
            "chain_id": r.chain_id, "firms": int(r.firms), "value": _num(r.value), "index": _num(r.index),
            "index_calendar_adjusted": _num(r.index_adj), "yoy_pct": _num(r.yoy_pct), "trend7": _num(r.trend7),
            "trend30": _num(r.trend30), "change7_pct": _num(r.change7_pct), "change30_pct": _num(r.change30_pct)}
