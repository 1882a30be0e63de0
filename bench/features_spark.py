"""Benchmark (issue 21): the batch feature table on DuckDB and on Spark local[N], side by side in one
run, over the same workspace; prints one JSON object.

    .venv/bin/python bench/features_spark.py --enterprises 10000 --devices 40000 --days 365   # the issue's size
    .venv/bin/python bench/features_spark.py --enterprises 300 --devices 1200 --days 60       # what fits a shared box

Builds a synthetic economy (iotfin.sim, as bench/sim_generate.py), loads it into a fresh SQLite
workspace (as the demo does), builds the daily telemetry rollup once (both engines read it; timed
apart), then runs the unscoped feature table as of the last day `--runs` times on each engine:
DuckDB in-process, and Spark (session start timed apart; its first run includes JIT / code-generation
warm-up, reported separately; the median is of the later runs). Checks the two tables hold the same
enterprises. `--workspace DIR` keeps (or reuses) the built workspace.
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

import pyarrow.parquet as pq

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.demo.loader import load_master_data, load_telemetry
from iotfin.risk.features import load_commodity_prices
from iotfin.risk.spark import spark_session, spark_unscoped
from iotfin.sim import SimConfig, SimDataset, generate

START = date(2026, 1, 1)


def _workspace(root: Path) -> Workspace:
    return Workspace(Settings(data_dir=root / "ws", database_url=f"sqlite:///{root / 'ws' / 'iotfin.db'}"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=300)
    parser.add_argument("--devices", type=int, default=1200)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workspace", type=Path, default=None, help="build here, or reuse what was built here")
    args = parser.parse_args()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="iotfin-spark-bench-"))
    build_s = None
    if not (root / "ws" / "iotfin.db").exists():
        started = time.perf_counter()
        generate(SimConfig(enterprises=args.enterprises, days=args.days, seed=21, devices=args.devices,
                           start_date=START), root / "sim", workers=2)
        ds = SimDataset(root / "sim")
        ws = _workspace(root)
        ws.initialise()
        load_master_data(ws, ds)
        load_telemetry(ws, ds, now_ms=int(time.time() * 1000))
        load_commodity_prices(ws.features, ds.table("commodity_prices"))
        ws.close()
        build_s = time.perf_counter() - started
    manifest = json.loads((root / "sim" / "manifest.json").read_text())
    cfg = manifest["config"]
    as_of = date.fromisoformat(cfg["start_date"]) + timedelta(days=cfg["days"] - 1)
    ws = _workspace(root)
    points = sum(pq.ParquetFile(f).metadata.num_rows for f in ws.telemetry.files())
    started = time.perf_counter()
    ws.features.refresh_telemetry()
    rollup_s = time.perf_counter() - started

    duck = []
    for _ in range(args.runs):
        started = time.perf_counter()
        table, _ = ws.features.unscoped(as_of)
        duck.append(time.perf_counter() - started)

    started = time.perf_counter()
    spark = spark_session(args.master)
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - started
    runs = []
    for _ in range(args.runs + 1):
        started = time.perf_counter()
        other, _ = spark_unscoped(ws.features, spark, as_of, export_dir=root / "export")
        runs.append(time.perf_counter() - started)
    spark.stop()
    ws.close()
    assert other["enterprise_id"].to_pylist() == table["enterprise_id"].to_pylist()
    duck_med, spark_med = statistics.median(duck), statistics.median(runs[1:])
    print(json.dumps({
        "benchmark": "features_spark", "enterprises": table.num_rows, "devices": cfg["devices"], "days": cfg["days"],
        "telemetry_points": points, "features": table.num_columns - 1, "as_of": as_of.isoformat(),
        "economy_build_s": None if build_s is None else round(build_s, 1), "rollup_build_s": round(rollup_s, 2),
        "duckdb_s": {"median": round(duck_med, 3), "runs": [round(x, 3) for x in duck]},
        "spark": {"master": args.master, "session_start_s": round(start_s, 2), "first_run_s": round(runs[0], 2),
                  "median_s": round(spark_med, 3), "runs": [round(x, 3) for x in runs[1:]]},
        "ratio_spark_over_duckdb": round(spark_med / duck_med, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}, shared with other work (load average {os.getloadavg()[0]:.1f})",
    }))


if __name__ == "__main__":
    main()
