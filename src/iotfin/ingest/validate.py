"""Vectorised validation of a batch of readings against the device registry and profiles.

Pure: takes arrays, returns a reason code per row (0 = accepted). Transports and the batch loader
all call this one function, so a reading is judged the same way whichever way it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotfin.ingest.ports import STATUS_ACTIVE, STATUS_REVOKED, STATUS_UNKNOWN, DeviceDirectory
from iotfin.telemetry.model import sort_order

# Reason codes: the index is stored, the text is what operators and devices see.
REASONS = (
    "accepted",
    "unknown_device",
    "device_revoked",
    "device_inactive",
    "unknown_metric",
    "not_finite",
    "out_of_range",
    "ts_in_future",
    "ts_too_old",
    "duplicate_in_batch",
)
REASON_CODE = {name: i for i, name in enumerate(REASONS)}


@dataclass(frozen=True, slots=True)
class Limits:
    now_ms: int
    max_future_ms: int = 10 * 60_000  # device clocks drift; ten minutes ahead is still plausible
    retention_ms: int = 3650 * 86_400_000


def validate(readings: pa.Table, registry: DeviceDirectory, limits: Limits) -> np.ndarray:
    """Reason code per row; rows are checked in the order of REASONS and keep the first failure."""
    n = readings.num_rows
    reasons = np.zeros(n, np.int8)
    if n == 0:
        return reasons

    def mark(mask: np.ndarray, reason: str) -> None:
        reasons[(reasons == 0) & mask] = REASON_CODE[reason]

    device_ids = readings["device_id"].to_numpy()
    ts = readings["ts"].to_numpy()
    values = readings["value"].to_numpy()
    profile, status = registry.lookup(device_ids)

    mark(status == STATUS_UNKNOWN, "unknown_device")
    mark(status == STATUS_REVOKED, "device_revoked")
    mark((status != STATUS_ACTIVE) & (status != STATUS_UNKNOWN) & (status != STATUS_REVOKED), "device_inactive")

    # Per (profile, key) bounds: build a small table over the keys present, then index it.
    keys = pc.dictionary_encode(readings["key"]).combine_chunks()
    key_names = keys.dictionary.to_pylist()
    key_idx = keys.indices.to_numpy()
    n_profiles = len(registry.profiles)
    lo = np.full((max(n_profiles, 1), len(key_names)), np.nan)
    hi = np.full_like(lo, np.nan)
    for p_i, prof in enumerate(registry.profiles):
        for k_i, key in enumerate(key_names):
            spec = prof.spec(key)
            if spec is not None:
                lo[p_i, k_i], hi[p_i, k_i] = spec.min, spec.max
    safe_profile = np.where(profile >= 0, profile, 0)
    row_lo = lo[safe_profile, key_idx]
    row_hi = hi[safe_profile, key_idx]
    mark(np.isnan(row_lo), "unknown_metric")
    mark(~np.isfinite(values), "not_finite")
    with np.errstate(invalid="ignore"):
        mark((values < row_lo) | (values > row_hi), "out_of_range")
    mark(ts > limits.now_ms + limits.max_future_ms, "ts_in_future")
    mark(ts < limits.now_ms - limits.retention_ms, "ts_too_old")
    # Repeats are looked for among the readings that passed every other check: when the first
    # reading of a point is rejected, the next valid one is stored, not dropped as its "duplicate".
    ok = np.flatnonzero(reasons == 0)
    reasons[ok[_repeated_in_batch(device_ids[ok], key_idx[ok], ts[ok])]] = REASON_CODE["duplicate_in_batch"]
    return reasons


def _repeated_in_batch(device_ids: np.ndarray, key_idx: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """True for every repeat of a (device, key, ts) after its first occurrence in the batch."""
    order = sort_order(device_ids, key_idx, ts)
    d, k, t = device_ids[order], key_idx[order], ts[order]
    same_as_prev = np.zeros(len(order), bool)
    same_as_prev[1:] = (d[1:] == d[:-1]) & (k[1:] == k[:-1]) & (t[1:] == t[:-1])
    repeated = np.zeros(len(order), bool)
    repeated[order] = same_as_prev  # stable lexsort keeps the first occurrence first
    return repeated
