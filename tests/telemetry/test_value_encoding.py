"""Values stored as scaled integers where exact must read back as the identical doubles."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from iotfin.telemetry.model import READING_SCHEMA
from iotfin.telemetry.store import TelemetryStore, decode_values, encode_values

T0 = 1_767_225_600_000


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=200))
def test_encoding_round_trips_every_double(values: list[float]) -> None:
    v = np.array(values, np.float64)
    value, value_e6 = encode_values(v)
    decoded = decode_values(pa.table({"value": value, "value_e6": value_e6})).to_numpy()
    assert decoded.tobytes() == v.tobytes()  # bit for bit, signed zeros included


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                          st.decimals(min_value=-10**9, max_value=10**9, places=3).map(float)),
                min_size=1, max_size=100))
def test_store_and_duckdb_read_back_identical_values(tmp_path_factory, values: list[float]) -> None:  # noqa: ANN001
    store = TelemetryStore(Path(tmp_path_factory.mktemp("store")))
    n = len(values)
    store.append(pa.table({"device_id": [7] * n, "key": ["k"] * n, "ts": [T0 + i for i in range(n)], "value": values},
                          schema=READING_SCHEMA))
    got = store.series(7, "k", T0, T0 + n)["value"].to_pylist()
    assert len(got) == n
    for a, b in zip(got, values, strict=True):
        assert a == b and math.copysign(1, a) == math.copysign(1, b)


def test_decimal_readings_take_the_compact_column(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    n = 100_000
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(200, 30, n), 3)
    store.append(pa.table({"device_id": np.repeat(np.arange(100), 1000), "key": ["power_kw"] * n,
                           "ts": np.tile(T0 + np.arange(1000) * 900_000, 100), "value": values}, schema=READING_SCHEMA))
    batch = next(store.iter_batches())
    assert batch.schema.names == ["device_id", "key", "ts", "value", "seq"]
    raw = pa.concat_tables([pq.read_table(f) for f in store.files()])
    assert raw["value"].null_count == n and raw["value_e6"].null_count == 0  # all in the integer column
    assert np.array_equal(np.sort(store.series(5, "power_kw", T0, T0 + 1000 * 900_000)["value"].to_numpy()),
                          np.sort(values[5000:6000]))
