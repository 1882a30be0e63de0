"""Durable device events, written in batches: tamper signals and connectivity changes.

Transports `record` events in memory (a list append under a lock); the device runtime's periodic
task `flush`es them in one INSERT, so a flood of tampered messages or reconnects costs one
statement per flush, not one per event. What is still buffered when a process is killed is lost
(at most one flush interval, 0.5 s by default); the rejected payloads themselves are already in the
quarantine store by then.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from sqlalchemy import Engine

from iotfin.core.errors import ValidationError
from iotfin.core.time import ms_to_datetime, now_ms
from iotfin.db.engine import write_transaction
from iotfin.devices import store
from iotfin.devices.tables import EVENT_KINDS, TAMPER_KINDS


class DeviceEventLog:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.recorded: Counter[str] = Counter()

    def record(self, device_id: int, kind: str, detail: dict[str, Any] | None = None, at_ms: int | None = None) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown device event kind {kind!r}")
        row = {"device_id": int(device_id), "kind": kind, "at_ms": at_ms if at_ms is not None else now_ms(),
               "detail": detail or {}}
        with self._lock:
            self._buffer.append(row)
            self.recorded[kind] += 1

    def flush(self) -> int:
        """Write what is buffered in one statement; returns how many events were written."""
        with self._lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return 0
        try:
            with write_transaction(self.engine) as conn:
                store.insert_events(conn, rows)
        except Exception:
            with self._lock:  # keep them for the next flush rather than lose them
                self._buffer[:0] = rows
            raise
        return len(rows)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def query(self, device_id: int | None = None, kinds: list[str] | None = None, tamper_only: bool = False,
              since_ms: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Events, newest first: for one device or all, optionally only some kinds or only tamper signals.
        The monitoring context reads tamper signals through this (with `since_ms` to page forward)."""
        if limit < 1 or limit > 10_000:
            raise ValidationError("limit must be between 1 and 10000")
        wanted = set(kinds or EVENT_KINDS) & (set(TAMPER_KINDS) if tamper_only else set(EVENT_KINDS))
        unknown = set(kinds or []) - set(EVENT_KINDS)
        if unknown:
            raise ValidationError(f"unknown event kinds {sorted(unknown)}; kinds: {', '.join(EVENT_KINDS)}")
        with self.engine.connect() as conn:
            rows = store.events(conn, sorted(wanted), device_id, since_ms, limit)
        return [{"id": r.id, "device_id": r.device_id, "kind": r.kind, "tamper": r.kind in TAMPER_KINDS,
                 "at_ms": r.at_ms, "at": ms_to_datetime(r.at_ms).isoformat(), "detail": r.detail} for r in rows]
