"""ThingsBoard device-API payloads to readings. Pure: bytes in, rows and rejections out.

Telemetry comes in ThingsBoard's three forms, and one columnar form of iotfin's, all accepted by
every transport:

    {"temperature": 21.5, "humidity": 40}                       values at the server's receive time
    {"ts": 1767225600000, "values": {"temperature": 21.5}}       values at the device's time (epoch ms)
    [{"ts": ..., "values": {...}}, {"temperature": 20.1}, ...]    a list of either
    {"ts": [t1, t2, ...], "values": {"temperature": [v1, v2, ...], "humidity": [...]}}
                                                                 columns: one value per ts per key

The columnar form is for gateways and back-fills (issue 22): its arrays go to numpy in one call
each, instead of a Python step per reading, and its readings reach the commit as Arrow columns. It
keeps the per-reading rules: a column that is not all numbers is read value by value, so its bad
values get the same reasons as in the other forms.

The store holds numbers: booleans become 1/0; strings, objects and nulls are rejected with the reason
`wrong_type` (kept in quarantine like any other rejection), since a reading nobody can aggregate is
better refused loudly than stored as text and silently ignored by every risk signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from iotfin.core.errors import MalformedPayload  # noqa: F401  (raised here; shared with devices' provenance)
from iotfin.telemetry.model import READING_SCHEMA

MAX_PAYLOAD_BYTES = 1 << 20
MAX_KEY_LENGTH = 255
_MIN_TS, _MAX_TS = -(2**63), 2**63 - 1


@dataclass
class ParsedTelemetry:
    device_ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rejected: list[tuple[str, str, Any]] = field(default_factory=list)  # (reason, key, raw value)
    columns: list[pa.Table] = field(default_factory=list)  # readings of the columnar form, already Arrow

    @property
    def rows(self) -> int:
        return len(self.device_ids) + sum(t.num_rows for t in self.columns)

    def table(self) -> pa.Table:
        listed = pa.table({"device_id": self.device_ids, "key": self.keys, "ts": self.ts, "value": self.values},
                          schema=READING_SCHEMA)
        if not self.columns:
            return listed
        return pa.concat_tables([listed, *self.columns] if self.device_ids else self.columns)


def load_json(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    if len(payload) > max_bytes:
        raise MalformedPayload("payload_too_large", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("malformed_payload", f"not JSON: {exc}") from None


def parse_telemetry(payload: bytes | Any, device_id: int, now_ms: int, out: ParsedTelemetry | None = None) -> ParsedTelemetry:
    """Append the readings of one device's telemetry payload to `out` (raw bytes or decoded JSON)."""
    data = load_json(payload) if isinstance(payload, bytes | bytearray | memoryview) else payload
    out = out if out is not None else ParsedTelemetry()
    if isinstance(data, dict) and isinstance(data.get("ts"), list) and "values" in data:
        _columns(data["ts"], data["values"], device_id, out)
        return out
    entries = data if isinstance(data, list) else [data]
    if not entries:
        raise MalformedPayload("malformed_payload", "empty telemetry list")
    for entry in entries:
        if not isinstance(entry, dict):
            raise MalformedPayload("malformed_payload", f"telemetry entries must be objects, not {type(entry).__name__}")
        if "ts" in entry and "values" in entry:
            ts = entry["ts"]
            if isinstance(ts, bool) or not isinstance(ts, int) or not _MIN_TS <= ts <= _MAX_TS:
                # (the range check matters: readings of many messages share one commit, and one
                # timestamp beyond int64 would otherwise fail the whole commit, not just its message)
                raise MalformedPayload("malformed_payload", f"ts must be integer epoch milliseconds, not {ts!r}")
            values = entry["values"]
            if not isinstance(values, dict):
                raise MalformedPayload("malformed_payload", "values must be an object of key: value")
        else:
            ts, values = now_ms, entry
        for key, raw in values.items():
            _add(out, device_id, key, ts, raw)
    return out


def _add(out: ParsedTelemetry, device_id: int, key: str, ts: int, raw: Any) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        out.rejected.append(("malformed_payload", key[:MAX_KEY_LENGTH], raw))
        return
    if isinstance(raw, bool):
        value = 1.0 if raw else 0.0
    elif isinstance(raw, int | float):
        value = float(raw)
        if isinstance(raw, int) and not math.isfinite(value):  # an integer too large for a double
            out.rejected.append(("out_of_range", key, raw))
            return
    else:
        out.rejected.append(("wrong_type", key, raw))
        return
    out.device_ids.append(device_id)
    out.keys.append(key)
    out.ts.append(ts)
    out.values.append(value)


def _columns(ts_list: list[Any], values: Any, device_id: int, out: ParsedTelemetry) -> None:
    """The columnar form: `ts` a list of epoch milliseconds, `values` key -> list as long as `ts`."""
    if not ts_list:
        raise MalformedPayload("malformed_payload", "empty ts list")
    if not isinstance(values, dict) or not values:
        raise MalformedPayload("malformed_payload", "values must be an object of key: list of values")
    ts = np.array(ts_list)
    # numpy reads [1, True] as integers; a boolean is no timestamp (as in the other forms)
    if ts.ndim != 1 or ts.dtype.kind != "i" or any(type(t) is bool for t in ts_list):
        bad = next((t for t in ts_list if type(t) is not int or not _MIN_TS <= t <= _MAX_TS), ts_list[0])
        raise MalformedPayload("malformed_payload", f"ts must be integer epoch milliseconds, not {bad!r}")
    n = len(ts)
    keys: list[str] = []
    columns: list[np.ndarray] = []
    for key, column in values.items():
        if not isinstance(column, list) or len(column) != n:
            raise MalformedPayload("malformed_payload", f"values[{key!r}] must be a list of {n} values, one per ts")
        arr = np.array(column)
        if key and len(key) <= MAX_KEY_LENGTH and arr.ndim == 1 and arr.dtype.kind in "fiub":
            keys.append(key)
            columns.append(arr.astype(np.float64, copy=False))
            continue
        # not all numbers (or a bad key): value by value, each refused with its own reason
        for t, raw in zip(ts_list, column, strict=True):
            _add(out, device_id, key, t, raw)
    if not keys:
        return
    # key as dictionary indices decoded once by Arrow: no Python string per reading
    key_col = pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(len(keys), dtype=np.int32), n)),
                                             pa.array(keys, pa.string())).cast(pa.string())
    out.columns.append(pa.Table.from_arrays(
        [pa.array(np.full(n * len(keys), device_id, dtype=np.int64)), key_col, pa.array(np.tile(ts, len(keys))),
         pa.array(np.concatenate(columns))], schema=READING_SCHEMA))
