"""Durable device events, written in batches: tamper signals and connectivity changes.

Transports `record` events in memory (a list append under a lock); the device runtime's periodic
task `flush`es them in one transaction of batched INSERTs, so a flood of tampered messages or
reconnects costs a statement per `FLUSH_CHUNK` events, not one per event. A whole chunk buffered
wakes the flush early (`on_backlog`), so a reconnect storm holds a chunk of rows in memory, not
the storm. What is still buffered when a process is killed is lost (at most one flush interval,
0.5 s by default); the rejected payloads themselves are already in the quarantine store by then.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from iotfin.core.errors import ValidationError
from iotfin.core.time import ms_to_datetime, now_ms
from iotfin.db.engine import write_transaction
from iotfin.devices import store
from iotfin.devices.tables import EVENT_KINDS, TAMPER_KINDS

#: rows per INSERT statement of a flush: a reconnect storm's flush then needs a bounded amount of
#: working memory (the driver's parameter lists), not one proportional to the storm
FLUSH_CHUNK = 500


class DeviceEventLog:
    def __init__(self, engine: Engine):
        self.engine = engine
        # (device_id, kind, at_ms, detail) tuples, not row dicts: a reconnect storm buffers thousands
        # of them between flushes, and a tuple is a third of the dict's memory
        self._buffer: list[tuple[int, str, int, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.recorded: Counter[str] = Counter()
        #: called (from whichever thread recorded) when a whole chunk is buffered, so the owner can
        #: flush before the interval ends: a reconnect storm then holds a chunk of rows, not a storm
        self.on_backlog: Callable[[], None] | None = None

    def record(self, device_id: int, kind: str, detail: dict[str, Any] | None = None, at_ms: int | None = None) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown device event kind {kind!r}")
        row = (int(device_id), kind, at_ms if at_ms is not None else now_ms(), detail or {})
        with self._lock:
            self._buffer.append(row)
            self.recorded[kind] += 1
            backlog = len(self._buffer) == FLUSH_CHUNK
        if backlog and self.on_backlog is not None:
            self.on_backlog()

    def flush(self) -> int:
        """Write what is buffered in one transaction, `FLUSH_CHUNK` rows a statement; returns how many
        events were written."""
        with self._lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return 0
        try:
            with write_transaction(self.engine) as conn:
                for start in range(0, len(rows), FLUSH_CHUNK):
                    store.insert_events(conn, [{"device_id": device_id, "kind": kind, "at_ms": at, "detail": detail}
                                               for device_id, kind, at, detail in rows[start:start + FLUSH_CHUNK]])
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
