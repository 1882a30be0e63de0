"""Benchmark: reading committed -> alert raised, while ingesting at full speed with the monitor subscribed.

    .venv/bin/python bench/monitor_latency.py --enterprises 300 --days 10 --batch 250000

Feeds a simulated economy's telemetry through `IngestService` (validate, durable zstd Parquet,
ledger anchoring) in batches of `--batch` points, as fast as it goes, twice: once without the monitor
(the peer) and once with it subscribed. In the second run one door seal per batch (a different
enterprise each time) reads "broken" in its newest reading, and the time from the batch's durable
append returning to that alert being recorded in the system of record is the latency. Also prints
the signal state's bytes per device, measured on a synthetic fleet of `--fleet` devices.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotfin.core.settings import Settings
from iotfin.loader import iter_readings, load_master_data
from iotfin.monitor.model import DEVICE_TYPES, DeviceMeta
from iotfin.monitor.service import MonitorService
from iotfin.monitor.signals import SignalEngine
from iotfin.monitor.store import AlertStore, load_device_meta
from iotfin.sim import SimConfig, SimDataset, generate
from iotfin.workspace import Workspace


def batches(ds: SimDataset, size: int) -> list[pa.Table]:
    out, pending, rows = [], [], 0
    for _, _, table in iter_readings(ds):
        pending.append(table)
        rows += table.num_rows
        while rows >= size:
            merged = pa.concat_tables(pending).combine_chunks()
            out.append(merged.slice(0, size))
            pending, rows = [merged.slice(size)], rows - size
    if rows:
        out.append(pa.concat_tables(pending))
    return out


def run(root: Path, ds: SimDataset, feed: list[pa.Table], with_monitor: bool) -> dict[str, Any]:
    ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{root / 'ws.db'}"))
    ws.initialise()
    load_master_data(ws, ds)
    commits: list[float] = []
    append = ws.telemetry.append

    def timed_append(readings: pa.Table) -> Any:  # the moment a batch is durable
        result = append(readings)
        commits.append(time.perf_counter())
        return result

    ws.telemetry.append = timed_append  # type: ignore[method-assign]
    monitor = None
    latencies: list[float] = []
    if with_monitor:
        meta, names = load_device_meta(ws.engine)
        store = AlertStore(ws.engine, "bench")
        monitor = MonitorService(meta, store=store, enterprise_names=names)
        ws.ingest.on_commit.append(monitor.on_commit)
        seals = np.flatnonzero(meta.type_code == DEVICE_TYPES.index("door_seal"))
        by_enterprise = {int(meta.enterprise[d]): int(d) for d in seals}
        victims = list(by_enterprise.values())
    points = 0
    started = time.perf_counter()
    for i, batch in enumerate(feed):
        target = None
        if monitor is not None and i < len(victims):
            target = victims[i]
            batch = _break_seal(batch, target)
        before = len(monitor.alerts) if monitor is not None else 0
        now = int(pc.max(batch["ts"]).as_py()) + 60_000
        points += ws.ingest.ingest(batch, now=now).accepted
        if monitor is not None and target is not None:
            new = [a for a in list(monitor.alerts.values())[before:] if target in a.devices and
                   a.incident_type == "device_tamper"]
            if new:
                latencies.append(new[0].recorded_perf - commits[-1])
    elapsed = time.perf_counter() - started
    out: dict[str, Any] = {"points": points, "seconds": round(elapsed, 2), "points_per_s": round(points / elapsed)}
    if monitor is not None:
        lat = np.array(latencies)
        out |= {"alerts_measured": int(lat.size), "latency_p50_s": round(float(np.median(lat)), 4),
                "latency_p99_s": round(float(np.percentile(lat, 99)), 4), "latency_max_s": round(float(lat.max()), 4),
                "signal_events": monitor.events_seen, "rule_evaluations": monitor.rule_evaluations,
                "state_bytes_per_device": monitor.signals.state_bytes()["per_device"]}
    ws.close()
    return out


def _break_seal(batch: pa.Table, device: int) -> pa.Table:
    """The device's seal reads broken at the batch's newest time (appended as one extra reading)."""
    ts = int(pc.max(batch["ts"]).as_py()) + 1
    extra = pa.table({"device_id": [device], "key": ["seal_intact"], "ts": [ts], "value": [0.0]}, schema=batch.schema)
    return pa.concat_tables([batch, extra])


def state_per_device(fleet: int) -> dict[str, Any]:
    """Signal state for a synthetic fleet with the simulator's device-type mix."""
    rng = np.random.default_rng(1)
    mix = np.array([0.14, 0.25, 0.12, 0.07, 0.1, 0.18, 0.03, 0.11])
    types = rng.choice(len(DEVICE_TYPES), fleet, p=mix / mix.sum())
    ids = np.arange(1, fleet + 1)
    meta = DeviceMeta.build(ids, (ids // 10).astype(np.int32), [DEVICE_TYPES[t] for t in types])
    engine = SignalEngine(meta)
    b = engine.state_bytes()
    meta_bytes = sum(v.nbytes for v in vars(meta).values() if isinstance(v, np.ndarray))
    return {"fleet": fleet, "state_bytes_per_device": b["per_device"], "metadata_bytes_per_device":
            round(meta_bytes / meta.size, 1), "per_kind": b["per_kind"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=300)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=250_000)
    parser.add_argument("--fleet", type=int, default=1_000_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="iotfin-monitor-bench-"))
    try:
        generate(SimConfig(enterprises=args.enterprises, days=args.days, seed=args.seed), root / "sim", workers=2)
        ds = SimDataset(root / "sim")
        feed = batches(ds, args.batch)
        peer = run(root / "peer", ds, feed, with_monitor=False)
        mine = run(root / "monitor", ds, feed, with_monitor=True)
        print(json.dumps({
            "benchmark": "monitor_latency",
            "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "workload": {"enterprises": args.enterprises, "days": args.days, "devices": ds.manifest["counts"]["devices"],
                         "batch_points": args.batch, "batches": len(feed)},
            "ingest_only": peer,
            "ingest_with_monitor": mine,
            "throughput_ratio_with_monitor": round(mine["points_per_s"] / peer["points_per_s"], 3),
            "state": state_per_device(args.fleet),
        }, ensure_ascii=False))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
