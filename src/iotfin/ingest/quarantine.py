"""Quarantine: every rejected reading is kept with its reason, and counted per device and reason."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from iotfin.core.time import now_ms

QUARANTINE_SCHEMA = pa.schema(
    [
        ("device_id", pa.int64()),
        ("key", pa.string()),
        ("ts", pa.int64()),
        ("value", pa.float64()),
        ("raw", pa.string()),  # the payload as received, when it could not be parsed into readings
        ("reason", pa.string()),
        ("transport", pa.string()),
        ("received_ms", pa.int64()),
    ]
)


class QuarantineStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = max((int(p.stem[1:]) for p in self.root.glob("q*.parquet")), default=0)

    def put(self, rows: pa.Table, reasons: list[str] | np.ndarray, transport: str) -> int:
        """Keep rejected readings (READING_SCHEMA columns) with their reasons."""
        if rows.num_rows == 0:
            return 0
        table = pa.table(
            {
                "device_id": rows["device_id"],
                "key": rows["key"],
                "ts": rows["ts"],
                "value": rows["value"],
                "raw": pa.nulls(rows.num_rows, pa.string()),
                "reason": pa.array(list(reasons), pa.string()),
                "transport": pa.array([transport] * rows.num_rows, pa.string()),
                "received_ms": pa.array(np.full(rows.num_rows, now_ms(), np.int64)),
            },
            schema=QUARANTINE_SCHEMA,
        )
        self._write(table)
        return rows.num_rows

    def put_raw(self, raw: str, reason: str, transport: str, device_id: int | None = None) -> None:
        """Keep a payload that could not even be parsed (truncated to 64 KiB to bound the store)."""
        table = pa.table(
            {"device_id": [device_id], "key": [None], "ts": [None], "value": [None], "raw": [raw[:65536]],
             "reason": [reason], "transport": [transport], "received_ms": [now_ms()]},
            schema=QUARANTINE_SCHEMA,
        )
        self._write(table)

    def put_raw_many(self, items: list[tuple[str, str]], transport: str, device_id: int | None = None) -> int:
        """Keep several unparseable items of one message, (raw text, reason) each, in one file."""
        if not items:
            return 0
        n = len(items)
        table = pa.table(
            {"device_id": [device_id] * n, "key": [None] * n, "ts": [None] * n, "value": [None] * n,
             "raw": [raw[:65536] for raw, _ in items], "reason": [reason for _, reason in items],
             "transport": [transport] * n, "received_ms": [now_ms()] * n},
            schema=QUARANTINE_SCHEMA,
        )
        self._write(table)
        return n

    def _write(self, table: pa.Table) -> None:
        with self._lock:
            self._seq += 1
            path = self.root / f"q{self._seq:012d}.parquet"
        pq.write_table(table, path, compression="zstd")

    def counts(self, by: str = "reason") -> dict[str, int]:
        """Rejected readings per reason (by='reason') or per device (by='device_id')."""
        if by not in ("reason", "device_id"):
            raise ValueError("count by 'reason' or 'device_id'")
        files = sorted(self.root.glob("q*.parquet"))
        if not files:
            return {}
        listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        with duckdb.connect() as con:
            rows = con.sql(
                f"SELECT {by}, count(*) FROM read_parquet([{listing}]) GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        return {str(k): int(v) for k, v in rows}
