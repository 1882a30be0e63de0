"""Benchmark: reading committed -> alert raised, while ingesting at full speed with the monitor subscribed.

    .venv/bin/python bench/monitor_latency.py --enterprises 300 --days 10 --batch 250000

Feeds a simulated economy's telemetry through `IngestService` (validate, durable zstd Parquet,
ledger anchoring) in batches of `--batch` points, as fast as it goes, twice: once without the monitor
(the peer) and once with it subscribed. In the second run one door seal per batch (a different
enterprise each time) reads "broken" in its newest reading, and the time from the batch's durable
append returning to that alert being recorded in the system of record is the latency. Also prints
the signal state's bytes per device, measured on a synthetic fleet of `--fleet` devices.

Then the bulk case (the demo's history import): the same telemetry in `--bulk-batch` point batches
(the loader's 2 M), once without the monitor and once with the demo's subscriber
(`attach_monitor`: each multi-day batch replayed in 12-hour slices); the monitor's share is the
CPU time spent inside the subscriber. Each run records wall time, process CPU time (user+sys) and
the load average, so a re-run on a quiet machine can be judged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.demo.loader import iter_readings, load_master_data
from iotfin.monitor.model import DEVICE_TYPES, DeviceMeta
from iotfin.monitor.service import MonitorService
from iotfin.monitor.signals import SignalEngine
from iotfin.monitor.store import AlertStore, load_device_meta
from iotfin.sim import SimConfig, SimDataset, generate


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


def _workspace(root: Path, ds: SimDataset) -> Workspace:
    ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{root / 'ws.db'}"))
    ws.initialise()
    load_master_data(ws, ds)
    return ws


class _Timed:
    """Wraps an ingest subscriber: wall and CPU seconds spent inside it (the ingest thread's own)."""

    def __init__(self, fn: Any):
        self.fn, self.wall, self.cpu = fn, 0.0, 0.0

    def __call__(self, stored: pa.Table) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return self.fn(stored)
        finally:
            self.wall += time.perf_counter() - w
            self.cpu += time.thread_time() - c


def _figures(points: int, wall: float, cpu: float, load: tuple[float, float]) -> dict[str, Any]:
    return {"points": points, "seconds": round(wall, 2), "points_per_s": round(points / wall),
            "cpu_s": round(cpu, 2), "points_per_cpu_s": round(points / max(cpu, 1e-9)),
            "loadavg_1m_start_end": [round(load[0], 2), round(load[1], 2)]}


def run(root: Path, ds: SimDataset, feed: list[pa.Table], with_monitor: bool) -> dict[str, Any]:
    ws = _workspace(root, ds)
    commits: list[float] = []
    append = ws.telemetry.append

    def timed_append(readings: pa.Table) -> Any:  # the moment a batch is durable
        result = append(readings)
        commits.append(time.perf_counter())
        return result

    ws.telemetry.append = timed_append  # type: ignore[method-assign]
    monitor = None
    hook = None
    latencies: list[float] = []
    if with_monitor:
        meta, names = load_device_meta(ws.engine)
        store = AlertStore(ws.engine, "bench")
        monitor = MonitorService(meta, store=store, enterprise_names=names)
        hook = _Timed(monitor.on_commit)
        ws.ingest.on_commit.append(hook)
        seals = np.flatnonzero(meta.type_code == DEVICE_TYPES.index("door_seal"))
        by_enterprise = {int(meta.enterprise[d]): int(d) for d in seals}
        victims = list(by_enterprise.values())
    points = 0
    load0, cpu0 = os.getloadavg()[0], time.process_time()
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
    out = _figures(points, elapsed, time.process_time() - cpu0, (load0, os.getloadavg()[0]))
    if monitor is not None and hook is not None:
        lat = np.array(latencies)
        out |= {"alerts_measured": int(lat.size), "latency_p50_s": round(float(np.median(lat)), 4),
                "latency_p99_s": round(float(np.percentile(lat, 99)), 4), "latency_max_s": round(float(lat.max()), 4),
                "monitor_wall_s": round(hook.wall, 2), "monitor_cpu_s": round(hook.cpu, 2),
                "signal_events": monitor.events_seen, "rule_evaluations": monitor.rule_evaluations,
                "state_bytes_per_device": monitor.signals.state_bytes()["per_device"]}
    ws.close()
    return out


def run_bulk(root: Path, ds: SimDataset, feed: list[pa.Table], with_monitor: bool) -> dict[str, Any]:
    """The demo's history import: big multi-day batches, the demo's bulk subscriber."""
    from iotfin.demo.monitor import attach_monitor

    ws = _workspace(root, ds)
    hook = None
    if with_monitor:
        monitor = attach_monitor(ws)
        hook = _Timed(ws.ingest.on_commit[-1])  # the subscriber attach_monitor just added
        ws.ingest.on_commit[-1] = hook
    points = 0
    load0, cpu0 = os.getloadavg()[0], time.process_time()
    started = time.perf_counter()
    for batch in feed:
        points += ws.ingest.ingest(batch, now=int(pc.max(batch["ts"]).as_py()) + 60_000).accepted
    out = _figures(points, time.perf_counter() - started, time.process_time() - cpu0, (load0, os.getloadavg()[0]))
    if hook is not None:
        out |= {"monitor_wall_s": round(hook.wall, 2), "monitor_cpu_s": round(hook.cpu, 2),
                "monitor_share_of_cpu": round(hook.cpu / max(out["cpu_s"], 1e-9), 3),
                "alerts": len(monitor.alerts), "signal_events": monitor.events_seen}
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
    parser.add_argument("--bulk-batch", type=int, default=2_000_000, help="0: skip the bulk case")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="iotfin-monitor-bench-"))
    try:
        generate(SimConfig(enterprises=args.enterprises, days=args.days, seed=args.seed), root / "sim", workers=2)
        ds = SimDataset(root / "sim")
        feed = batches(ds, args.batch)
        peer = run(root / "peer", ds, feed, with_monitor=False)
        mine = run(root / "monitor", ds, feed, with_monitor=True)
        bulk: dict[str, Any] = {}
        if args.bulk_batch:
            big = batches(ds, args.bulk_batch)
            bulk["ingest_only"] = run_bulk(root / "bulk-peer", ds, big, with_monitor=False)
            bulk["ingest_with_monitor"] = run_bulk(root / "bulk-monitor", ds, big, with_monitor=True)
            bulk["cpu_ratio_with_monitor"] = round(bulk["ingest_with_monitor"]["cpu_s"] / bulk["ingest_only"]["cpu_s"], 3)
            bulk["batch_points"], bulk["batches"] = args.bulk_batch, len(big)
        print(json.dumps({
            "benchmark": "monitor_latency",
            "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "workload": {"enterprises": args.enterprises, "days": args.days, "devices": ds.manifest["counts"]["devices"],
                         "batch_points": args.batch, "batches": len(feed)},
            "ingest_only": peer,
            "ingest_with_monitor": mine,
            "throughput_ratio_with_monitor": round(mine["points_per_s"] / peer["points_per_s"], 3),
            "cpu_ratio_with_monitor": round(mine["cpu_s"] / peer["cpu_s"], 3),
            "bulk": bulk,
            "state": state_per_device(args.fleet),
        }, ensure_ascii=False))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
