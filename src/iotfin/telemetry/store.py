"""Parquet-by-day telemetry store.

Layout: ``<root>/day=YYYY-MM-DD/b<batch_seq>.parquet``. Each append writes one file per UTC day it
touches, all of them to temporary names and fsynced first, then renames them into place and fsyncs
the directories: an append that fails leaves none of its batch visible, and once `append` returns
the batch survives a crash. (A crash in the middle of the renames can leave part of a batch that was
never acknowledged visible; the sender re-sends it, which is harmless, see below.)

A reading is identified by (device_id, key, ts). Each file carries its batch sequence number in the
`seq` column, so when the same point is written twice the first accepted value wins on read
(an acknowledged reading never changes afterwards; see docs/telemetry.md).

Several writers may share one store (two `iotfin serve` processes on a shared path): batch numbers
come from a counter file (`.append-seq`) read and advanced under an exclusive `flock`, so no two
writers take the same number (the same file name); a writer holds a shared `flock` on each of its
temporary files until they are renamed, so another writer's clean-up of crash leftovers skips them.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotfin.core.time import MS_PER_DAY, day_start_ms
from iotfin.telemetry.model import READING_SCHEMA, AppendResult, parse_bucket, sort_order

# On disk a value is either `value_e6` (value × 10^6 as an integer, when that is exact — true of the
# decimal readings meters and sensors send) or `value` (any other double); exactly one is set per
# row. Integers with a few significant digits compress far better than the bits of a double
# (measured on the simulator's data: 4.4 -> 3.5 bytes per point), and the decoding
# CAST(value_e6 AS DOUBLE) / 1e6 gives back the identical double, so nothing is lost.
STORED_SCHEMA = pa.schema([
    pa.field("device_id", pa.int64(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("ts", pa.int64(), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("value_e6", pa.int64()),
    pa.field("seq", pa.int64(), nullable=False),
])
_SCALE = 1_000_000.0
_MAX_EXACT = float(2**53)
VALUE_SQL = "COALESCE(value, CAST(value_e6 AS DOUBLE) / CAST(1000000 AS DOUBLE))"


def encode_values(values: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """(value, value_e6) columns: the scaled integer where it decodes to the identical double."""
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.round(values * _SCALE)
        exact = np.isfinite(scaled) & (np.abs(scaled) < _MAX_EXACT) & (scaled / _SCALE == values) & ~(
            (values == 0) & np.signbit(values))  # -0.0 stays a double: an integer has no negative zero
    as_int = np.where(exact, scaled, 0).astype(np.int64)
    return pa.array(values, mask=exact), pa.array(as_int, mask=~exact)


def decode_values(table: pa.Table) -> pa.Array:
    value = table["value"].to_numpy(zero_copy_only=False)
    scaled = table["value_e6"].to_numpy(zero_copy_only=False)
    return pa.array(np.where(np.isnan(value), scaled / _SCALE, value))
_EPOCH = date(1970, 1, 1)
MS_PER_HOUR = 3_600_000


class TelemetryStore:
    def __init__(self, root: Path, compression: str = "zstd", compression_level: int = 3):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._compression = compression
        self._level = compression_level
        self._lock = threading.Lock()
        self._seq: int | None = None  # read on the first append: a reader never needs it
        self._footer_rows: dict[Path, tuple[tuple[int, int], int]] = {}  # stats(): file -> ((size, mtime), rows)
        self._hourly_stamps: dict[Path, tuple[int, str]] = {}  # rollup file -> (mtime, stamp it was built for)
        self._duck: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (pid, in-process database)
        self._duck_lock = threading.Lock()

    # --- writing ---------------------------------------------------------------------------

    def append(self, readings: pa.Table) -> AppendResult:
        """Durably store validated readings (READING_SCHEMA). Returns once they are on disk."""
        if readings.num_rows == 0:
            return AppendResult(0, 0, 0, 0)
        readings = readings.select(READING_SCHEMA.names).cast(READING_SCHEMA)
        seq = self._next_seq()
        ts = readings["ts"].to_numpy()
        days = np.floor_divide(ts, MS_PER_DAY)
        keys = pc.dictionary_encode(readings["key"]).combine_chunks()
        key_rank = np.argsort(np.argsort(keys.dictionary.to_numpy(zero_copy_only=False)))[keys.indices.to_numpy()]
        # One sort, then a slice per day: O(n log n) whatever the days touched. Within a device, time
        # before key: a device's metrics share timestamps, so the delta-encoded ts column is mostly
        # zeros (5.8 -> 4.2 bytes per point on the simulator's data, measured).
        order = sort_order(days, readings["device_id"].to_numpy(), ts, key_rank)
        readings = readings.take(pa.array(order))
        sorted_days = days[order]
        boundaries = np.flatnonzero(np.diff(sorted_days)) + 1
        starts = np.concatenate(([0], boundaries))
        ends = np.concatenate((boundaries, [readings.num_rows]))
        # Two phases, so that a failure on any day (disk full, a bad partition directory) leaves
        # none of the batch visible: every day's file is written and fsynced under a temporary
        # name first, and only then are they all renamed into place.
        staged: list[tuple[Path, Path]] = []
        held: list[int] = []  # shared locks on the temporary files until they are renamed into place
        try:
            try:
                for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                    part = readings.slice(start, end - start)
                    value, value_e6 = encode_values(part["value"].to_numpy())
                    part = pa.table([part["device_id"], part["key"], part["ts"], value, value_e6,
                                     pa.array(np.full(part.num_rows, seq, np.int64))], schema=STORED_SCHEMA)
                    day = _EPOCH.fromordinal(_EPOCH.toordinal() + int(sorted_days[start]))
                    path = self._day_dir(day) / f"b{seq:012d}.parquet"
                    staged.append((self._write_temporary(path, part, held), path))
            except BaseException:
                for tmp, _ in staged:
                    tmp.unlink(missing_ok=True)
                raise
            written = self._publish(staged)
        finally:
            for fd in held:
                os.close(fd)
        files = len(starts)
        return AppendResult(rows=readings.num_rows, files=files, days=files, bytes_written=written, seq=seq)

    def _write_temporary(self, path: Path, table: pa.Table, held: list[int]) -> Path:
        """Write and fsync `table` next to `path` under a temporary name; returns that name. A shared
        lock on the name (its descriptor appended to `held`) tells another writer cleaning up crash
        leftovers that this file is in use."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        while True:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                if os.fstat(fd).st_ino == os.stat(tmp).st_ino:
                    break  # locked, and still the file under that name
            except FileNotFoundError:
                pass  # removed as a leftover between the open and the lock: take the name again
            os.close(fd)
        held.append(fd)
        try:
            pq.write_table(
                table,
                tmp,
                compression=self._compression,
                compression_level=self._level,
                use_dictionary=["key"],
                # Timestamps and ids are near-monotonic after sorting: delta encoding halves their size.
                column_encoding={"ts": "DELTA_BINARY_PACKED", "device_id": "DELTA_BINARY_PACKED",
                                 "seq": "DELTA_BINARY_PACKED"},
                write_statistics=True,
            )
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    @staticmethod
    def _publish(staged: list[tuple[Path, Path]]) -> int:
        """Rename staged files into place and fsync their directories; returns the bytes published."""
        for tmp, path in staged:
            os.replace(tmp, path)
        for directory in {path.parent for _, path in staged}:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return sum(path.stat().st_size for _, path in staged)

    def _next_seq(self) -> int:
        """The next batch number, unique among every writer of this store (processes included): the
        counter file is read and advanced under an exclusive flock (fcntl locks on NFS). A writer's
        first append also takes the largest number on disk into account (a store written before the
        counter existed, or a counter lost in a crash) and removes crash leftovers."""
        with self._lock:
            fd = os.open(self.root / ".append-seq", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = os.pread(fd, 32, 0).strip()
                last = int(raw) if raw else 0
                if self._seq is None:
                    last = max(last, self._last_seq())
                seq = max(last, self._seq or 0) + 1
                data = str(seq).encode()
                os.pwrite(fd, data.ljust(20), 0)
                os.fsync(fd)
                self._seq = seq
                return seq
            finally:
                os.close(fd)  # releases the lock

    def _last_seq(self) -> int:
        """The largest batch number on disk, read on a writer's first append. Leftover temporary files
        (a crash mid-write: never acknowledged) are removed here and not when a store is opened, because a
        reader (`iotfin telemetry query` while `iotfin serve` runs) would otherwise delete the
        serving process's files in the middle of a commit (found by tests/ingest_faults); a file
        another writer holds locked (it is writing it now) is left alone."""
        seqs = [int(p.stem[1:]) for p in self.root.glob("day=*/b*.parquet")]
        for leftover in self.root.glob("day=*/*.tmp"):
            try:
                fd = os.open(leftover, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer's file
            finally:
                os.close(fd)
            leftover.unlink(missing_ok=True)
        return max(seqs, default=0)

    def _day_dir(self, day: date) -> Path:
        return self.root / f"day={day.isoformat()}"

    # --- reading ---------------------------------------------------------------------------

    def days(self) -> list[date]:
        # os.scandir, not Path.glob: this runs on every read, over every day partition (6x cheaper)
        return sorted(date.fromisoformat(e.name[4:]) for e in os.scandir(self.root)
                      if e.name.startswith("day=") and e.is_dir() and _has_parquet(e.path))

    def files(self, start_ms: int | None = None, end_ms: int | None = None) -> list[Path]:
        """Files whose day partition can hold readings in [start_ms, end_ms)."""
        out = []
        for day in self.days():
            lo = day_start_ms(day)
            if (end_ms is not None and lo >= end_ms) or (start_ms is not None and lo + MS_PER_DAY <= start_ms):
                continue
            out.extend(sorted(self._day_dir(day).glob("*.parquet")))
        return out

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on this store's in-process DuckDB. One database outlives a query for its Parquet
        metadata cache: batch files are written once and a rollup is replaced whole (a new file and
        mtime, which the cache checks), so a 90-day chart's footers are parsed once, not on every
        request (measured: rollup reads 2.4x faster). A forked child opens its own."""
        with self._duck_lock:
            if self._duck is None or self._duck[0] != os.getpid():
                db = duckdb.connect()
                db.execute("SET parquet_metadata_cache = true")
                self._duck = (os.getpid(), db)
            return self._duck[1].cursor()

    def _relation(self, con: duckdb.DuckDBPyConnection, start_ms: int | None, end_ms: int | None) -> str | None:
        files = self.files(start_ms, end_ms)
        return _dedup_sql(files) if files else None

    def series(self, device_id: int, key: str, start_ms: int, end_ms: int) -> pa.Table:
        """Raw readings of one device's key over [start_ms, end_ms), oldest first."""
        with self._cursor() as con:
            rel = self._relation(con, start_ms, end_ms)
            if rel is None:
                return READING_SCHEMA.empty_table()
            sql = rel.format(where="device_id = $d AND key = $k AND ts >= $a AND ts < $b") + " ORDER BY ts"
            params = {"d": device_id, "k": key, "a": start_ms, "b": end_ms}
            return con.sql(f"SELECT * FROM {sql}", params=params).to_arrow_table()

    def aggregate(self, device_id: int, key: str, start_ms: int, end_ms: int, bucket: str) -> pa.Table:
        """Downsampled buckets: bucket start (ms) with min, max, mean, sum, count and last value.

        Buckets of whole hours read the hourly rollup (below) for the whole hours of every day whose
        rollup is up to date, and the raw points for the rest (the range's partial first and last
        hours, days not rolled up); the figures are the same (the mean as sum / count)."""
        width = parse_bucket(bucket)
        days = [d for d in self.days() if day_start_ms(d) < end_ms and day_start_ms(d) + MS_PER_DAY > start_ms]
        rolled = self._fresh_hourly(days) if width % MS_PER_HOUR == 0 else {}
        first_hour = -(-start_ms // MS_PER_HOUR) * MS_PER_HOUR  # the rollup serves [first_hour, last_hour)
        last_hour = end_ms // MS_PER_HOUR * MS_PER_HOUR
        raw_days = [d for d in days if d not in rolled or max(day_start_ms(d), start_ms) < first_hour
                    or min(day_start_ms(d) + MS_PER_DAY, end_ms) > last_hour]  # a rolled day's partial hours
        raw_files = [f for d in raw_days for f in sorted(self._day_dir(d).glob("*.parquet"))]
        rolled_days = ", ".join(str((d - _EPOCH).days) for d in rolled)
        parts = []
        if raw_files:
            served = (f" AND NOT (ts // {MS_PER_DAY} IN ({rolled_days}) AND ts >= {first_hour} AND ts < {last_hour})"
                      if rolled else "")
            raw = _dedup_sql(raw_files).format(where=f"device_id = $d AND key = $k AND ts >= $a AND ts < $b{served}")
            parts.append(f"SELECT (ts // $w) * $w AS b, min(value) AS vmin, max(value) AS vmax, sum(value) AS total, "
                         f"count(*) AS n, max(ts) AS last_ts, arg_max(value, ts) AS last_v FROM {raw} GROUP BY 1")
        if rolled and first_hour < last_hour:
            parts.append(f"SELECT (hour // $w) * $w AS b, min(vmin) AS vmin, max(vmax) AS vmax, sum(total) AS total, "
                         f"sum(n) AS n, max(last_ts) AS last_ts, arg_max(last_v, last_ts) AS last_v "
                         f"FROM read_parquet([{_listing(sorted(set(rolled.values())))}]) "
                         f"WHERE device_id = $d AND key = $k AND hour // {MS_PER_DAY} IN ({rolled_days}) "
                         f"AND hour >= {first_hour} AND hour < {last_hour} GROUP BY 1")
        if not parts:
            return _AGG_SCHEMA.empty_table()
        query = (f"SELECT b AS bucket_start, min(vmin) AS min, max(vmax) AS max, sum(total) / sum(n) AS mean, "
                 f"sum(total) AS sum, sum(n) AS count, arg_max(last_v, last_ts) AS last "
                 f"FROM ({' UNION ALL '.join(parts)}) GROUP BY 1 ORDER BY 1")
        params = {"d": device_id, "k": key, "w": width} | ({"a": start_ms, "b": end_ms} if raw_files else {})
        with self._cursor() as con:
            return con.sql(query, params=params).to_arrow_table().cast(_AGG_SCHEMA)

    # --- hourly rollups -----------------------------------------------------------------------
    # A 90-day chart of a 15-minute meter otherwise scans every batch file of 90 days (~800 on the
    # demo, each a row group of all devices: ~1 s). The rollup is one file per UTC month under
    # `_hourly/` (outside the `day=*` partitions every reader lists), one row per (device, key, hour)
    # sorted by device in small row groups, so one device's 90 days are a few row groups of three or
    # four files (per-file overhead dominated with one file per day: 1.8 ms of CPU each). It is
    # derived data: built from the days' files (`daily.refresh_hourly`, run by the close loop and
    # `iotfin telemetry rollup`), stamped per day with that day's files' names and sizes, and a day
    # is read from it only while its stamp still matches — a late batch for that day sends its reads
    # back to the raw files until the month is rebuilt. Evidence and audits never read it.

    def _hourly_path(self, day: date) -> Path:
        return self.root / "_hourly" / f"month={day:%Y-%m}.parquet"

    def _day_stamp(self, day: date) -> str:
        """The names of a day's batch files. A batch file is written once under a name no other
        batch takes (its number, from the flock'd counter) and never rewritten, so a new batch
        changes the stamp; names alone: no stat per file on every read."""
        return ";".join(sorted(e.name for e in os.scandir(self._day_dir(day)) if e.name.endswith(".parquet")))

    def _rolled_stamps(self, path: Path) -> dict[str, str]:
        """The day -> stamp map a month's rollup was built for (cached while the file is unchanged)."""
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        known = self._hourly_stamps.get(path)
        if known is None or known[0] != mtime:
            raw = (pq.read_schema(path).metadata or {}).get(b"iotfin.stamps", b"{}")
            known = (mtime, json.loads(raw))
            self._hourly_stamps[path] = known
        return known[1]

    def fresh_hourly(self, start_ms: int, end_ms: int) -> dict[date, Path]:
        """Whole UTC days within [start_ms, end_ms) whose month's rollup matches their files now."""
        return self._fresh_hourly([d for d in self.days()
                                   if day_start_ms(d) >= start_ms and day_start_ms(d) + MS_PER_DAY <= end_ms])

    def _fresh_hourly(self, days: list[date]) -> dict[date, Path]:
        out = {}
        for day in days:
            path = self._hourly_path(day)
            if self._rolled_stamps(path).get(day.isoformat()) == self._day_stamp(day):
                out[day] = path
        return out

    def hourly_todo(self, before: date | None = None) -> list[tuple[Path, dict[date, list[Path]], dict[str, str]]]:
        """The months whose rollup is missing or stale for any of their days before `before` (default:
        all days): (the rollup's path, each day's files, the day stamps to build it for). Built by
        iotfin.telemetry.daily.refresh_hourly."""
        months: dict[Path, list[date]] = {}
        for day in self.days():
            if before is None or day < before:
                months.setdefault(self._hourly_path(day), []).append(day)
        todo = []
        for path, days in months.items():
            stamps = {day.isoformat(): self._day_stamp(day) for day in days}
            if self._rolled_stamps(path) != stamps:
                todo.append((path, {day: sorted(self._day_dir(day).glob("*.parquet")) for day in days}, stamps))
        return todo

    def latest(self, device_id: int) -> dict[str, tuple[int, float]]:
        """Latest value per key = the newest timestamp, not the last received."""
        with self._cursor() as con:
            rel = self._relation(con, None, None)
            if rel is None:
                return {}
            sql = rel.format(where="device_id = $d")
            rows = con.execute(
                f"SELECT key, max(ts), arg_max(value, ts) FROM {sql} GROUP BY key ORDER BY key", {"d": device_id}
            ).fetchall()
        return {key: (int(ts), float(value)) for key, ts, value in rows}

    def stats(self) -> dict[str, float | int]:
        files = self.files()
        size = rows = 0
        footers: dict[Path, tuple[tuple[int, int], int]] = {}
        for f in files:
            st = f.stat()
            key = (st.st_size, st.st_mtime_ns)
            known = self._footer_rows.get(f)
            # A file is written once (temporary file + rename) and only ever replaced whole, so its
            # row count stays valid while its size and mtime do: the footers are read once, not on
            # every call (the demo's 180 days: 120 ms -> a few ms for the platform summary).
            footers[f] = known if known is not None and known[0] == key else (key, pq.ParquetFile(f).metadata.num_rows)
            size += st.st_size
            rows += footers[f][1]
        self._footer_rows = footers  # files gone (retention, compaction) drop out
        return {
            "days": len({f.parent for f in files}),
            "files": len(files),
            "data_points": rows,
            "bytes": size,
            "bytes_per_point": round(size / rows, 3) if rows else 0.0,
        }

    def iter_batches(self) -> Iterator[pa.RecordBatch]:
        """Every stored row as READING_SCHEMA plus `seq` (before first-wins deduplication)."""
        for f in self.files():
            for batch in pq.ParquetFile(f).iter_batches():
                table = pa.Table.from_batches([batch])
                yield pa.RecordBatch.from_arrays(
                    [table["device_id"].combine_chunks(), table["key"].combine_chunks(), table["ts"].combine_chunks(),
                     decode_values(table), table["seq"].combine_chunks()],
                    names=["device_id", "key", "ts", "value", "seq"])

    def apply_retention(self, keep_from: date) -> int:
        """Delete whole day partitions older than `keep_from`; returns the number of days removed."""
        removed = 0
        for day in self.days():
            if day < keep_from:
                for f in self._day_dir(day).glob("*"):
                    f.unlink()
                self._day_dir(day).rmdir()
                removed += 1
        kept = {self._hourly_path(day) for day in self.days()}
        for rollup in (self.root / "_hourly").glob("month=*.parquet"):
            if rollup not in kept:
                rollup.unlink()  # a month with no day left (one with days left is rebuilt: stamps changed)
        return removed


def _has_parquet(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return any(e.name.endswith(".parquet") for e in entries)


def _listing(files: list[Path]) -> str:
    return ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)


def _dedup_sql(files: list[Path]) -> str:
    """The readings of `files` (a `{where}` placeholder to fill), the first accepted value winning
    for a repeated (device, key, ts)."""
    return (
        f"(SELECT device_id, key, ts, arg_min({VALUE_SQL}, seq) AS value "
        f"FROM read_parquet([{_listing(files)}]) WHERE {{where}} GROUP BY device_id, key, ts)"
    )


_AGG_COLUMNS = [
    ("bucket_start", pa.int64()), ("min", pa.float64()), ("max", pa.float64()), ("mean", pa.float64()),
    ("sum", pa.float64()), ("count", pa.int64()), ("last", pa.float64()),
]
_AGG_SCHEMA = pa.schema(_AGG_COLUMNS)
