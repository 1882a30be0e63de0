"""Benchmark: ingest a simulated economy's telemetry through IngestService (validate + durable store).

    .venv/bin/python bench/ingest_telemetry.py --enterprises 300 --days 30

Prints one JSON object: data points per second over the whole load (reading the simulator's wide
files, turning them long, validating, sorting, writing zstd Parquet with fsync), and bytes per point.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.demo.loader import load_master_data, load_telemetry
from iotfin.sim import SimConfig, SimDataset, generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="iotfin-ingest-bench-"))
    try:
        generate(SimConfig(enterprises=args.enterprises, days=args.days, seed=args.seed), root / "sim", workers=2)
        ws = Workspace(Settings(data_dir=root / "ws", database_url=f"sqlite:///{root / 'ws.db'}"))
        ws.initialise()
        ds = SimDataset(root / "sim")
        load_master_data(ws, ds)
        started = time.perf_counter()
        tally, offered = load_telemetry(ws, ds, now_ms=None)
        elapsed = time.perf_counter() - started
        stats = ws.telemetry.stats()
        print(json.dumps({
            "benchmark": "ingest_telemetry",
            "enterprises": args.enterprises, "days": args.days,
            "points": offered, "accepted": tally.accepted, "rejected": tally.rejected,
            "seconds": round(elapsed, 2),
            "points_per_second": round(offered / elapsed),
            "bytes_per_point": stats["bytes_per_point"],
            "registry_bytes_per_device": round(ws.registry.nbytes / max(len(ws.registry), 1), 2),
            "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        }))
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
