"""Benchmark: credit features on a demo workspace (batch, and the online path with its consent check).

    .venv/bin/iotfin demo --headless --json --workspace /tmp/iotfin-demo > /dev/null   # 300 enterprises, 180 days
    .venv/bin/python bench/features.py --workspace /tmp/iotfin-demo --requests 2000

Measures: (1) building the daily telemetry rollup from scratch (the one-off cost; later runs rebuild
only changed day partitions), (2) `compute_features` for every enterprise as of the last day for one
bank, three runs, (3) `features_for` for one enterprise at a time, `--requests` requests over random
enterprises and the four banks: consent check (grant query + decision + access-log append) and the
snapshot lookup, p50/p99, after one cold request that builds the as-of snapshot. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import time
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.consent.store import access_t
from iotfin.core.settings import Settings
from iotfin.risk.features import compute_features, features_for


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", type=Path, required=True, help="a workspace made by `iotfin demo`")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--reuse-rollup", action="store_true", help="keep the built rollup (skip measuring its build)")
    args = parser.parse_args()
    root = args.workspace
    ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{(root / 'iotfin.db').resolve()}",
                            telemetry_dir=root / "telemetry"))
    summary = json.loads((root / "sim" / "manifest.json").read_text())
    cfg = summary["config"]
    from datetime import date, timedelta

    as_of = date.fromisoformat(cfg["start_date"]) + timedelta(days=cfg["days"] - 1)
    points = sum(pq.ParquetFile(f).metadata.num_rows for f in ws.telemetry.files())

    if not args.reuse_rollup:
        shutil.rmtree(root / "features", ignore_errors=True)
    eng = ws.features
    started = time.perf_counter()
    eng.refresh_telemetry()
    rollup_s = time.perf_counter() - started

    batch = []
    for _ in range(3):
        started = time.perf_counter()
        table = compute_features(eng, as_of, "bank-a")
        batch.append(time.perf_counter() - started)

    ids = table["enterprise_id"].to_pylist()
    rnd = random.Random(3)
    eng.invalidate()
    started = time.perf_counter()
    features_for(eng, ids[0], as_of, "bank-a")
    cold_s = time.perf_counter() - started
    online = []
    for _ in range(args.requests):
        eid, bank = rnd.choice(ids), rnd.choice(("bank-a", "bank-b", "bank-c", "bank-d"))
        started = time.perf_counter()
        features_for(eng, eid, as_of, bank)
        online.append(time.perf_counter() - started)
    ws.consent.log.flush()
    with ws.engine.connect() as conn:
        log_rows = conn.execute(select(func.count()).select_from(access_t)).scalar_one()
    online.sort()
    print(json.dumps({
        "benchmark": "features", "enterprises": len(ids), "days": cfg["days"], "telemetry_points": points,
        "features": table.num_columns - 3, "as_of": as_of.isoformat(),
        "rollup_build_s": round(rollup_s, 2),
        "batch_compute_features_s": {"median": round(statistics.median(batch), 3), "runs": [round(b, 3) for b in batch]},
        "online_features_for": {"cold_first_request_s": round(cold_s, 3), "requests": args.requests,
                                "p50_ms": round(online[len(online) // 2] * 1000, 3),
                                "p99_ms": round(online[int(len(online) * 0.99) - 1] * 1000, 3)},
        "access_log_rows_total": log_rows,
        "targets": {"batch": "seconds", "online_p99_ms": 5},
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}, shared with other work",
    }))
    ws.close()


if __name__ == "__main__":
    main()
