"""The hourly rollup long-range charts read: aggregates over rolled-up days equal the raw files'
(first accepted value wins across batches, whole and partial days, buckets of any whole hours), a
late batch for a rolled-up day sends reads back to the raw files until the rollup is rebuilt, and the
close loop and `iotfin telemetry rollup` build it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from iotfin.core.time import MS_PER_DAY
from iotfin.telemetry.daily import refresh_hourly
from iotfin.telemetry.store import TelemetryStore
from tests.telemetry.test_store import HOUR, MIN, T0, readings

COLUMNS = ("bucket_start", "min", "max", "count", "last")


def _random_store(root: Path, seed: int = 7) -> TelemetryStore:
    """Four days of three devices with two keys at 15 minutes, in batches that interleave devices
    and days, with duplicates (the same point sent again with another value: the first wins)."""
    rng = random.Random(seed)
    store = TelemetryStore(root)
    rows = [(d, k, T0 + i * 15 * MIN, round(rng.uniform(-5, 100), 3))
            for d in (1, 2, 3) for k in ("kw", "kwh") for i in range(4 * 96)]
    rng.shuffle(rows)
    for start in range(0, len(rows), 700):
        batch = {(d, k, ts): (d, k, ts, v) for d, k, ts, v in rows[start:start + 700]}
        store.append(readings(*batch.values()))
    resent = [(d, k, ts, v + 1000.0) for d, k, ts, v in rng.sample(rows, 40)]
    store.append(readings(*{(d, k, ts): (d, k, ts, v) for d, k, ts, v in resent}.values()))
    return store


def _same(a, b) -> None:  # noqa: ANN001
    left, right = a.to_pydict(), b.to_pydict()
    for column in COLUMNS:
        assert left[column] == right[column], column
    assert left["sum"] == pytest.approx(right["sum"]) and left["mean"] == pytest.approx(right["mean"])


def test_rolled_up_days_read_the_same_as_the_raw_files(tmp_path: Path) -> None:
    store = _random_store(tmp_path)
    ranges = [(T0, T0 + 4 * MS_PER_DAY), (T0 + 5 * HOUR + 7 * MIN, T0 + 3 * MS_PER_DAY + 2 * HOUR),
              (T0 + MS_PER_DAY, T0 + 2 * MS_PER_DAY)]
    buckets = ("1h", "3h", "1d", "15m")
    raw = {(d, k, r, b): store.aggregate(d, k, *r, b) for d in (1, 3) for k in ("kw", "kwh") for r in ranges
           for b in buckets}
    assert store.fresh_hourly(T0, T0 + 4 * MS_PER_DAY) == {}
    assert refresh_hourly(store) == 4 and refresh_hourly(store) == 0  # built once, then up to date
    assert len(store.fresh_hourly(T0, T0 + 4 * MS_PER_DAY)) == 4
    assert len(store.fresh_hourly(T0 + HOUR, T0 + 4 * MS_PER_DAY)) == 3  # a partial first day reads raw
    for (d, k, r, b), expected in raw.items():
        _same(store.aggregate(d, k, *r, b), expected)
    # the rollup holds the first accepted values: a resent point's second value is nowhere
    assert max(store.aggregate(1, "kw", T0, T0 + 4 * MS_PER_DAY, "1d")["max"].to_pylist()) < 1000


def test_a_late_batch_sends_reads_back_to_the_raw_files_until_rebuilt(tmp_path: Path) -> None:
    store = _random_store(tmp_path)
    refresh_hourly(store)
    day = (T0 + MS_PER_DAY, T0 + 2 * MS_PER_DAY)
    before = store.aggregate(2, "kw", *day, "1d").to_pylist()[0]
    store.append(readings((2, "kw", T0 + MS_PER_DAY + 7 * MIN, 5000.0)))  # a new point for that day
    assert len(store.fresh_hourly(*day)) == 0
    after = store.aggregate(2, "kw", *day, "1d").to_pylist()[0]
    assert after["count"] == before["count"] + 1 and after["max"] == 5000.0
    assert refresh_hourly(store) == 4  # that day's month is rebuilt (the four days of January)
    assert store.aggregate(2, "kw", *day, "1d").to_pylist()[0] == pytest.approx(after)
    assert len(store.fresh_hourly(*day)) == 1


def test_rollup_before_a_date_and_through_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "ws"
    store = _random_store(data / "telemetry")
    assert refresh_hourly(store, before=store.days()[2]) == 2
    env = {**os.environ, "IOTFIN_DATA_DIR": str(data)}
    run = subprocess.run([sys.executable, "-m", "iotfin", "telemetry", "rollup", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["days_built"] == 4  # the month, rebuilt with its other two days
    bad = subprocess.run([sys.executable, "-m", "iotfin", "telemetry", "rollup", "--before", "yesterday"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--before" in bad.stderr


def test_retention_removes_the_rollups_of_the_days_it_drops(tmp_path: Path) -> None:
    store = _random_store(tmp_path)
    store.append(readings((1, "kw", T0 + 40 * MS_PER_DAY, 1.0)))  # a day in February
    assert refresh_hourly(store) == 5
    assert sorted(p.name for p in (tmp_path / "_hourly").glob("*")) == ["month=2026-01.parquet", "month=2026-02.parquet"]
    assert store.apply_retention(store.days()[2]) == 2  # two January days go; the others' rollups still hold
    assert len(store.fresh_hourly(T0, T0 + 60 * MS_PER_DAY)) == 3
    assert refresh_hourly(store) == 2 and len(store.fresh_hourly(T0, T0 + 60 * MS_PER_DAY)) == 3  # January rebuilt
    assert store.apply_retention(store.days()[-1]) == 2  # January is gone: so is its rollup
    assert sorted(p.name for p in (tmp_path / "_hourly").glob("*")) == ["month=2026-02.parquet"]
