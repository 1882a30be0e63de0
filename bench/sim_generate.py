"""Benchmark: generate a synthetic economy; prints one JSON object.

    .venv/bin/python bench/sim_generate.py --enterprises 10000 --devices 100000 --days 90 --workers 2
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from iotfin.sim import SimConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here (default: a temp dir, removed)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="iotfin-sim-bench-"))
    started = time.perf_counter()
    manifest = generate(SimConfig(enterprises=args.enterprises, days=args.days, seed=args.seed, devices=args.devices),
                        out, workers=args.workers)
    elapsed = time.perf_counter() - started
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    rows = manifest["counts"]["telemetry_rows"]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "benchmark": "sim_generate",
        "enterprises": args.enterprises, "devices": args.devices, "days": args.days, "workers": args.workers,
        "seconds": round(elapsed, 1),
        "telemetry_rows": rows,
        "rows_per_second": round(rows / elapsed),
        "output_bytes": size,
        "bytes_per_row": round(size / rows, 2),
        "max_rss_mib_parent": round(own / 1024),
        "max_rss_mib_worker": round(children / 1024),
        "trade_documents": manifest["counts"]["trade_documents"],
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
    }))
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
