"""Benchmark (issue 24): the industry indices' daily update, and a year recomputed; one JSON object.

    .venv/bin/python bench/industry_indices.py                       # 100,000 devices (the issue's size)
    .venv/bin/python bench/industry_indices.py --enterprises 1000 --devices 10000   # a quick look

Daily update: a simulated economy of `--devices` devices over two days; day 1's telemetry is
appended to a fresh workspace's store and the indices brought up to date; then day 2's telemetry
arrives and `IndustryService.update()` runs again — the timed figure: rollup of the changed UTC
partitions (a local day spans two), the new firm-days, and every cell's indices re-derived.

Year recomputed: 365 days of per-device daily rollups for the same fleet (the telemetry kernel's
`daily.refresh` files the indices read; synthetic values, the real file layout and sizes), then
`update_from(..., full=True)`: every firm-day and every index rebuilt. What this does not time is
re-reading a year of raw points (7 billion at this fleet size, which this box cannot hold); that cost
is the rollup's, shared with the risk features and measured in bench/features*.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from iotfin.analytics.service import IndustryService
from iotfin.analytics.store import METRICS, load_firms
from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.demo.loader import iter_readings, load_master_data
from iotfin.sim import SimConfig, SimDataset, generate
from iotfin.telemetry.daily import DAILY_SCHEMA

START = date(2026, 3, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--year-days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="iotfin-industry-bench-"))
    load_before = os.getloadavg()[0]

    t0 = time.perf_counter()
    generate(SimConfig(enterprises=args.enterprises, days=2, seed=24, devices=args.devices, start_date=START),
             root / "sim", workers=2)
    ds = SimDataset(root / "sim")
    simulate_s = time.perf_counter() - t0
    ws = Workspace(Settings(data_dir=root / "ws", database_url=f"sqlite:///{root / 'ws' / 'iotfin.db'}"))
    ws.initialise()
    load_master_data(ws, ds)
    days: dict[date, list[pa.Table]] = {}
    for _type, day, readings in iter_readings(ds):
        days.setdefault(day, []).append(readings)
    points = {d.isoformat(): sum(t.num_rows for t in ts) for d, ts in days.items()}
    first, second = sorted(days)
    for t in days[first]:
        ws.telemetry.append(t)
    service = IndustryService(ws.engine, ws.telemetry, ws.data_dir)
    initial = service.update()
    for t in days[second]:
        ws.telemetry.append(t)
    daily = service.update()
    # the same update again, from an unchanged store: only the cells are re-derived
    again = [service.update()["timings_s"]["total"] for _ in range(args.runs)]

    # a year of device rollups for this fleet
    _, devices = load_firms(ws.engine)
    rollups = _year_of_rollups(ds, root / "year-rollup", args.year_days)
    year = IndustryService(ws.engine, ws.telemetry, root / "year")
    runs = []
    for _ in range(max(1, min(args.runs, 2))):
        started = time.perf_counter()
        result = year.update_from(rollups, full=True)
        runs.append(time.perf_counter() - started)
    ws.close()
    print(json.dumps({
        "benchmark": "industry_indices", "enterprises": args.enterprises, "devices": int(devices.num_rows),
        "points_per_day": points, "simulate_s": round(simulate_s, 1),
        "daily_update_s": daily["timings_s"]["total"], "daily_update_parts_s": daily["timings_s"],
        "daily_days_computed": daily["days_computed"], "initial_update_s": initial["timings_s"]["total"],
        "unchanged_store_update_s": {"median": round(statistics.median(again), 2), "runs": again},
        "year": {"days": args.year_days, "rollup_rows": int(sum(pq.ParquetFile(f).metadata.num_rows for f in rollups)),
                 "recompute_s": {"median": round(statistics.median(runs), 1), "runs": [round(r, 1) for r in runs]},
                 "index_rows": result["index_rows"], "firm_days": result["days_computed"]},
        "targets": {"daily_update_s": 30, "year_recompute_s": 300},
        "peer_ratio": {"daily_over_target": round(daily["timings_s"]["total"] / 30, 3),
                       "year_over_target": round(statistics.median(runs) / 300, 3)},
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}, shared with other work (load average {load_before:.1f} before, "
                   f"{os.getloadavg()[0]:.1f} after)",
    }))


def _year_of_rollups(ds: SimDataset, folder: Path, n_days: int) -> list[Path]:
    """Per-UTC-day rollup files for every device of the fleet with an index metric, n_days of them:
    the layout of `iotfin.telemetry.daily` with plausible values (a weekly pattern and noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    devices = ds.table("devices")
    kinds = {"electricity_meter": "power_kw", "machine_sensor": "runtime_min", "gps_tracker": "speed_kmh",
             "load_cell": "weight_t"}
    ids = np.array(devices["device_id"].to_pylist(), np.int64)
    types = devices["device_type"].to_pylist()
    metric = np.array([kinds.get(t, "") for t in types], dtype=object)
    keep = metric != ""
    ids, metric = ids[keep], metric[keep]
    assert set(metric) <= set(METRICS)
    rng = np.random.default_rng(24)
    level = rng.lognormal(3, 0.5, ids.size)
    out = []
    start = (date(2025, 1, 1) - date(1970, 1, 1)).days
    for i in range(n_days):
        lday = start + i
        # a UTC partition holds the end of local day lday (16:00-24:00 UTC is the next local day's start)
        frames = []
        for d, share in ((lday, 2 / 3), (lday + 1, 1 / 3)):
            weekday = 0.7 if (d + 3) % 7 >= 5 else 1.0
            n = np.full(ids.size, int(96 * share))
            total = level * weekday * n * rng.lognormal(0, 0.1, ids.size)
            frames.append(pa.table({"device_id": ids, "metric": pa.array(metric.tolist(), pa.string()),
                                    "lday": np.full(ids.size, d, np.int32), "n": n.astype(np.int64), "total": total,
                                    "vmax": total / n, "last_ts": np.full(ids.size, d * 86_400_000, np.int64),
                                    "last_v": total / n}, schema=DAILY_SCHEMA))
        path = folder / f"day={(date(1970, 1, 1) + timedelta(days=lday)).isoformat()}.parquet"
        pq.write_table(pa.concat_tables(frames), path, compression="zstd")
        out.append(path)
    return out


if __name__ == "__main__":
    main()
