"""Daily telemetry aggregates per device, metric and local business day: the telemetry input of the
feature SQL. Materialised next to the store and rebuilt per UTC day partition only when that
partition's files change, so features for many as-of dates (and the online path) read a table of
one row per device-metric-day instead of the raw points.

A (device, metric, ts) reading always lands in one UTC day partition, so the store's
first-accepted-wins deduplication is exact within a partition. Ingest refuses duplicates within a
batch, so a partition whose files hold disjoint sets of devices has none to remove; only
partitions where two files share a device pay for the deduplicating GROUP BY.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotfin.core.time import MS_PER_DAY
from iotfin.risk.features.catalogue import ROLLUP_METRICS
from iotfin.telemetry.store import VALUE_SQL, TelemetryStore

# Asia/Shanghai has kept UTC+8 without daylight saving since 1991: a local day is (ts + 8 h) // 1 day.
LOCAL_OFFSET_MS = 8 * 3_600_000
DAILY_SCHEMA = pa.schema([
    ("device_id", pa.int64()), ("metric", pa.string()), ("lday", pa.int32()), ("n", pa.int64()),
    ("total", pa.float64()), ("vmax", pa.float64()), ("last_ts", pa.int64()), ("last_v", pa.float64()),
])
_FORMAT = "daily-v1"


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256(_FORMAT.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _needs_dedup(files: list[Path]) -> bool:
    if len(files) < 2:
        return False
    seen: pa.Array | None = None
    for f in files:
        devices = pc.unique(pq.read_table(f, columns=["device_id"])["device_id"].combine_chunks())
        if seen is not None and pc.any(pc.is_in(devices, value_set=seen)).as_py():
            return True
        seen = devices if seen is None else pa.concat_arrays([seen, devices])
    return False


def _rollup_sql(files: list[Path], dedup: bool) -> str:
    listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    metrics = ", ".join(f"'{m}'" for m in ROLLUP_METRICS)
    if dedup:
        src = (f"SELECT device_id, key, ts, arg_min({VALUE_SQL}, seq) AS v FROM read_parquet([{listing}]) "
               f"WHERE key IN ({metrics}) GROUP BY device_id, key, ts")
    else:
        src = f"SELECT device_id, key, ts, {VALUE_SQL} AS v FROM read_parquet([{listing}]) WHERE key IN ({metrics})"
    return (f"SELECT device_id, key AS metric, CAST((ts + {LOCAL_OFFSET_MS}) // {MS_PER_DAY} AS INTEGER) AS lday, "
            f"COUNT(*) AS n, SUM(v) AS total, MAX(v) AS vmax, MAX(ts) AS last_ts, arg_max(v, ts) AS last_v "
            f"FROM ({src}) r GROUP BY device_id, key, lday")


def _build(files: list[Path], target: Path, fp: str) -> None:
    # One thread per partition (and partitions in parallel): a single-threaded aggregation sums in
    # one order, so rebuilding a partition gives bit-identical aggregates.
    with duckdb.connect(config={"threads": 1}) as con:
        table = con.sql(_rollup_sql(files, _needs_dedup(files))).to_arrow_table()
    table = table.sort_by([("device_id", "ascending"), ("metric", "ascending"), ("lday", "ascending")])
    tmp = target.with_suffix(".tmp")
    pq.write_table(table.cast(DAILY_SCHEMA).replace_schema_metadata({"source": fp}), tmp, compression="zstd")
    os.replace(tmp, target)


def refresh(store: TelemetryStore, cache_dir: Path, progress: Callable[[str, int, int], None] | None = None,
            workers: int | None = None) -> list[Path]:
    """Bring the per-partition aggregates up to date; returns the aggregate files, one per partition."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    days = store.days()
    wanted = {f"day={d.isoformat()}.parquet" for d in days}
    for stale in cache_dir.glob("day=*.parquet"):
        if stale.name not in wanted:
            stale.unlink()
    out: list[Path] = []
    todo: list[tuple[list[Path], Path, str]] = []
    for day in days:
        files = sorted((store.root / f"day={day.isoformat()}").glob("*.parquet"))
        target = cache_dir / f"day={day.isoformat()}.parquet"
        fp = _fingerprint(files)
        out.append(target)
        if target.exists() and (pq.read_schema(target).metadata or {}).get(b"source") == fp.encode():
            continue
        todo.append((files, target, fp))
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 2)) as pool:
        for i, _ in enumerate(pool.map(lambda job: _build(*job), todo)):
            if progress:
                progress("feature rollup", i + 1, len(todo))
    return out


def combine(con: duckdb.DuckDBPyConnection, files: list[Path], since_day: int, until_day: int) -> pa.Table:
    """One row per (device, metric, local day) in [since_day, until_day]: a local day spans two UTC
    partitions, so the partial aggregates of both are merged."""
    if not files:
        return DAILY_SCHEMA.empty_table()
    listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    return con.sql(
        f"SELECT device_id, metric, lday, SUM(n) AS n, SUM(total) AS total, MAX(vmax) AS vmax, "
        f"MAX(last_ts) AS last_ts, arg_max(last_v, last_ts) AS last_v FROM read_parquet([{listing}]) "
        f"WHERE lday BETWEEN {int(since_day)} AND {int(until_day)} GROUP BY device_id, metric, lday"
    ).to_arrow_table()
