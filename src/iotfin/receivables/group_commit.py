"""Group commit of voucher operations: many concurrent callers, one durable transaction.

Every acknowledged voucher operation must be durable before its caller hears of it (SQLite with
`synchronous=FULL`: one fsync per commit). Committing each on its own costs one fsync and one
ledger append per operation; instead, operations submitted while a commit runs are queued to one
writer thread, which applies each in its own SAVEPOINT inside one transaction — a refused
operation (a double spend, a matured voucher) rolls back only itself and its caller gets its 4xx
reason with nothing changed — then anchors every applied operation's journal events (and the liens
and discount loans it placed) in one ledger append, commits once, and only then acknowledges each
caller. The same idea as ingest's group commit (iotfin.ingest.group_commit), for synchronous
callers (API worker threads, the CLI, tests):
hand-written because it is ~80 lines over threading and the transaction helpers, with no library
that does savepoint-per-item batching over SQLAlchemy.

Latency stays bounded by one batch plus one commit; a lone caller is committed at once (no delay).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from iotfin.db.engine import driver_cursor

#: what an operation asked to anchor — its journal events, and the liens and loan contracts it
#: placed or changed — as (record type, record id, body); one ledger append anchors the batch's
#: before the commit
ANCHORS_KEY = "iotfin.receivables.anchors"

Op = Callable[[Connection], Any]
AnchorItem = tuple[str, str, dict[str, Any]]
Anchor = Callable[[Connection, list[AnchorItem]], None]


def defer_anchor(conn: Connection, record_type: str, record_id: str, body: dict[str, Any]) -> bool:
    """Have the running batch anchor a record before it commits, with `body` as it stands now (a
    record may change again in the same batch: a lien placed then released). False outside a
    batch: anchor it yourself. A refused operation's items go with its savepoint."""
    pending = conn.info.get(ANCHORS_KEY)
    if pending is None:
        return False
    pending.append((record_type, record_id, body))
    return True


def _begin(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front (see db.engine.write_transaction)


def run_batch(engine: Engine, ops: list[Op], anchor: Anchor | None,
              conn: Connection | None = None) -> list[tuple[bool, Any]]:
    """Apply `ops` in one transaction, each in a savepoint; anchor what the applied ones deferred
    (`defer_anchor`) in one ledger append; commit. Per op (True, result) or (False, exception). An
    error outside the ops (the anchoring, the commit) is raised: nothing of the batch is then
    acknowledged. `conn`: a connection the caller keeps open between batches (the writer thread's)."""
    if conn is None:
        with engine.connect() as own:
            return _apply(own, ops, anchor)
    return _apply(conn, ops, anchor)


def _apply(conn: Connection, ops: list[Op], anchor: Anchor | None) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    anchors: list[AnchorItem] = []
    alone = len(ops) == 1
    _begin(conn)
    try:
        for op in ops:
            conn.info[ANCHORS_KEY] = mine = []
            if alone:  # no savepoint needed: a refusal rolls the whole (one-op) transaction back
                try:
                    out.append((True, op(conn)))
                except Exception as exc:  # noqa: BLE001 - handed to the op's caller
                    conn.info.pop(ANCHORS_KEY, None)
                    conn.rollback()
                    return [(False, exc)]
                anchors += mine
                continue
            # Savepoints straight on the DB-API cursor: SQLAlchemy does not track these (they
            # are not its nested transactions), and its execution path cost more than the
            # statements themselves, twice per operation.
            cursor = driver_cursor(conn)
            cursor.execute("SAVEPOINT voucher_op")
            try:
                result = op(conn)
            except Exception as exc:  # noqa: BLE001 - handed to the op's caller; the others go on
                cursor.execute("ROLLBACK TO SAVEPOINT voucher_op")
                cursor.execute("RELEASE SAVEPOINT voucher_op")
                cursor.close()
                out.append((False, exc))
                continue
            cursor.execute("RELEASE SAVEPOINT voucher_op")
            cursor.close()
            out.append((True, result))
            anchors += mine
        conn.info.pop(ANCHORS_KEY, None)
        if anchors and anchor is not None:
            anchor(conn, anchors)  # one ledger append for every applied operation's records
    except BaseException:
        conn.info.pop(ANCHORS_KEY, None)
        conn.rollback()
        raise
    conn.commit()
    return out


class _Waiter:
    """One caller's wait for its operation's outcome: a lock taken at creation and released by the
    writer once the outcome is set — the lightest hand-over between two threads in CPython (a
    concurrent.futures.Future builds a Condition and a waiter lock per call; measurable at
    thousands of operations a second on the GIL the writer shares)."""

    __slots__ = ("_done", "ok", "value")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.ok = False
        self.value: Any = None

    def set(self, ok: bool, value: Any) -> None:
        self.ok, self.value = ok, value
        self._done.release()

    def outcome(self) -> Any:
        self._done.acquire()
        if self.ok:
            return self.value
        raise self.value


class GroupCommitter:
    """Queue operations to one writer thread; `submit` returns once the operation is durable (or
    raises its refusal). The thread starts on demand and ends after `idle_s` without work."""

    def __init__(self, engine: Engine, anchor: Anchor | None, max_batch: int = 256, idle_s: float = 1.0):
        self.engine = engine
        self.anchor = anchor
        self.max_batch = max_batch
        self.idle_s = idle_s
        self._queue: deque[tuple[Op, _Waiter]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.operations = 0

    def submit(self, op: Op) -> Any:
        waiter = _Waiter()
        with self._cond:
            self._queue.append((op, waiter))
            # not alive: a process forked from one whose writer was running has no such thread
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="voucher-group-commit", daemon=True)
                self._thread.start()
            self._cond.notify()
        return waiter.outcome()

    def _run(self) -> None:
        conn: Connection | None = None  # kept open while there is work: no pool checkout per batch
        try:
            while True:
                with self._cond:
                    if not self._queue:
                        self._cond.wait(self.idle_s)
                        if not self._queue:
                            self._thread = None  # submit starts a new one
                            return
                    batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                try:
                    if conn is None:
                        conn = self.engine.connect()
                    results = run_batch(self.engine, [op for op, _ in batch], self.anchor, conn)
                except BaseException as exc:  # noqa: BLE001 - every waiter hears of the failed commit
                    if conn is not None:  # a failed commit: the next batch starts on a fresh connection
                        conn.close()
                        conn = None
                    for _, waiter in batch:
                        waiter.set(False, exc)
                    continue
                self._acknowledge(batch, results)
        finally:
            if conn is not None:
                conn.close()

    def _acknowledge(self, batch: list[tuple[Op, _Waiter]], results: list[tuple[bool, Any]]) -> None:
        self.commits += 1
        self.operations += len(batch)
        for (_, waiter), (ok, value) in zip(batch, results, strict=True):
            waiter.set(ok, value)
