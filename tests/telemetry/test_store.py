"""The Parquet-by-day telemetry store: partitions, first-accepted-wins reads, atomic batches, reopening."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iotfin.core.time import MS_PER_DAY
from iotfin.telemetry.model import READING_SCHEMA, AppendResult, parse_bucket
from iotfin.telemetry.store import TelemetryStore

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
HOUR = 3_600_000


def readings(*rows: tuple[int, str, int, float]) -> pa.Table:
    """(device_id, key, ts, value) rows as a READING_SCHEMA table."""
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.table({"device_id": list(cols[0]), "key": list(cols[1]), "ts": list(cols[2]),
                     "value": list(cols[3])}, schema=READING_SCHEMA)


def points(store: TelemetryStore, device_id: int, key: str, start: int = 0, end: int = T0 + 30 * MS_PER_DAY,
           ) -> list[tuple[int, float]]:
    table = store.series(device_id, key, start, end)
    return list(zip(table["ts"].to_pylist(), table["value"].to_pylist(), strict=True))


def partition_files(root: Path) -> dict[str, list[str]]:
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted(root.glob("day=*"))}


# --- writing and reading back ---------------------------------------------------------------------


def test_append_then_series_oldest_first_over_half_open_range(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    result = store.append(readings((1, "power_kw", T0 + 2 * MIN, 12.5), (1, "power_kw", T0, 10.25),
                                   (1, "power_kw", T0 + MIN, 11.0), (1, "energy_kwh", T0, 100.0),
                                   (2, "power_kw", T0, 99.0)))
    assert result == AppendResult(rows=5, files=1, days=1, bytes_written=result.bytes_written, seq=1)
    assert result.bytes_written == sum(f.stat().st_size for f in store.files()) > 0
    assert points(store, 1, "power_kw") == [(T0, 10.25), (T0 + MIN, 11.0), (T0 + 2 * MIN, 12.5)]
    # [start, end): the end is excluded, the start included.
    assert points(store, 1, "power_kw", T0 + MIN, T0 + 2 * MIN) == [(T0 + MIN, 11.0)]
    assert points(store, 1, "energy_kwh") == [(T0, 100.0)]
    assert points(store, 2, "power_kw") == [(T0, 99.0)]
    assert points(store, 3, "power_kw") == []
    assert points(store, 1, "no_such_key") == []


def test_append_accepts_reordered_and_narrower_columns(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    table = pa.table({"value": pa.array([1.5], pa.float32()), "ts": [T0], "extra": ["ignored"],
                      "key": ["k"], "device_id": pa.array([7], pa.int32())})
    assert store.append(table).rows == 1
    assert points(store, 7, "k") == [(T0, 1.5)]
    assert set(pq.read_schema(store.files()[0]).names) == {"device_id", "key", "ts", "value", "value_e6", "seq"}


def test_empty_store_and_empty_append(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path / "new" / "store")  # created on open
    assert store.append(readings()) == AppendResult(0, 0, 0, 0)
    assert store.days() == [] and store.files() == []
    empty = store.series(1, "k", 0, T0)
    assert empty.num_rows == 0 and empty.schema.names == READING_SCHEMA.names
    agg = store.aggregate(1, "k", 0, T0, "1h")
    assert agg.num_rows == 0
    assert agg.schema.names == ["bucket_start", "min", "max", "mean", "sum", "count", "last"]
    assert store.latest(1) == {}
    assert store.stats() == {"days": 0, "files": 0, "data_points": 0, "bytes": 0, "bytes_per_point": 0.0}
    assert list(store.iter_batches()) == []
    # An empty append does not use up a sequence number.
    assert store.append(readings((1, "k", T0, 1.0))).seq == 1


def test_readings_spanning_utc_days_land_in_day_partitions(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    last_ms_of_day1 = T0 + MS_PER_DAY - 1
    result = store.append(readings((1, "k", T0 + 2 * MS_PER_DAY, 3.0), (1, "k", last_ms_of_day1, 1.0),
                                   (1, "k", T0 + MS_PER_DAY, 2.0), (1, "k", T0, 0.5),
                                   (1, "k", T0 - 1, -1.0)))  # 2025-12-31T23:59:59.999Z
    assert (result.rows, result.files, result.days) == (5, 4, 4)
    assert partition_files(tmp_path) == {
        "day=2025-12-31": ["b000000000001.parquet"],
        "day=2026-01-01": ["b000000000001.parquet"],
        "day=2026-01-02": ["b000000000001.parquet"],
        "day=2026-01-03": ["b000000000001.parquet"],
    }
    assert store.days() == [date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
    # Each partition holds exactly its own UTC day's readings.
    for d in tmp_path.glob("day=*"):
        lo = (date.fromisoformat(d.name[4:]) - date(1970, 1, 1)).days * MS_PER_DAY
        ts = pq.read_table(next(d.glob("*.parquet")))["ts"].to_pylist()
        assert ts and all(lo <= t < lo + MS_PER_DAY for t in ts), (d.name, ts)
    assert [v for _, v in points(store, 1, "k")] == [-1.0, 0.5, 1.0, 2.0, 3.0]
    # Reads only open the partitions that can hold the range.
    assert [f.parent.name for f in store.files(T0, T0 + MS_PER_DAY)] == ["day=2026-01-01"]
    assert [f.parent.name for f in store.files(T0 + MS_PER_DAY - 1, T0 + MS_PER_DAY + 1)] == [
        "day=2026-01-01", "day=2026-01-02"]
    assert [f.parent.name for f in store.files(end_ms=T0)] == ["day=2025-12-31"]
    assert [f.parent.name for f in store.files(start_ms=T0 + 2 * MS_PER_DAY)] == ["day=2026-01-03"]
    assert points(store, 1, "k", T0 + MS_PER_DAY - 1, T0 + MS_PER_DAY + 1) == [(last_ms_of_day1, 1.0),
                                                                                (T0 + MS_PER_DAY, 2.0)]


# --- first accepted value wins ----------------------------------------------------------------------


def test_first_accepted_value_wins_on_every_read_path(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    first = store.append(readings((1, "k", T0, 10.0), (1, "k", T0 + MIN, 20.0)))
    second = store.append(readings((1, "k", T0, 999.0), (1, "k", T0 + 2 * MIN, 30.0)))
    third = store.append(readings((1, "k", T0 + MIN, -5.0), (1, "k", T0 + 2 * MIN, 777.0)))
    assert (first.seq, second.seq, third.seq) == (1, 2, 3)
    assert points(store, 1, "k") == [(T0, 10.0), (T0 + MIN, 20.0), (T0 + 2 * MIN, 30.0)]
    assert store.latest(1) == {"k": (T0 + 2 * MIN, 30.0)}
    agg = store.aggregate(1, "k", T0, T0 + HOUR, "1h").to_pylist()
    assert agg == [{"bucket_start": T0, "min": 10.0, "max": 30.0, "mean": 20.0, "sum": 60.0, "count": 3,
                    "last": 30.0}]
    # The raw rows are all kept (nothing is rewritten); deduplication happens on read.
    raw = sorted((r["ts"], r["value"], r["seq"]) for b in store.iter_batches() for r in b.to_pylist())
    assert raw == [(T0, 10.0, 1), (T0, 999.0, 2), (T0 + MIN, -5.0, 3), (T0 + MIN, 20.0, 1),
                   (T0 + 2 * MIN, 30.0, 2), (T0 + 2 * MIN, 777.0, 3)]
    assert store.stats()["data_points"] == 6


def test_first_wins_is_by_batch_not_by_file_name_order_within_a_day(tmp_path: Path) -> None:
    # Ten batches: b…10 sorts after b…9 only because names are zero-padded; seq decides, not order.
    store = TelemetryStore(tmp_path)
    for i in range(10):
        store.append(readings((1, "k", T0, float(i))))
    assert points(store, 1, "k") == [(T0, 0.0)]
    assert partition_files(tmp_path)["day=2026-01-01"][-1] == "b000000000010.parquet"


# --- durability and atomicity -----------------------------------------------------------------------


def test_append_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings(*[(d, "k", T0 + i * HOUR, float(i)) for d in range(3) for i in range(60)]))
    everything = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".append-seq"]  # the batch counter
    assert everything and all(p.suffix == ".parquet" for p in everything)
    for f in everything:  # every file is complete, readable Parquet
        assert pq.ParquetFile(f).metadata.num_rows > 0


def test_leftover_temporary_file_from_a_crash_is_invisible_and_removed_by_the_next_writer(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings((1, "k", T0, 1.0)))
    # A crash between writing a batch's temporary file and renaming it: never acknowledged.
    crashed = tmp_path / "day=2026-01-01" / "b000000000002.tmp"
    crashed.write_bytes(b"PAR1 half a parquet file")
    assert points(store, 1, "k") == [(T0, 1.0)]
    assert store.stats()["files"] == 1
    reopened = TelemetryStore(tmp_path)
    # Opening to read leaves it: it could be a live writer's file in the middle of a commit.
    assert points(reopened, 1, "k") == [(T0, 1.0)] and crashed.exists()
    assert reopened.append(readings((1, "k", T0 + 1, 2.0))).seq == 2
    assert not crashed.exists()


def test_a_batch_that_fails_midway_is_not_visible_at_all(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings((1, "k", T0 - MIN, 0.0)))
    # The second day's partition cannot be created (a file is in the way): the write fails there.
    (tmp_path / "day=2026-01-02").write_text("not a directory")
    batch = readings((1, "k", T0, 1.0), (1, "k", T0 + MS_PER_DAY, 2.0), (1, "k", T0 + 2 * MS_PER_DAY, 3.0))
    with pytest.raises(OSError):
        store.append(batch)
    assert points(store, 1, "k") == [(T0 - MIN, 0.0)]  # none of the failed batch, all of the earlier one
    assert not list(tmp_path.rglob("*.tmp"))
    assert store.stats()["data_points"] == 1
    # Once the obstacle is gone the same batch goes in whole.
    (tmp_path / "day=2026-01-02").unlink()
    store.append(batch)
    assert [v for _, v in points(store, 1, "k")] == [0.0, 1.0, 2.0, 3.0]


def test_reopening_continues_sequence_and_sees_old_data(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    assert store.append(readings((1, "k", T0, 1.0))).seq == 1
    assert store.append(readings((1, "k", T0 + MS_PER_DAY, 2.0))).seq == 2
    reopened = TelemetryStore(tmp_path)
    assert points(reopened, 1, "k") == [(T0, 1.0), (T0 + MS_PER_DAY, 2.0)]
    assert reopened.latest(1) == {"k": (T0 + MS_PER_DAY, 2.0)}
    # A new batch after reopening gets the next number, so old values still win over re-sent ones.
    result = reopened.append(readings((1, "k", T0, 100.0), (1, "k", T0 + 2 * MS_PER_DAY, 3.0)))
    assert result.seq == 3
    assert (tmp_path / "day=2026-01-01" / "b000000000003.parquet").exists()
    assert (tmp_path / "day=2026-01-01" / "b000000000001.parquet").exists()  # not overwritten
    assert points(reopened, 1, "k") == [(T0, 1.0), (T0 + MS_PER_DAY, 2.0), (T0 + 2 * MS_PER_DAY, 3.0)]
    assert points(TelemetryStore(tmp_path), 1, "k") == points(reopened, 1, "k")
    assert TelemetryStore(tmp_path).append(readings((1, "k", T0 + 5, 0.0))).seq == 4


# --- aggregation ------------------------------------------------------------------------------------


def test_aggregate_buckets(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    # Two hours of a reading every 15 minutes: value = index (0..7), sent newest first.
    store.append(readings(*[(1, "p", T0 + i * 15 * MIN, float(i)) for i in reversed(range(8))]))
    store.append(readings((1, "other", T0, 1000.0), (2, "p", T0, 1000.0)))  # must not leak in
    hourly = store.aggregate(1, "p", T0, T0 + 2 * HOUR, "1h").to_pylist()
    assert hourly == [
        {"bucket_start": T0, "min": 0.0, "max": 3.0, "mean": 1.5, "sum": 6.0, "count": 4, "last": 3.0},
        {"bucket_start": T0 + HOUR, "min": 4.0, "max": 7.0, "mean": 5.5, "sum": 22.0, "count": 4, "last": 7.0},
    ]
    half_hourly = store.aggregate(1, "p", T0, T0 + 2 * HOUR, "30min")
    assert half_hourly["bucket_start"].to_pylist() == [T0 + i * 30 * MIN for i in range(4)]
    assert half_hourly["count"].to_pylist() == [2, 2, 2, 2]
    assert half_hourly["last"].to_pylist() == [1.0, 3.0, 5.0, 7.0]
    daily = store.aggregate(1, "p", T0, T0 + MS_PER_DAY, "1d").to_pylist()
    assert daily == [{"bucket_start": T0, "min": 0.0, "max": 7.0, "mean": 3.5, "sum": 28.0, "count": 8,
                      "last": 7.0}]
    # The range is [start, end) and buckets are aligned to the epoch, not to the range start.
    partial = store.aggregate(1, "p", T0 + 20 * MIN, T0 + 75 * MIN, "1h").to_pylist()
    assert [(b["bucket_start"], b["count"], b["sum"]) for b in partial] == [(T0, 2, 5.0), (T0 + HOUR, 1, 4.0)]
    assert store.aggregate(1, "p", T0 + 3 * HOUR, T0 + 4 * HOUR, "1h").num_rows == 0
    assert store.aggregate(1, "p", T0, T0 + HOUR, "15m")["count"].to_pylist() == [1, 1, 1, 1]
    assert store.aggregate(1, "p", T0, T0 + HOUR, "900s")["count"].to_pylist() == [1, 1, 1, 1]


def test_aggregate_last_is_the_newest_timestamp_across_batches(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings((1, "p", T0 + 50 * MIN, 5.0)))
    store.append(readings((1, "p", T0 + 10 * MIN, 1.0)))  # late arrival, older timestamp
    [bucket] = store.aggregate(1, "p", T0, T0 + HOUR, "1h").to_pylist()
    assert bucket["last"] == 5.0 and bucket["count"] == 2


def test_aggregate_rejects_a_bad_interval(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings((1, "p", T0, 1.0)))
    with pytest.raises(ValueError, match="aggregation interval"):
        store.aggregate(1, "p", T0, T0 + HOUR, "hourly")


@pytest.mark.parametrize(("text", "ms"), [
    ("1s", 1_000), ("30s", 30_000), ("1m", 60_000), ("15min", 900_000), ("15m", 900_000), ("1h", 3_600_000),
    ("24h", 86_400_000), ("1d", 86_400_000), ("7d", 604_800_000), (" 5min ", 300_000),
])
def test_parse_bucket(text: str, ms: int) -> None:
    assert parse_bucket(text) == ms


@pytest.mark.parametrize("text", ["", "h", "0m", "00h", "-1h", "1.5h", "1H", "1 h", "1w", "1hour", "15mins", "m1"])
def test_parse_bucket_refuses_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_bucket(text)
    message = str(excinfo.value)
    assert "1m, 15min, 1h or 1d" in message and repr(text) in message


# --- latest, stats, batches, retention --------------------------------------------------------------


def test_latest_is_the_newest_timestamp_not_the_last_received(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings((1, "t", T0 + HOUR, 21.5), (1, "h", T0, 40.0), (2, "t", T0 + 5 * HOUR, 0.0)))
    store.append(readings((1, "t", T0, -40.0), (1, "h", T0 + MS_PER_DAY, 41.0)))  # back-fill and a newer day
    assert store.latest(1) == {"h": (T0 + MS_PER_DAY, 41.0), "t": (T0 + HOUR, 21.5)}
    assert store.latest(2) == {"t": (T0 + 5 * HOUR, 0.0)}
    assert store.latest(3) == {}


def test_stats(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings(*[(1, "k", T0 + i * HOUR, float(i)) for i in range(48)]))  # two days
    store.append(readings((2, "k", T0, 1.0)))
    stats = store.stats()
    size = sum(f.stat().st_size for f in tmp_path.rglob("*.parquet"))
    assert stats == {"days": 2, "files": 3, "data_points": 49, "bytes": size,
                     "bytes_per_point": round(size / 49, 3)}
    # the row counts are remembered per file: a file replaced whole and a day removed both show
    first = sorted(tmp_path.rglob("*.parquet"))[0]
    rows = pq.read_table(first)
    pq.write_table(rows.slice(0, 5), first.with_suffix(".tmp"))
    first.with_suffix(".tmp").replace(first)
    assert store.stats()["data_points"] == 49 - rows.num_rows + 5
    assert store.apply_retention(date(2026, 1, 2)) == 1
    after = store.stats()
    assert (after["days"], after["files"], after["data_points"]) == (1, 1, 24)


def test_iter_batches_gives_every_row_decoded_with_its_seq(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    inexact = 0.1 + 0.2  # not a multiple of 1e-6: stored as a double
    store.append(readings((1, "a", T0, 1.25), (1, "b", T0, inexact), (2, "a", T0 + MS_PER_DAY, -0.0)))
    store.append(readings((1, "a", T0, 7.0)))
    batches = list(store.iter_batches())
    assert all(b.schema.names == ["device_id", "key", "ts", "value", "seq"] for b in batches)
    rows = sorted((r["device_id"], r["key"], r["ts"], r["value"], r["seq"]) for b in batches for r in b.to_pylist())
    assert rows == [(1, "a", T0, 1.25, 1), (1, "a", T0, 7.0, 2), (1, "b", T0, inexact, 1),
                    (2, "a", T0 + MS_PER_DAY, -0.0, 1)]


def test_apply_retention_drops_whole_days_before_the_cut(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.append(readings(*[(1, "k", T0 + d * MS_PER_DAY + HOUR, float(d)) for d in range(5)]))
    store.append(readings((1, "k", T0 + 3 * MS_PER_DAY + 2 * HOUR, 33.0)))
    assert store.apply_retention(date(2026, 1, 3)) == 2
    assert store.days() == [date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5)]  # the cut day is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [".append-seq", "day=2026-01-03", "day=2026-01-04",
                                                          "day=2026-01-05"]
    assert [v for _, v in points(store, 1, "k")] == [2.0, 3.0, 33.0, 4.0]
    assert store.apply_retention(date(2026, 1, 3)) == 0
    assert store.stats()["data_points"] == 4
    # The sequence carries on past the removed days, so first-wins still holds for what is left.
    assert store.append(readings((1, "k", T0 + 4 * MS_PER_DAY + HOUR, -1.0))).seq == 3
    assert points(store, 1, "k", T0 + 4 * MS_PER_DAY, T0 + 5 * MS_PER_DAY) == [(T0 + 4 * MS_PER_DAY + HOUR, 4.0)]
    assert store.apply_retention(date(2030, 1, 1)) == 3
    assert store.days() == [] and points(store, 1, "k") == []


# --- several writers on one store (two `iotfin serve` processes on a shared path) --------------------


def _writer(root: str, device: int, batches: int) -> list[int]:
    """A separate process appending to the shared store: one reading per batch; returns its seqs."""
    store = TelemetryStore(Path(root))
    return [store.append(readings((device, "k", T0 + i * MIN, float(i)))).seq for i in range(batches)]


def test_two_writer_processes_never_take_the_same_batch_number(tmp_path: Path) -> None:
    import multiprocessing  # here: only this test starts processes

    TelemetryStore(tmp_path).append(readings((9, "k", T0, 0.0)))  # a store with history: seq 1 on disk
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        seqs = pool.starmap(_writer, [(str(tmp_path), 1, 40), (str(tmp_path), 2, 40)])
    assert len(set(seqs[0]) | set(seqs[1])) == 80 and min(seqs[0] + seqs[1]) == 2  # unique, after the history
    store = TelemetryStore(tmp_path)
    for device in (1, 2):  # every acknowledged reading of both writers is there (none overwritten)
        assert points(store, device, "k") == [(T0 + i * MIN, float(i)) for i in range(40)]
    assert store.stats()["files"] == 81


def test_a_writer_leaves_another_writers_temporary_file_alone(tmp_path: Path) -> None:
    import fcntl  # here: the test holds the lock a live writer would hold

    TelemetryStore(tmp_path).append(readings((1, "k", T0, 1.0)))
    live = tmp_path / "day=2026-01-01" / "b000000000007.tmp"
    live.write_bytes(b"PAR1 being written")
    with open(live, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # another writer is writing it now
        assert TelemetryStore(tmp_path).append(readings((1, "k", T0 + MIN, 2.0))).seq == 2
        assert live.exists()
    assert TelemetryStore(tmp_path).append(readings((1, "k", T0 + 2 * MIN, 3.0))).seq == 3
    assert not live.exists()  # unlocked: a crash leftover, removed by the next writer's first append
