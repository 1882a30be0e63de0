"""Queries of consent grants and the access log (SQLAlchemy Core; the tables are in
`iotfin.consent.tables`).

The access log is append-only: rows are inserted, never updated or deleted by the platform, and a
writer batches them (see `AccessLogWriter`) so that logging a read costs a list append, not a commit.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from iotfin.consent.model import Access, Grant
from iotfin.consent.tables import ConsentAccess, ConsentGrant
from iotfin.db.pagination import PageParams, paginate
from iotfin.identity.tables import Enterprise

log = logging.getLogger(__name__)
grants_t = ConsentGrant.__table__
access_t = ConsentAccess.__table__


def to_grant(row: Any) -> Grant:
    return Grant(id=row.id, enterprise_id=row.enterprise_id, recipient=row.recipient, purpose=row.purpose,
                 scopes=frozenset(row.scopes), window_start=row.window_start, window_end=row.window_end,
                 granted_at=row.granted_at, expires_at=row.expires_at, confirmed_at=row.confirmed_at,
                 reconfirm_days=row.reconfirm_days, onward_recipients=frozenset(row.onward_recipients or ()),
                 withdrawn_at=row.withdrawn_at)


def insert_grants(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert validated grant rows; returns their ids in order."""
    if not rows:
        return []
    if conn.dialect.name in ("postgresql", "sqlite"):
        result = conn.execute(insert(grants_t).returning(grants_t.c.id, sort_by_parameter_order=True), list(rows))
        return [r[0] for r in result]
    return [conn.execute(insert(grants_t), row).inserted_primary_key[0] for row in rows]  # pragma: no cover


def known_enterprises(conn: Connection, ids: Iterable[int]) -> set[int]:
    """The ids among `ids` of enterprises that exist."""
    return set(conn.execute(Enterprise.__table__.select().with_only_columns(Enterprise.id)
                            .where(Enterprise.id.in_(ids))).scalars())


def set_withdrawn(conn: Connection, grant_id: int, at: datetime) -> None:
    conn.execute(update(grants_t).where(grants_t.c.id == grant_id).values(withdrawn_at=at))


def set_confirmed(conn: Connection, grant_id: int, at: datetime) -> None:
    conn.execute(update(grants_t).where(grants_t.c.id == grant_id).values(confirmed_at=at))


def get_grant(conn: Connection, grant_id: int, for_update: bool = False) -> Grant | None:
    query = select(grants_t).where(grants_t.c.id == grant_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else to_grant(row)


# Built once: the checks on every read run these with new parameters only (no statement building).
_OF_ENTERPRISE = select(grants_t).where(grants_t.c.enterprise_id == bindparam("e")).order_by(grants_t.c.id)
_OF_PAIR = select(grants_t).where(grants_t.c.enterprise_id == bindparam("e"),
                                  grants_t.c.recipient == bindparam("r")).order_by(grants_t.c.id)
_OF_RECIPIENT = select(grants_t).where(grants_t.c.recipient == bindparam("r")).order_by(grants_t.c.id)
_OF_RECIPIENT_IN = select(grants_t).where(grants_t.c.recipient == bindparam("r"), grants_t.c.enterprise_id.in_(
    bindparam("ids", expanding=True))).order_by(grants_t.c.id)


def grants_for(conn: Connection, enterprise_id: int, recipient: str | None = None) -> list[Grant]:
    if recipient is None:
        return [to_grant(r) for r in conn.execute(_OF_ENTERPRISE, {"e": enterprise_id})]
    return [to_grant(r) for r in conn.execute(_OF_PAIR, {"e": enterprise_id, "r": recipient})]


def grants_of_recipient(conn: Connection, recipient: str, enterprise_ids: Iterable[int] | None = None) -> list[Grant]:
    if enterprise_ids is None:
        return [to_grant(r) for r in conn.execute(_OF_RECIPIENT, {"r": recipient})]
    ids = list(enterprise_ids)
    if len(ids) == 1:
        return [to_grant(r) for r in conn.execute(_OF_PAIR, {"e": ids[0], "r": recipient})]
    return [to_grant(r) for r in conn.execute(_OF_RECIPIENT_IN, {"r": recipient, "ids": ids})]


def grant_records(conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """The grants as the ledger anchors, proves and audits them (its RecordLoader port,
    iotfin.ledger.ports)."""
    query = select(grants_t).order_by(grants_t.c.id)
    if record_ids is not None:
        query = query.where(grants_t.c.id.in_([int(rid) for rid in record_ids]))
    return {str(row["id"]): dict(row) for row in conn.execute(query).mappings()}


def access_rows(accesses: Iterable[Access]) -> list[dict[str, Any]]:
    return [{"enterprise_id": a.enterprise_id, "recipient": a.recipient, "scope": a.scope, "purpose": a.purpose,
             "data_start": a.data_start, "data_end": a.data_end, "at": a.at, "allowed": a.allowed,
             "reason": a.reason, "grant_id": a.grant_id, "onward_to": a.onward_to, "detail": a.detail}
            for a in accesses]


def insert_access(conn: Connection, accesses: Iterable[Access]) -> None:
    """Write access-log rows on the caller's connection (not batched: they commit with its transaction)."""
    conn.execute(insert(access_t), access_rows(accesses))


def list_access(conn: Connection, enterprise_id: int, page: PageParams,
                recipient: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the enterprise's access log, oldest first, and the next cursor."""
    query = select(access_t).where(access_t.c.enterprise_id == enterprise_id)
    if recipient is not None:
        query = query.where(access_t.c.recipient == recipient)
    rows, cursor = paginate(conn, query, access_t.c.id, page)
    return [dict(r._mapping) for r in rows], cursor


class AccessLogWriter:
    """Batches access-log rows: `append` costs a list append under a lock; rows reach the database in
    one multi-row INSERT by a background thread — at once when `max_rows` are pending, otherwise
    `max_delay_s` after the first pending row — or on `flush()` (called before the log is listed, when the workspace closes
    and when the process exits). A crash can lose at most the rows of the last `max_delay_s`;
    grants are never batched.
    """

    def __init__(self, engine: Engine, max_rows: int = 1000, max_delay_s: float = 0.2):
        self.engine = engine
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self._pending: list[Access] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._full = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def append(self, accesses: Sequence[Access]) -> None:
        """Queue rows; the flusher thread writes them (at once when a batch is full), so a read never
        waits for a commit."""
        with self._lock:
            self._pending.extend(accesses)
            full = len(self._pending) >= self.max_rows
            if self._thread is None:
                self._start()
        self._wake.set()
        if full:
            self._full.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="consent-access-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a server that exits without closing its workspace loses nothing

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self._full.wait(self.max_delay_s)  # a full batch goes at once, others after max_delay_s
            self._full.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception:  # the rows stay pending for the next flush; the thread carries on
                log.exception("access log flush failed; %d rows pending", len(self._pending))

    def flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(access_t), access_rows(batch))
            except BaseException:
                with self._lock:  # keep them for the next flush rather than lose them
                    self._pending[:0] = batch
                raise
            self.written += len(batch)
            return len(batch)

    def close(self) -> None:
        if self._thread is not None:
            atexit.unregister(self.close)
        self._stop.set()
        self._wake.set()
        self._full.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def open_grant_pairs(conn: Connection, now: datetime, purposes: Sequence[str]) -> list[tuple[int, str]]:
    """(enterprise id, recipient) of every grant for one of `purposes` that is neither withdrawn nor
    expired at `now` (the scheduled re-rating's population)."""
    g = ConsentGrant.__table__
    q = (select(g.c.enterprise_id, g.c.recipient).distinct()
         .where(g.c.withdrawn_at.is_(None), g.c.expires_at > now, g.c.purpose.in_(list(purposes)))
         .order_by(g.c.enterprise_id, g.c.recipient))
    return [(int(e), str(r)) for e, r in conn.execute(q)]
