"""The receivables context's queries (the only SQL of the context).

Double spending is prevented by moving a holding only out of the state it was read in: every change
to a part is `UPDATE ... WHERE id = ? AND status = ? AND holder = ? AND version = ?` and the caller
checks that exactly one row changed. On SQLite writers are serialised (BEGIN IMMEDIATE); on
PostgreSQL the part is read `FOR UPDATE`, so a racing second writer waits, then sees the winner's
row and is refused naming it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from iotfin.db import prepared
from iotfin.db.pagination import PageParams, paginate
from iotfin.db.prepared import Record
from iotfin.db.statements import records_by_id, where_in
from iotfin.receivables.tables import Voucher, VoucherEvent, VoucherOffer, VoucherPart

V, P, OF, E = Voucher.__table__, VoucherPart.__table__, VoucherOffer.__table__, VoucherEvent.__table__

# The operations' statements are built once, with bound parameters, and executed with each call's
# values: building a statement per call (select(...).where(...), .values(**kw)) and deriving its
# cache key cost ~40 % of a voucher operation's CPU in a py-spy profile (bench/receivables_ops.py);
# a reused statement object keeps its memoised cache key and SQLAlchemy's compiled form.
_INSERT = {t.name: insert(t) for t in (V, P, OF, E)}


def insert_voucher(conn: Connection, **values: Any) -> int:
    return prepared.insert_id(conn, _INSERT[V.name], values)


def insert_part(conn: Connection, **values: Any) -> int:
    return prepared.insert_id(conn, _INSERT[P.name], values)


def insert_event(conn: Connection, **values: Any) -> int:
    return prepared.insert_id(conn, _INSERT[E.name], values)


def insert_offer(conn: Connection, **values: Any) -> int:
    return prepared.insert_id(conn, _INSERT[OF.name], values)


@lru_cache(maxsize=64)
def _update_by_id(table_name: str, keys: tuple[str, ...]) -> Any:
    """UPDATE table SET k = :v_k ... WHERE id = :w_id, built once per set of columns."""
    t = {V.name: V, P.name: P, OF.name: OF}[table_name]
    return update(t).where(t.c.id == bindparam("w_id")).values({k: bindparam(f"v_{k}") for k in keys})


_VOUCHER_COLS = (V.c.id, V.c.number, V.c.issuer_id, V.c.supplier_id, V.c.total_fen, V.c.currency, V.c.issued_on,
                 V.c.matures_on, V.c.status, V.c.evidence_level, V.c.evidence, V.c.transferred, V.c.paid_fen,
                 V.c.paid_on)


_VOUCHER_BY_ID = select(*_VOUCHER_COLS).where(V.c.id == bindparam("w_id"))
_VOUCHER_BY_ID_LOCKED = _VOUCHER_BY_ID.with_for_update()


def voucher(conn: Connection, voucher_id: int, *, lock: bool = False) -> Record | None:
    return prepared.fetch_one(conn, _VOUCHER_BY_ID_LOCKED if lock else _VOUCHER_BY_ID, {"w_id": voucher_id})


def set_voucher(conn: Connection, voucher_id: int, **values: Any) -> None:
    prepared.execute(conn, _update_by_id(V.name, tuple(sorted(values))),
                     {"w_id": voucher_id, **{f"v_{k}": v for k, v in values.items()}})


def cancel_voucher(conn: Connection, voucher_id: int) -> int:
    """Cancel only an active voucher never transferred: conditional, so a racing transfer wins or loses whole."""
    return conn.execute(update(V).where(V.c.id == voucher_id, V.c.status == "active", V.c.transferred.is_(False))
                        .values(status="cancelled")).rowcount


_PART_COLS = (P.c.id, P.c.voucher_id, P.c.start_fen, P.c.end_fen, P.c.holder_kind, P.c.holder_id, P.c.status,
              P.c.depth, P.c.version, P.c.loan_id, P.c.lien_id, P.c.financed_from, P.c.parent_id, P.c.pending_to_id)


def part_row(**values: Any) -> dict[str, Any]:
    """A part as `part` reads it, from the values an operation just wrote (no read back): the
    columns in their order, those not given None."""
    return {c.name: values.get(c.name) for c in _PART_COLS}


def voucher_row(**values: Any) -> dict[str, Any]:
    """A voucher as `voucher` reads it, from the values just written; JSON as its column returns it."""
    out = {c.name: values.get(c.name) for c in _VOUCHER_COLS}
    out["evidence"] = json.loads(json.dumps(out["evidence"]))
    return out


_PART_BY_ID = select(*_PART_COLS).where(P.c.id == bindparam("w_id"))
_PART_BY_ID_LOCKED = _PART_BY_ID.with_for_update()


_PART_NAMES = tuple(c.name for c in _PART_COLS)
_VOUCHER_NAMES = tuple(c.name for c in _VOUCHER_COLS)
_N_PART = len(_PART_NAMES)
_VOUCHER_LABELS = tuple(f"v_{name}" for name in _VOUCHER_NAMES)
_PART_WITH_VOUCHER = (select(*_PART_COLS, *(c.label(n) for c, n in zip(_VOUCHER_COLS, _VOUCHER_LABELS, strict=True)))
                      .join_from(P, V, V.c.id == P.c.voucher_id).where(P.c.id == bindparam("w_id")))
# on PostgreSQL only the part's row is locked, as when the voucher was read on its own
_PART_WITH_VOUCHER_LOCKED = _PART_WITH_VOUCHER.with_for_update(of=P)


def part_with_voucher(conn: Connection, part_id: int, *, lock: bool = False) -> tuple[Record, Record] | None:
    """A part and its voucher in one read (every operation on a part needs both)."""
    row = prepared.fetch_one(conn, _PART_WITH_VOUCHER_LOCKED if lock else _PART_WITH_VOUCHER, {"w_id": part_id})
    if row is None:
        return None
    values = tuple(row.values())
    return (Record(zip(_PART_NAMES, values[:_N_PART], strict=True)),
            Record(zip(_VOUCHER_NAMES, values[_N_PART:], strict=True)))


def part(conn: Connection, part_id: int, *, lock: bool = False) -> Record | None:
    return prepared.fetch_one(conn, _PART_BY_ID_LOCKED if lock else _PART_BY_ID, {"w_id": part_id})


@lru_cache(maxsize=32)
def _move(keys: tuple[str, ...]) -> Any:
    return (update(P).where(P.c.id == bindparam("w_id"), P.c.status == bindparam("w_status"),
                            P.c.holder_kind == bindparam("w_kind"), P.c.holder_id == bindparam("w_holder"),
                            P.c.version == bindparam("w_version"))
            .values({"version": bindparam("v_version"), **{k: bindparam(f"v_{k}") for k in keys}}))


def move_part(conn: Connection, part_id: int, *, expect: str, holder: tuple[str, int], version: int,
              **values: Any) -> int:
    """Change a part only if it is still in state `expect`, held by `holder`, at `version`; the row
    count (0 or 1). `values` are the new column values (status, holder_id, ...)."""
    return prepared.execute(conn, _move(tuple(sorted(values))),
                            {"w_id": part_id, "w_status": expect, "w_kind": holder[0], "w_holder": holder[1],
                             "w_version": version, "v_version": version + 1,
                             **{f"v_{k}": v for k, v in values.items()}})


_PARTS_OF = select(*_PART_COLS).where(P.c.voucher_id == bindparam("w_voucher")).order_by(P.c.start_fen, P.c.id)


def parts_of(conn: Connection, voucher_id: int, statuses: Sequence[str] | None = None) -> list[Record]:
    if statuses is None:
        return prepared.fetch(conn, _PARTS_OF, {"w_voucher": voucher_id})
    stmt, params = where_in(_PARTS_OF, P.c.status, statuses)
    return prepared.fetch(conn, stmt, {"w_voucher": voucher_id, **params})


_RETIRE_PARTS = (update(P).where(P.c.voucher_id == bindparam("w_voucher"))
                 .values(status=bindparam("v_status"), pending_to_id=None, version=P.c.version + 1))


def set_parts_status(conn: Connection, voucher_id: int, statuses: Sequence[str], new: str) -> int:
    """Retire parts (paid, cancelled): a transfer sent and not accepted by then lapses."""
    stmt, params = where_in(_RETIRE_PARTS, P.c.status, statuses)
    return prepared.execute(conn, stmt, {"w_voucher": voucher_id, "v_status": new, **params})


def holdings_page(conn: Connection, holder_kind: str, holder_id: int, page: PageParams,
                  status: str | None = None, incoming: bool = False) -> tuple[list[dict[str, Any]], str | None]:
    """The parts a holder holds; with `incoming`, the parts sent to this enterprise and awaiting its acceptance."""
    q = (select(P.c.id, P.c.voucher_id, V.c.number, V.c.issuer_id, P.c.start_fen, P.c.end_fen, P.c.status,
                P.c.depth, V.c.matures_on, V.c.evidence_level, P.c.loan_id, P.c.lien_id, P.c.holder_kind,
                P.c.holder_id, P.c.pending_to_id)
         .join(V, V.c.id == P.c.voucher_id))
    if incoming:
        q = q.where(P.c.pending_to_id == holder_id) if holder_kind == "enterprise" else q.where(P.c.id.is_(None))
    else:
        q = q.where(P.c.holder_kind == holder_kind, P.c.holder_id == holder_id, P.c.status != "split")
    if status is not None:
        q = q.where(P.c.status == status)
    rows, cursor = paginate(conn, q, P.c.id, page, descending=True)
    return [dict(r._mapping) for r in rows], cursor


def issued_page(conn: Connection, issuer_id: int, page: PageParams) -> tuple[list[dict[str, Any]], str | None]:
    rows, cursor = paginate(conn, select(*_VOUCHER_COLS).where(V.c.issuer_id == issuer_id), V.c.id, page,
                            descending=True)
    return [dict(r._mapping) for r in rows], cursor


_PENDING_OFFER = select(OF.c.id, OF.c.lender_tenant_id, OF.c.created_at).where(
    OF.c.part_id == bindparam("w_part"), OF.c.status == "pending")


def pending_offer(conn: Connection, part_id: int) -> Record | None:
    return prepared.fetch_one(conn, _PENDING_OFFER, {"w_part": part_id})


_OFFER_BY_ID = select(OF.c.id, OF.c.part_id, OF.c.lender_tenant_id, OF.c.holder_id, OF.c.status, OF.c.annual_rate,
                      OF.c.reason, OF.c.created_at, OF.c.decided_at).where(OF.c.id == bindparam("w_id"))
_OFFER_BY_ID_LOCKED = _OFFER_BY_ID.with_for_update()


def offer(conn: Connection, offer_id: int, *, lock: bool = False) -> Record | None:
    return prepared.fetch_one(conn, _OFFER_BY_ID_LOCKED if lock else _OFFER_BY_ID, {"w_id": offer_id})


@lru_cache(maxsize=16)
def _decide(keys: tuple[str, ...]) -> Any:
    return (update(OF).where(OF.c.id == bindparam("w_id"), OF.c.status == "pending")
            .values({"status": bindparam("v_status"), "decided_at": bindparam("v_decided_at"),
                     **{k: bindparam(f"v_{k}") for k in keys}}))


def decide_offer(conn: Connection, offer_id: int, status: str, at: datetime, **values: Any) -> int:
    return prepared.execute(conn, _decide(tuple(sorted(values))),
                            {"w_id": offer_id, "v_status": status, "v_decided_at": at,
                             **{f"v_{k}": v for k, v in values.items()}})


def offers_page(conn: Connection, lender_tenant_id: int | None, page: PageParams, status: str | None
                ) -> tuple[list[dict[str, Any]], str | None]:
    q = (select(OF.c.id, OF.c.part_id, OF.c.lender_tenant_id, OF.c.holder_id, OF.c.status, OF.c.annual_rate, OF.c.reason,
                OF.c.created_at, OF.c.decided_at, P.c.voucher_id, P.c.start_fen, P.c.end_fen)
         .join(P, P.c.id == OF.c.part_id))
    if lender_tenant_id is not None:
        q = q.where(OF.c.lender_tenant_id == lender_tenant_id)
    if status is not None:
        q = q.where(OF.c.status == status)
    rows, cursor = paginate(conn, q, OF.c.id, page, descending=True)
    return [dict(r._mapping) for r in rows], cursor


_LAST_EVENT = (select(E.c.id, E.c.kind, E.c.actor, E.c.detail, E.c.at)
               .where(E.c.part_id == bindparam("w_part")).order_by(E.c.id.desc()).limit(1))


def last_event_of_part(conn: Connection, part_id: int, kinds: Sequence[str]) -> Record | None:
    stmt, params = where_in(_LAST_EVENT, E.c.kind, kinds)
    return prepared.fetch_one(conn, stmt, {"w_part": part_id, **params})


def events_of(conn: Connection, voucher_id: int) -> Sequence[Row[Any]]:
    return conn.execute(select(E.c.id, E.c.part_id, E.c.kind, E.c.actor, E.c.detail, E.c.at)
                        .where(E.c.voucher_id == voucher_id).order_by(E.c.id)).all()


def event_record(event_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """A journal event as `voucher_event_records` reads it back, from the values just inserted: the
    same columns; `detail` as its JSON column returns it (a JSON round trip), `at` a UTC datetime
    either way. What the ledger anchors must be what it later proves from the table."""
    return {"id": event_id, "voucher_id": values["voucher_id"], "part_id": values["part_id"], "kind": values["kind"],
            "actor": values["actor"], "detail": json.loads(json.dumps(values["detail"])), "at": values["at"]}


_EVENTS = select(E).order_by(E.c.id)


def voucher_event_records(conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """Voucher events as the ledger anchors, proves and audits them (its RecordLoader port). Events
    are append-only, so an anchored event stays provable."""
    return records_by_id(conn, _EVENTS, E.c.id, record_ids)


def due_unpaid(conn: Connection, on: date) -> Sequence[Row[Any]]:
    """Active vouchers due on or before `on` and not paid (maturity at risk / late)."""
    return conn.execute(select(*_VOUCHER_COLS).where(V.c.status == "active", V.c.matures_on <= on)
                        .order_by(V.c.matures_on, V.c.id)).all()


def maturing_between(conn: Connection, start: date, end: date) -> Sequence[Row[Any]]:
    return conn.execute(select(*_VOUCHER_COLS).where(V.c.status == "active", V.c.matures_on >= start,
                                                     V.c.matures_on <= end).order_by(V.c.matures_on, V.c.id)).all()


def voucher_history(conn: Connection, enterprise_ids: Sequence[int] | None = None) -> Sequence[Row[Any]]:
    """(issuer_id, supplier_id, total_fen, issued_on, matures_on, status, paid_on, evidence_level) for features."""
    q = select(V.c.issuer_id, V.c.supplier_id, V.c.total_fen, V.c.issued_on, V.c.matures_on, V.c.status,
               V.c.paid_on, V.c.evidence_level)
    if enterprise_ids is not None:
        q = q.where(V.c.issuer_id.in_(enterprise_ids) | V.c.supplier_id.in_(enterprise_ids))
    return conn.execute(q).all()


def live_fen_by_holder(conn: Connection, voucher_id: int) -> dict[tuple[str, int], int]:
    rows = conn.execute(select(P.c.holder_kind, P.c.holder_id, func.sum(P.c.end_fen - P.c.start_fen))
                        .where(P.c.voucher_id == voucher_id, P.c.status.in_(("held", "offered", "financed")))
                        .group_by(P.c.holder_kind, P.c.holder_id)).all()
    return {(k, int(i)): int(s) for k, i, s in rows}
