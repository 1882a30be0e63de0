"""Daily telemetry aggregates per device, metric and local business day: the telemetry input of the
risk features' SQL, and the schema the monitor hands the same SQL. In the telemetry kernel because
both read it and it knows nothing but the store. Materialised in a folder the caller names (with the
metrics it needs) and rebuilt per UTC day partition only when that partition's files change, so
features for many as-of dates (and the online path) read a table of one row per device-metric-day
instead of the raw points.

A (device, metric, ts) reading always lands in one UTC day partition, so the store's
first-accepted-wins deduplication is exact within a partition. Ingest refuses duplicates within a
batch, so a partition whose files hold disjoint sets of devices has none to remove; only a
partition where two files share a device is sorted and deduplicated first.

The aggregation is a segmented reduction in numpy rather than a GROUP BY: every store file is sorted
by (device, ts, key), so once one metric's rows are picked out, each (device, local day) is a
contiguous run and count, sum, maximum and last value are `reduceat`s over run boundaries — no
hashing. On the demo's 69 M points that is several times faster than DuckDB's hash aggregate over
the same files (see docs/benchmarks.md), and each sum runs in timestamp order, so a rebuilt
partition is bit-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotfin.core.time import MS_PER_DAY
from iotfin.telemetry.store import TelemetryStore

# Asia/Shanghai has kept UTC+8 without daylight saving since 1991: a local day is (ts + 8 h) // 1 day.
LOCAL_OFFSET_MS = 8 * 3_600_000
DAILY_SCHEMA = pa.schema([
    ("device_id", pa.int64()), ("metric", pa.string()), ("lday", pa.int32()), ("n", pa.int64()),
    ("total", pa.float64()), ("vmax", pa.float64()), ("last_ts", pa.int64()), ("last_v", pa.float64()),
])
_FORMAT = "daily-v3"
_COLUMNS = ["device_id", "key", "ts", "value", "value_e6"]


def _fingerprint(files: list[Path], metrics: tuple[str, ...]) -> str:
    # the metrics too: a folder rebuilt for other metrics is not up to date
    h = hashlib.sha256(f"{_FORMAT}:{','.join(metrics)}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read(path: Path, seq: bool = False, metrics: tuple[str, ...] | None = None) -> pa.Table:
    # `metrics`: only those keys' rows, so the sort-and-deduplicate path sorts only what is aggregated
    # (deduplication is per (device, key, ts): leaving other keys out changes nothing for these)
    table = pq.read_table(path, columns=_COLUMNS + (["seq"] if seq else []), read_dictionary=["key"],
                          filters=None if metrics is None else [("key", "in", list(metrics))])
    return table.unify_dictionaries().combine_chunks()


def _first_accepted(tables: list[pa.Table]) -> pa.Table:
    """Several files sharing devices: one table sorted by (device, ts, key) with the first accepted
    value of each (device, key, ts) — the store's read rule."""
    table = pa.concat_tables([t.set_column(1, "key", t["key"].cast(pa.string())) for t in tables]).combine_chunks()
    table = table.sort_by([("device_id", "ascending"), ("ts", "ascending"), ("key", "ascending"), ("seq", "ascending")])
    d, t, k = (table[c].to_numpy(zero_copy_only=False) for c in ("device_id", "ts", "key"))
    first = np.ones(table.num_rows, dtype=bool)
    first[1:] = (d[1:] != d[:-1]) | (t[1:] != t[:-1]) | (k[1:] != k[:-1])
    table = table.filter(pa.array(first))
    return table.set_column(1, "key", pc.dictionary_encode(table["key"])).combine_chunks()


def _aggregate(table: pa.Table, metrics: Collection[str]) -> pa.Table:
    """Daily aggregates of `metrics` in one table sorted by (device, ts, key)."""
    keys = table["key"].chunk(0) if table["key"].num_chunks else pa.array([], pa.dictionary(pa.int32(), pa.string()))
    names = keys.dictionary.to_pylist() if table.num_rows else []
    codes = keys.indices.to_numpy(zero_copy_only=False)
    device = table["device_id"].to_numpy()
    ts = table["ts"].to_numpy()
    stored = table["value"].to_numpy(zero_copy_only=False)
    scaled = table["value_e6"].to_numpy(zero_copy_only=False)
    parts = []
    for code, name in enumerate(names):
        if name not in metrics:
            continue
        pick = np.flatnonzero(codes == code)
        if pick.size == 0:
            continue
        d, t = device[pick], ts[pick]
        # The store's decoding (iotfin.telemetry.store.decode_values), for the picked rows only.
        v = np.where(np.isnan(stored[pick]), scaled[pick] / 1_000_000.0, stored[pick])
        lday = (t + LOCAL_OFFSET_MS) // MS_PER_DAY
        starts = np.flatnonzero(np.r_[True, (d[1:] != d[:-1]) | (lday[1:] != lday[:-1])])
        ends = np.r_[starts[1:], d.size] - 1
        parts.append(pa.table({
            "device_id": d[starts], "metric": pa.array([name] * starts.size, pa.string()),
            "lday": lday[starts].astype(np.int32), "n": (ends - starts + 1).astype(np.int64),
            "total": np.add.reduceat(v, starts), "vmax": np.maximum.reduceat(v, starts),
            "last_ts": t[ends], "last_v": v[ends]}, schema=DAILY_SCHEMA))
    return pa.concat_tables(parts) if parts else DAILY_SCHEMA.empty_table()


def _share_devices(tables: list[pa.Table]) -> bool:
    seen: pa.Array | None = None
    for t in tables:
        devices = pc.unique(t["device_id"])
        if seen is not None and pc.any(pc.is_in(devices, value_set=seen)).as_py():
            return True
        seen = devices if seen is None else pa.concat_arrays([seen, devices])
    return False


def _build(files: list[Path], target: Path, fp: str, metrics: tuple[str, ...]) -> None:
    tables = [_read(f, metrics=metrics) for f in files]
    if len(tables) > 1 and _share_devices(tables):
        tables = [_first_accepted([_read(f, seq=True, metrics=metrics) for f in files])]
    # Files with disjoint devices: their aggregates never share a (device, metric, day).
    table = pa.concat_tables([_aggregate(t, metrics) for t in tables])
    table = table.sort_by([("device_id", "ascending"), ("metric", "ascending"), ("lday", "ascending")])
    tmp = target.with_suffix(".tmp")
    pq.write_table(table.replace_schema_metadata({"source": fp}), tmp, compression="zstd")
    os.replace(tmp, target)


def refresh(store: TelemetryStore, cache_dir: Path, metrics: Collection[str],
            progress: Callable[[str, int, int], None] | None = None, workers: int | None = None) -> list[Path]:
    """Bring the per-partition aggregates of `metrics` up to date; returns the aggregate files, one
    per partition."""
    wanted_metrics = tuple(sorted(set(metrics)))
    cache_dir.mkdir(parents=True, exist_ok=True)
    days = store.days()
    wanted = {f"day={d.isoformat()}.parquet" for d in days}
    for stale in cache_dir.glob("day=*.parquet"):
        if stale.name not in wanted:
            stale.unlink()
    out: list[Path] = []
    todo: list[tuple[list[Path], Path, str, tuple[str, ...]]] = []
    for day in days:
        files = sorted((store.root / f"day={day.isoformat()}").glob("*.parquet"))
        target = cache_dir / f"day={day.isoformat()}.parquet"
        fp = _fingerprint(files, wanted_metrics)
        out.append(target)
        if target.exists() and (pq.read_schema(target).metadata or {}).get(b"source") == fp.encode():
            continue
        todo.append((files, target, fp, wanted_metrics))
    # numpy and Parquet decoding release the GIL: partitions are built in parallel threads.
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 2)) as pool:
        for i, _ in enumerate(pool.map(lambda job: _build(*job), todo)):
            if progress:
                progress("feature rollup", i + 1, len(todo))
    return out


HOURLY_SCHEMA = pa.schema([
    ("device_id", pa.int64()), ("key", pa.string()), ("hour", pa.int64()), ("n", pa.int64()),
    ("total", pa.float64()), ("vmin", pa.float64()), ("vmax", pa.float64()), ("last_ts", pa.int64()),
    ("last_v", pa.float64()),
])
MS_PER_HOUR = 3_600_000


def _hourly(table: pa.Table) -> pa.Table:
    """Hourly aggregates of every key in one table sorted by (device, ts, key): the same segmented
    reduction as `_aggregate`, over (device, UTC hour) runs of each key's rows."""
    if table.num_rows == 0:
        return HOURLY_SCHEMA.empty_table()
    keys = table["key"].chunk(0)
    codes = keys.indices.to_numpy(zero_copy_only=False)
    device, ts = table["device_id"].to_numpy(), table["ts"].to_numpy()
    stored = table["value"].to_numpy(zero_copy_only=False)
    scaled = table["value_e6"].to_numpy(zero_copy_only=False)
    parts = []
    for code, name in enumerate(keys.dictionary.to_pylist()):
        pick = np.flatnonzero(codes == code)
        if pick.size == 0:
            continue
        d, t = device[pick], ts[pick]
        v = np.where(np.isnan(stored[pick]), scaled[pick] / 1_000_000.0, stored[pick])
        hour = t // MS_PER_HOUR
        starts = np.flatnonzero(np.r_[True, (d[1:] != d[:-1]) | (hour[1:] != hour[:-1])])
        ends = np.r_[starts[1:], d.size] - 1
        parts.append(pa.table({
            "device_id": d[starts], "key": pa.array([name] * starts.size, pa.string()),
            "hour": hour[starts] * MS_PER_HOUR, "n": (ends - starts + 1).astype(np.int64),
            "total": np.add.reduceat(v, starts), "vmin": np.minimum.reduceat(v, starts),
            "vmax": np.maximum.reduceat(v, starts), "last_ts": t[ends], "last_v": v[ends]}, schema=HOURLY_SCHEMA))
    return pa.concat_tables(parts) if parts else HOURLY_SCHEMA.empty_table()


def _hourly_of_day(files: list[Path]) -> pa.Table:
    tables = [_read(f) for f in files]
    if len(tables) > 1 and _share_devices(tables):
        # Every (device, key, ts) of a day is in that day's files: one sorted, first-accepted table.
        tables = [_first_accepted([_read(f, seq=True) for f in files])]
    # Files with disjoint devices: their aggregates never share a (device, key, hour).
    return pa.concat_tables([_hourly(t) for t in tables])


def _build_month(target: Path, days: dict[date, list[Path]], stamps: dict[str, str], pool: ThreadPoolExecutor) -> None:
    month = pa.concat_tables(list(pool.map(_hourly_of_day, days.values())))
    month = month.sort_by([("device_id", "ascending"), ("key", "ascending"), ("hour", "ascending")])
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # builders may race
    target.parent.mkdir(parents=True, exist_ok=True)
    # small row groups: a device's rows are a few of them, found by the device_id statistics
    pq.write_table(month.replace_schema_metadata({"iotfin.stamps": json.dumps(stamps, sort_keys=True)}), tmp,
                   compression="zstd", row_group_size=8192)
    os.replace(tmp, target)


def refresh_hourly(store: TelemetryStore, before: date | None = None, workers: int | None = None) -> int:
    """Build the hourly rollups the store reads for charts (TelemetryStore.aggregate): every month
    with a day before `before` (default: all days) whose files changed since; returns how many days
    the months rebuilt hold."""
    todo = store.hourly_todo(before)
    # numpy and Parquet decoding release the GIL: a month's days are built in parallel threads.
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 2)) as pool:
        for target, days, stamps in todo:
            _build_month(target, days, stamps, pool)
    return sum(len(days) for _, days, _ in todo)


def combine(con: duckdb.DuckDBPyConnection, files: list[Path], since_day: int, until_day: int) -> pa.Table:
    """One row per (device, metric, local day) in [since_day, until_day]: a local day spans two UTC
    partitions, so the partial aggregates of both are merged."""
    if not files:
        return DAILY_SCHEMA.empty_table()
    listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    return con.sql(combine_sql(f"read_parquet([{listing}])", since_day, until_day)).to_arrow_table()


def combine_sql(source: str, since_day: int, until_day: int) -> str:
    """The merge of `combine` as DuckDB SQL over `source` (a table, view or table function): the one
    text the Spark batch (iotfin.risk.spark) transpiles, so the merge rule is not written twice."""
    return (f"SELECT device_id, metric, lday, SUM(n) AS n, SUM(total) AS total, MAX(vmax) AS vmax, "
            f"MAX(last_ts) AS last_ts, arg_max(last_v, last_ts) AS last_v FROM {source} "
            f"WHERE lday BETWEEN {int(since_day)} AND {int(until_day)} GROUP BY device_id, metric, lday")
