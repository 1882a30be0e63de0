"""Making single readings provable without a leaf per reading. Pure: no I/O.

A committed telemetry batch gets one ledger leaf holding the Merkle root of its readings. Hashing
100 million readings one by one would cost more than storing them, so the batch tree's leaves are
*series*: all readings of one (device, key) in the batch, in timestamp order, as fixed-width binary.
A reading is then proved by the series it belongs to (which contains it), the series' inclusion
proof in the batch root, and the batch leaf's inclusion proof in a signed checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SERIES_DOMAIN = b"iotfin.telemetry.series.v1\x00"
_PAIR = np.dtype([("ts", ">i8"), ("value", ">f8")])


@dataclass(frozen=True, slots=True)
class Series:
    device_id: int
    key: str
    ts: list[int]
    values: list[float]

    def payload(self) -> bytes:
        pairs = np.empty(len(self.ts), _PAIR)
        pairs["ts"], pairs["value"] = self.ts, self.values
        return series_payload(self.device_id, self.key, pairs.tobytes())

    def to_json(self) -> dict[str, object]:
        return {"device_id": self.device_id, "key": self.key, "ts": self.ts, "values": self.values}


def series_payload(device_id: int, key: str, pairs: bytes) -> bytes:
    return SERIES_DOMAIN + int(device_id).to_bytes(8, "big", signed=True) + key.encode() + b"\x00" + pairs


def series_starts(readings: pa.Table) -> np.ndarray:
    """First row of each (device_id, key) series in a batch sorted by (device_id, key, ts)."""
    n = readings.num_rows
    if n == 0:
        return np.zeros(0, np.int64)
    device = readings["device_id"].to_numpy()
    key_idx = readings["key"].combine_chunks().dictionary_encode().indices.to_numpy()
    change = np.ones(n, bool)
    change[1:] = (device[1:] != device[:-1]) | (key_idx[1:] != key_idx[:-1])
    return np.flatnonzero(change)


def series_leaf_hashes(readings: pa.Table) -> list[bytes]:
    """The batch tree's leaf hashes: one per series, in (device_id, key) order."""
    starts = series_starts(readings)
    if starts.size == 0:
        return []
    ends = np.append(starts[1:], readings.num_rows)
    device = readings["device_id"].to_numpy()
    encoded = readings["key"].combine_chunks().dictionary_encode()
    key_idx, names = encoded.indices.to_numpy(), encoded.dictionary.to_pylist()
    pairs = np.empty(readings.num_rows, _PAIR)
    pairs["ts"] = readings["ts"].to_numpy()
    pairs["value"] = readings["value"].to_numpy()
    view = memoryview(pairs.view(np.uint8))
    width = _PAIR.itemsize
    key_bytes = [name.encode() + b"\x00" for name in names]
    device_bytes = device.astype(">i8").tobytes()
    out = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        # Streaming updates over views: no per-series copy of the readings (same bytes as series_payload).
        h = hashlib.sha256(b"\x00" + SERIES_DOMAIN)
        h.update(device_bytes[s * 8:s * 8 + 8])
        h.update(key_bytes[key_idx[s]])
        h.update(view[s * width:e * width])
        out.append(h.digest())
    return out


def series_at(readings: pa.Table, index: int) -> Series:
    """The index-th series of a sorted batch, as an evidence bundle carries it."""
    starts = series_starts(readings)
    if not 0 <= index < starts.size:
        raise IndexError(f"batch has {starts.size} series, not {index + 1}")
    start = int(starts[index])
    end = int(starts[index + 1]) if index + 1 < starts.size else readings.num_rows
    part = readings.slice(start, end - start)
    return Series(int(part["device_id"][0].as_py()), part["key"][0].as_py(), part["ts"].to_pylist(),
                  part["value"].to_pylist())


def find_series(readings: pa.Table, device_id: int, key: str) -> int | None:
    starts = series_starts(readings)
    device = readings["device_id"].to_numpy()
    for i, s in enumerate(starts.tolist()):
        if device[s] == device_id and readings["key"][s].as_py() == key:
            return i
    return None
