"""Telemetry records and pure helpers (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# One reading = one data point: (device, key, timestamp) -> value. This is the long form every
# transport produces; the store keeps each file sorted by (device_id, ts, key) so it compresses well.
READING_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.int64(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),  # UTC epoch milliseconds, as the device reported it
        pa.field("value", pa.float64(), nullable=False),
    ]
)

AGGREGATES = ("min", "max", "mean", "sum", "count", "last")
_BUCKET = re.compile(r"^(\d+)(s|m|min|h|d)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_bucket(text: str) -> int:
    """'1m', '15min', '1h', '1d' -> bucket width in milliseconds."""
    match = _BUCKET.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"aggregation interval must look like 1m, 15min, 1h or 1d, not {text!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True, slots=True)
class AppendResult:
    rows: int
    files: int
    days: int
    bytes_written: int
    seq: int = 0  # the batch's sequence number (its files are b<seq>.parquet)


def sort_order(*columns: np.ndarray) -> np.ndarray:
    """Stable row order by integer columns, most significant first.

    When the columns' value ranges fit together in 63 bits (the usual case for one ingest batch:
    a few days of timestamps, a device-id range, a handful of keys) they are packed into one int64
    and sorted once, about 15x faster than np.lexsort on 2 M rows; otherwise lexsort.
    """
    if columns[0].size == 0:
        return np.zeros(0, np.int64)
    lows = [int(c.min()) for c in columns]
    bits = [(int(c.max()) - lo).bit_length() for c, lo in zip(columns, lows, strict=True)]
    if sum(bits) > 63:
        return np.lexsort(tuple(reversed(columns)))
    packed = np.zeros(columns[0].size, np.int64)
    for column, lo, width in zip(columns, lows, bits, strict=True):
        packed = (packed << width) | (column.astype(np.int64) - lo)
    return np.argsort(packed, kind="stable")
