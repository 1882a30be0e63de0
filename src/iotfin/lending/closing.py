"""The close as an operation: one close at a time across every process sharing the database (a lease
in `close_lock`), each run recorded in `close_jobs` (scheduled, catch-up at start, or manual), and the
status the operator reads (`GET /api/v1/lending/close`, `iotfin loan close-status`).

`iotfin serve` runs `ScheduledClose.tick` every minute (`iotfin.app.close_schedule`): once the
configured local time (`close_at`, Asia/Shanghai) has passed, the books are closed through yesterday,
and days missed while no server ran are closed at the first tick.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from iotfin.core.errors import Conflict
from iotfin.db.engine import write_transaction
from iotfin.lending import store
from iotfin.lending.calendar import close_due_through, next_close_at, today
from iotfin.lending.service import DEFAULT_CHUNK, LendingService

LEASE = timedelta(minutes=30)  # renewed between days: a crashed holder frees the close after this


def process_holder() -> str:
    """Who holds the close: host, process and a per-instance suffix (two services in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead(holder: str) -> bool:
    """Whether a holder is a process of this host that no longer runs (a close killed mid-run): its
    lease is taken over at once instead of after it expires. Another host's holder waits for expiry."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class ScheduledClose:
    def __init__(self, lending: LendingService, close_at: str = "00:30", holder: str | None = None,
                 lease: timedelta = LEASE):
        self.lending = lending
        self.engine = lending.engine
        self.close_at = close_at
        self.holder = holder or process_holder()
        self.lease = lease
        # The lease is per holder, and a holder may renew its own lease: two threads of one process
        # (two `POST /lending/close` at once, or one beside the scheduler) would both "hold" it and
        # close the same chunk twice. One run at a time per instance; the other gets Conflict
        # (found by tests/demo_pg/test_two_serve.py).
        self._running = threading.Lock()

    # --- running ------------------------------------------------------------------------------------

    def run(self, through: date, trigger: str = "manual", *, simulate: bool = False,
            chunk: int = DEFAULT_CHUNK) -> dict[str, Any]:
        """Close every open day through `through` under the lock, recorded as one run. A date after
        today is refused before anything is written (unless simulating); Conflict if another process
        is closing."""
        self.lending.check_close_date(through, simulate)
        if not self._running.acquire(blocking=False):
            raise Conflict(f"a close is already running ({self.holder}); try again when it has finished "
                           f"/ 日终结账正在进行中，请稍后再试")
        try:
            return self._run(through, trigger, simulate, chunk)
        finally:
            self._running.release()

    def _run(self, through: date, trigger: str, simulate: bool, chunk: int) -> dict[str, Any]:
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            if not store.take_close_lock(conn, self.holder, now, now + self.lease):
                holder = store.close_lock_holder(conn, now)
                if holder is None or not _dead(holder) or not store.steal_close_lock(conn, holder, self.holder,
                                                                                     now + self.lease):
                        raise Conflict(f"a close is already running ({holder}); try again when it has finished "
                                   f"/ 日终结账正在进行中，请稍后再试")
            store.fail_stale_close_jobs(conn, None)  # we hold the lock: any 'running' run died with its process
            job_id = store.insert_close_job(conn, trigger, through, self.holder)
        days: list[dict[str, Any]] = []
        try:
            for day in self._open_days(through):
                days.append(self.lending.close_day(day, chunk, simulate=simulate))
                renewed = datetime.now(UTC)
                with write_transaction(self.engine) as conn:
                    store.take_close_lock(conn, self.holder, renewed, renewed + self.lease)
        except Exception as exc:
            with write_transaction(self.engine) as conn:
                store.finish_close_job(conn, job_id, "failed", len(days), f"{type(exc).__name__}: {exc}")
                store.release_close_lock(conn, self.holder)
            raise
        with write_transaction(self.engine) as conn:
            store.finish_close_job(conn, job_id, "done", len(days), None)
            store.release_close_lock(conn, self.holder)
        return {"run_id": job_id, "trigger": trigger, "through": through, "days": days}

    def _open_days(self, through: date) -> list[date]:
        """The days `close_through` would close: from the earliest loan's next day (or `through` alone)."""
        with self.engine.connect() as conn:
            earliest = store.earliest_closed(conn)
        if earliest is None or earliest >= through:
            return [through]
        return [earliest + timedelta(days=k) for k in range(1, (through - earliest).days + 1)]

    def tick(self, now: datetime | None = None, *, first: bool = False) -> dict[str, Any] | None:
        """The scheduler's step: close through the last day whose close is due, if it is not closed yet
        (None: nothing to do, or another process is closing)."""
        now = now or datetime.now(UTC)
        due = close_due_through(now, self.close_at)
        with self.engine.connect() as conn:
            closed = store.closed_through(conn)
            running = store.close_lock_holder(conn, now)
        if (closed is not None and closed >= due) or running is not None:
            return None
        try:
            return self.run(due, "catch_up" if first else "schedule")
        except Conflict:  # another process took the lock between our look and our run
            return None

    # --- status -------------------------------------------------------------------------------------

    def status(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        with self.engine.connect() as conn:
            closed = store.closed_through(conn)
            job = store.last_close_job(conn)
            holder = store.close_lock_holder(conn, now)
        last = None if job is None else {
            "id": job.id, "trigger": job.trigger, "through": job.through, "status": job.status, "days": job.days,
            "error": job.error, "started_at": job.started_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}
        return {"closed_through": closed, "today": today(now), "due_through": close_due_through(now, self.close_at),
                "last_run": last, "running": holder is not None, "close_at": self.close_at,
                "timezone": "Asia/Shanghai", "next_run_at": next_close_at(now, self.close_at).isoformat(),
                "simulation": self.lending.simulation}
