"""Registry at scale: bytes per device of the in-memory registry and per-device state, and lookup
costs, at N devices (default 1 M), extrapolated to the reference fleet of 11 M.

What a serving process holds per device slot: the registry (profile index + status), the provenance
guard (policy byte + counter high-water mark), the state tracker (last activity, sessions, online).
Memory is measured with tracemalloc around building them, not computed from dtypes alone. The
credential index is the system of record's unique index on token SHA-256 (one B-tree lookup; the
serving process caches the tokens in use in a bounded LRU): its on-disk size per device is measured
on SQLite with the migration's own table.

    python bench/device_registry.py [--devices 1000000] [--skip-disk]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import sqlite3
import tempfile
import time
import timeit
import tracemalloc
from collections import OrderedDict
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine

from iotfin.devices.events import DeviceEventLog
from iotfin.devices.guard import ProvenanceGuard
from iotfin.devices.model import STANDARD_PROFILES
from iotfin.devices.registry import DeviceRegistry
from iotfin.devices.state import DeviceStateTracker

FLEET = 11_000_000


def build(n: int) -> tuple[dict[str, int], DeviceRegistry, ProvenanceGuard, DeviceStateTracker]:
    engine = create_engine("sqlite://")  # never touched: the structures are built in memory
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    registry = DeviceRegistry(STANDARD_PROFILES)
    rng = np.random.default_rng(7)
    names = [p.name for p in STANDARD_PROFILES]
    chunk = 100_000
    for start in range(0, n, chunk):
        ids = np.arange(start, min(start + chunk, n), dtype=np.int64)
        registry.register(ids, [names[i] for i in rng.integers(0, len(names), ids.size)], ["active"] * ids.size)
    del ids
    gc.collect()
    after_registry = tracemalloc.get_traced_memory()[0]
    guard = ProvenanceGuard(engine, registry)
    guard.reserve(n)
    after_guard = tracemalloc.get_traced_memory()[0]
    state = DeviceStateTracker(engine, registry, DeviceEventLog(engine))
    state.reserve(n)
    after_state = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return ({"registry": after_registry - base, "provenance": after_guard - after_registry,
             "state": after_state - after_guard}, registry, guard, state)


def token_cache_bytes(entries: int = 100_000) -> int:
    """The bounded LRU of tokens in use (DeviceService default size), full."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    cache: OrderedDict[str, tuple[int, float]] = OrderedDict()
    for i in range(entries):
        cache[hashlib.sha256(str(i).encode()).hexdigest()] = (i, time.monotonic())
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del cache
    return used


def credential_index_on_disk(n: int) -> dict[str, float]:
    """SQLite bytes per device of device_credentials (table + unique indexes), as the migration makes it."""
    from iotfin.db import migrate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cred.db"
        engine = create_engine(f"sqlite:///{path}")
        migrate.upgrade(engine, "0004")
        engine.dispose()
        con = sqlite3.connect(path)
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        size_before = path.stat().st_size
        rows = ((i + 1, i + 1, "access_token", hashlib.sha256(os.urandom(15)).hexdigest(), "active", "2026-12-01 00:00:00")
                for i in range(n))
        con.executemany("INSERT INTO device_credentials (id, device_id, kind, token_sha256, status, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.commit()
        con.execute("VACUUM")
        con.close()
        total = path.stat().st_size - size_before
        probe = sqlite3.connect(path)
        digest = probe.execute("SELECT token_sha256 FROM device_credentials WHERE id = ?", (n // 2,)).fetchone()[0]
        lookups = 2000
        seconds = timeit.timeit(lambda: probe.execute(
            "SELECT device_id FROM device_credentials WHERE token_sha256 = ? AND status = 'active'", (digest,)).fetchone(),
            number=lookups)
        plan = " ".join(str(r[-1]) for r in probe.execute(
            "EXPLAIN QUERY PLAN SELECT device_id FROM device_credentials WHERE token_sha256 = ?", (digest,)))
        probe.close()
    return {"bytes_per_device": round(total / n, 1), "uncached_lookup_us": round(seconds / lookups * 1e6, 2),
            "plan": plan}


def lookup_costs(registry: DeviceRegistry, guard: ProvenanceGuard, state: DeviceStateTracker, n: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    one = np.array([n - 1], np.int64)
    single = timeit.timeit(lambda: registry.lookup(one), number=20_000) / 20_000
    batch = rng.integers(0, n, 100_000)
    vector = min(timeit.repeat(lambda: registry.lookup(batch), number=1, repeat=5))
    guard._policy[:] = 1  # every device loaded, none keyed: the common case on the ingest path
    data = {"t": 1.0}
    check = timeit.timeit(lambda: guard.check(n - 1, data), number=50_000) / 50_000
    activity = timeit.timeit(lambda: state.activity(n - 1), number=50_000) / 50_000
    state._online[:] = 1
    state._last[:] = int(time.time())
    sweep = min(timeit.repeat(lambda: state.sweep(), number=1, repeat=3))
    return {"registry_lookup_one_us": round(single * 1e6, 2),
            "registry_lookup_vectorised_ns_per_id": round(vector / batch.size * 1e9, 2),
            "guard_check_unsigned_us": round(check * 1e6, 2), "state_activity_us": round(activity * 1e6, 2),
            "sweep_all_online_ms": round(sweep * 1e3, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--skip-disk", action="store_true")
    args = parser.parse_args()
    n = args.devices
    started = time.perf_counter()
    measured, registry, guard, state = build(n)
    small_registry = DeviceRegistry(STANDARD_PROFILES)
    small_registry.register(np.arange(1000), ["generic"] * 1000, ["active"] * 1000)
    small_one = np.array([999], np.int64)
    small_lookup_us = timeit.timeit(lambda: small_registry.lookup(small_one), number=20_000) / 20_000 * 1e6
    costs = lookup_costs(registry, guard, state, n)
    per_device = {k: round(v / n, 2) for k, v in measured.items()}
    total_per_device = round(sum(measured.values()) / n, 2)
    cache = token_cache_bytes()
    result = {
        "benchmark": "device_registry",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "workload": {"devices": n, "profiles": len(STANDARD_PROFILES)},
        "bytes_per_device": per_device | {"total_in_memory": total_per_device},
        "nbytes_check": {"registry": registry.nbytes, "provenance": guard.nbytes, "state": state.nbytes},
        "token_cache_bytes_at_bound_100k": cache,
        "extrapolated_11M": {"in_memory_MB": round(total_per_device * FLEET / 1e6, 1),
                             "plus_token_cache_MB": round((total_per_device * FLEET + cache) / 1e6, 1)},
        "lookups": costs | {"registry_lookup_one_us_at_1k_devices": round(small_lookup_us, 2)},
    }
    if not args.skip_disk:
        disk = credential_index_on_disk(n)
        result["credential_index_sqlite"] = disk
        result["extrapolated_11M"]["credentials_on_disk_MB"] = round(disk["bytes_per_device"] * FLEET / 1e6, 1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    import json

    print(json.dumps(result))


if __name__ == "__main__":
    main()
