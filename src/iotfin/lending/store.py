"""Persistence of loan servicing: loan rows <-> the domain's LoanState, the book as numpy arrays for the
vectorised close, journal entries, trial balance and sub-ledger sums.

The close reads and writes the book through the DB-API cursor, not the ORM: a million rows as
Python objects would cost more than the close itself. Money columns keep the platform's Money
type: on SQLite they hold integer fen, on PostgreSQL NUMERIC(18,2) yuan; the SQL of the
close converts at this one place (`_int_expr`, `_money_sql`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Connection, Row, Select, bindparam, case, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iotfin.core.errors import NotFound
from iotfin.core.jsonvalues import jsonable
from iotfin.core.money import FEN, ZERO
from iotfin.db import prepared
from iotfin.db.bulk import copy_int8_columns, copy_rows, draw_ids, read_int8_table
from iotfin.db.pagination import PageParams, paginate
from iotfin.db.statements import records_by_id
from iotfin.identity.tables import Enterprise, RecordOwner, Tenant
from iotfin.lending import model as m
from iotfin.lending import vector as v
from iotfin.lending.tables import (
    CloseJob,
    CloseLock,
    CloseRun,
    CreditLine,
    GlEntry,
    GlLine,
    Loan,
    LoanBill,
    LoanEvent,
    LoanInstalment,
)

PPM = Decimal(1_000_000)
TIER_NAMES = [t.value for t in m.TIER_ORDER]

MONEY_COLS = {"principal_not_due", "accrued", "principal_due", "interest_due", "fee_due", "penalty_due", "subsidy_due",
              "subsidy_received", "cur_principal", "cur_interest", "cur_fee", "cur_subsidy", "provision"}
DATE_COLS = {"last_closed", "overdue_since", "restructured_until", "cur_start", "cur_due"}


def ppm(rate: Decimal) -> int:
    return int(rate * PPM)


def rate(ppm_value: int) -> Decimal:
    return (Decimal(int(ppm_value)) / PPM).quantize(m.RATE_QUANTUM)


# --- one loan as a LoanState ---------------------------------------------------------------------


# The servicing statements of one loan, built once with bound parameters: a voucher payment or a
# repayment runs them per call, and building a statement and deriving its cache key per call cost
# more than executing it (py-spy, bench/receivables_ops.py).
_LOAN_BY_ID = select(Loan).where(Loan.id == bindparam("loan_id"))
_LOAN_BY_ID_LOCKED = _LOAN_BY_ID.with_for_update()
_INSTALMENTS_OF = (select(LoanInstalment).where(LoanInstalment.loan_id == bindparam("loan_id"))
                   .order_by(LoanInstalment.seq))
_BILLS_OF = (select(LoanBill).where(LoanBill.loan_id == bindparam("loan_id"))
             .order_by(LoanBill.due_date, LoanBill.id))


def load_state(conn: Connection, loan_id: int, for_update: bool = False) -> tuple[Any, m.LoanState]:
    query = _LOAN_BY_ID_LOCKED if for_update and conn.dialect.name == "postgresql" else _LOAN_BY_ID
    loan = prepared.fetch_one(conn, query, {"loan_id": loan_id})
    if loan is None:
        raise NotFound(f"no loan {loan_id}")
    schedule = tuple(m.Instalment(i.seq, i.start_date, i.due_date, i.principal, i.interest, i.fee, i.subsidy)
                     for i in prepared.fetch(conn, _INSTALMENTS_OF, {"loan_id": loan_id}))
    bills = tuple(m.Bill(b.due_date, b.fee, b.interest, b.principal)
                  for b in prepared.fetch(conn, _BILLS_OF, {"loan_id": loan_id}))
    cur = next((k for k, i in enumerate(schedule) if i.seq == loan.cur_seq), len(schedule))
    state = m.LoanState(
        loan.id, schedule, rate(loan.penalty_ppm), loan.last_closed, loan.principal_not_due, cur, loan.accrued, bills,
        loan.penalty_due, loan.subsidy_due, loan.subsidy_received, bool(loan.subsidy_clawed), loan.dpd, m.Tier(loan.tier),
        loan.restructured_until, m.Tier(loan.restructured_floor), m.product(loan.product).allocation, loan.provision)
    return loan, state


def save_state(conn: Connection, state: m.LoanState, schedule_changed: bool = False, status: str | None = None) -> None:
    """Write a loan's sub-ledger back: its balances, its unpaid bills and (when changed) its unbilled schedule."""
    cur = state.schedule[state.cur] if state.cur < len(state.schedule) else None
    values: dict[str, Any] = {
        "last_closed": state.last_closed, "principal_not_due": state.principal_not_due,
        "accrued": state.accrued_in_period, "principal_due": state.principal_due, "interest_due": state.interest_due,
        "fee_due": state.fee_due, "penalty_due": state.penalty_due, "subsidy_due": state.subsidy_due,
        "subsidy_received": state.subsidy_received, "subsidy_clawed": state.subsidy_clawed,
        "overdue_since": state.overdue_since, "dpd": state.dpd, "tier": state.tier.value,
        "restructured_until": state.restructured_until, "restructured_floor": state.restructured_floor.value,
        "cur_seq": cur.seq if cur else 0, "cur_start": cur.start if cur else None, "cur_due": cur.due if cur else None,
        "cur_principal": cur.principal if cur else ZERO, "cur_interest": cur.interest if cur else ZERO,
        "cur_fee": cur.fee if cur else ZERO, "cur_subsidy": cur.subsidy if cur else ZERO,
        "provision": state.provision,
    }
    if status is not None:
        values["status"] = status
    elif state.closed:
        values["status"] = "settled"
    prepared.execute(conn, _loan_update(tuple(values)),
                     {"w_loan_id": state.loan_id, **{f"v_{k}": x for k, x in values.items()}})
    prepared.execute(conn, _DELETE_BILLS, {"loan_id": state.loan_id})
    prepared.execute_many(conn, _INSERT_BILL, [{"loan_id": state.loan_id, "due_date": b.due, "fee": b.fee,
                                                "interest": b.interest, "principal": b.principal}
                                               for b in state.bills])
    if schedule_changed:
        tail = state.schedule[state.cur:]
        past_last = state.schedule[state.cur - 1].seq if state.cur else 0
        prepared.execute(conn, _DELETE_INSTALMENTS_AFTER, {"loan_id": state.loan_id, "past_last": past_last})
        insert_schedule(conn, state.loan_id, tail)


@lru_cache(maxsize=8)
def _loan_update(keys: tuple[str, ...]) -> Any:
    """UPDATE loans SET k = :v_k ... WHERE id = :w_loan_id, built once per set of columns."""
    t = Loan.__table__
    return update(t).where(t.c.id == bindparam("w_loan_id")).values({k: bindparam(f"v_{k}") for k in keys})


_DELETE_BILLS = delete(LoanBill.__table__).where(LoanBill.__table__.c.loan_id == bindparam("loan_id"))
_INSERT_BILL = insert(LoanBill.__table__)
_DELETE_INSTALMENTS_AFTER = delete(LoanInstalment.__table__).where(
    LoanInstalment.__table__.c.loan_id == bindparam("loan_id"), LoanInstalment.__table__.c.seq > bindparam("past_last"))
_INSERT_INSTALMENT = insert(LoanInstalment.__table__)


def insert_schedule(conn: Connection, loan_id: int, instalments: tuple[m.Instalment, ...]) -> None:
    if instalments:
        conn.execute(_INSERT_INSTALMENT, [
            {"loan_id": loan_id, "seq": i.seq, "start_date": i.start, "due_date": i.due, "principal": i.principal,
             "interest": i.interest, "fee": i.fee, "subsidy": i.subsidy} for i in instalments])


# --- booking and servicing: loans, credit lines, the audit events ---------------------------------


def insert_loan(conn: Connection, terms: m.Terms, prod: m.Product, first: m.Instalment, enterprise_id: int,
                credit_line_id: int | None, contract_ref: str | None, fee: Decimal) -> int:
    """A signed loan's row: its terms, all its principal not yet due, on its first instalment
    (`insert_schedule` writes the schedule), owing `fee` (zero: `LendingService.book_in` deducts the
    upfront fee from the proceeds). Returns its id."""
    return conn.execute(_INSERT_LOAN, {
        "enterprise_id": enterprise_id, "credit_line_id": credit_line_id, "product": prod.code,
        "method": terms.method.value, "day_count": terms.day_count.value, "principal": terms.principal,
        "rate_ppm": ppm(terms.annual_rate), "subsidy_ppm": ppm(terms.subsidy_rate),
        "penalty_ppm": ppm(m.penalty_rate(terms.annual_rate, prod.penalty_markup)), "term": terms.term,
        "start_date": terms.start, "contract_ref": contract_ref, "last_closed": terms.start,
        "principal_not_due": terms.principal, "cur_seq": first.seq, "cur_start": first.start, "cur_due": first.due,
        "cur_principal": first.principal, "cur_interest": first.interest, "cur_fee": first.fee,
        "cur_subsidy": first.subsidy, "fee_due": fee}).inserted_primary_key[0]


# built once: a loan's insert names ~25 columns, and building it per booking cost ~1.5 ms (py-spy,
# a voucher financing in bench/receivables_ops.py)
_INSERT_LOAN = insert(Loan.__table__)


def lock_loan_ids(conn: Connection) -> int:
    """The first free loan id, for a batch that takes its ids itself; on PostgreSQL the loans table is
    locked until the transaction ends, so that no booking draws an id in between."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE loans IN EXCLUSIVE MODE")
    return (conn.execute(select(func.max(Loan.id))).scalar() or 0) + 1


def insert_loan_batch(conn: Connection, ids: np.ndarray, enterprise_ids: Sequence[int], prod: m.Product, term: int,
                      principal: np.ndarray, rates: np.ndarray, subsidy: np.ndarray, penalty: np.ndarray,
                      starts: np.ndarray, upfront: np.ndarray, sched: v.Schedules) -> None:
    """Term loans of one product and term, in bulk through the DB-API cursor: their rows (on their first
    instalments), their schedules and their upfront fee bills. Integers in: money in fen, rates in ppm,
    dates as day numbers."""
    n = len(ids)
    ph = placeholder(conn)
    cur = _cursor(conn)
    fen = lambda a: money_params(conn, a)  # noqa: E731
    day = date_params
    rows = list(zip(
        ids.tolist(), list(enterprise_ids), [prod.code] * n,
        [prod.method.value] * n, [prod.day_count.value] * n, fen(principal),
        rates.tolist(), subsidy.tolist(), penalty.tolist(), [term] * n,
        day(conn, starts), ["active"] * n, day(conn, starts), fen(principal), fen(upfront),
        day(conn, np.where(upfront > 0, starts, v.NONE)), [1] * n, day(conn, sched.start[:, 0]),
        day(conn, sched.due[:, 0]), fen(sched.principal[:, 0]), fen(sched.interest[:, 0]),
        fen(sched.fee[:, 0]), fen(sched.subsidy[:, 0]), strict=True))
    now = datetime.now(UTC)
    zero = fen(np.zeros(1, np.int64))[0]
    cols = ("id, enterprise_id, product, method, day_count, principal, rate_ppm, subsidy_ppm, penalty_ppm, "
            "term, start_date, status, last_closed, principal_not_due, fee_due, overdue_since, cur_seq, "
            "cur_start, cur_due, cur_principal, cur_interest, cur_fee, cur_subsidy, accrued, "
            "principal_due, interest_due, penalty_due, subsidy_due, subsidy_received, subsidy_clawed, "
            "dpd, tier, restructured_floor, created_at")
    extra = (zero, zero, zero, zero, zero, zero, False, 0, "normal", "normal",
             now.strftime("%Y-%m-%d %H:%M:%S.%f") if conn.dialect.name == "sqlite" else now)
    cur.executemany(f"INSERT INTO loans ({cols}) VALUES ({', '.join([ph] * 34)})", [r + extra for r in rows])
    n_periods = sched.due.shape[1]
    flat_ids = np.repeat(ids, n_periods)
    seqs = np.tile(np.arange(1, n_periods + 1), n)
    instalments = zip(flat_ids.tolist(), seqs.tolist(), day(conn, sched.start.ravel()), day(conn, sched.due.ravel()),
                      fen(sched.principal.ravel()), fen(sched.interest.ravel()), fen(sched.fee.ravel()),
                      fen(sched.subsidy.ravel()), strict=True)
    if conn.dialect.name == "postgresql":  # the schedules are most of a batch's rows: binary COPY
        copy_rows(conn, "loan_instalments", ("loan_id", "seq", "start_date", "due_date", "principal", "interest",
                                             "fee", "subsidy"), ("int8", "int4", "date", "date", *["numeric"] * 4),
                  instalments)
    else:
        cur.executemany("INSERT INTO loan_instalments (loan_id, seq, start_date, due_date, principal, interest, fee, "
                        f"subsidy) VALUES ({', '.join([ph] * 8)})", list(instalments))
    fee_rows = [(int(i), d, f) for i, d, f in zip(ids.tolist(), day(conn, starts), fen(upfront), strict=True) if f]
    if fee_rows:
        cur.executemany("INSERT INTO loan_bills (loan_id, due_date, fee, interest, principal) "
                        f"VALUES ({ph}, {ph}, {ph}, 0, 0)", fee_rows)
    cur.close()


def resync_loan_ids(conn: Connection) -> None:
    """After a batch took its ids itself: later single bookings draw ids after these (PostgreSQL's sequence)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('loans', 'id'), (SELECT max(id) FROM loans))")


def insert_credit_line(conn: Connection, enterprise_id: int, product: str, credit_limit: Decimal,
                       annual_rate: Decimal, expires_on: date) -> int:
    return conn.execute(insert(CreditLine).values(
        enterprise_id=enterprise_id, product=product, credit_limit=credit_limit, rate_ppm=ppm(annual_rate),
        expires_on=expires_on)).inserted_primary_key[0]


def credit_line(conn: Connection, line_id: int | None) -> Row[Any] | None:
    return conn.execute(select(CreditLine).where(CreditLine.id == line_id)).first()


def set_line_status(conn: Connection, line_id: int, status: str) -> None:
    conn.execute(update(CreditLine).where(CreditLine.id == line_id).values(status=status))


def line_outstanding(conn: Connection, line_id: int) -> Decimal:
    """Principal outstanding (due or not) on the active loans drawn under a credit line."""
    used = conn.execute(select(func.coalesce(func.sum(Loan.principal_not_due), 0),
                               func.coalesce(func.sum(Loan.principal_due), 0))
                        .where(Loan.credit_line_id == line_id, Loan.status == "active")).one()
    return sum((sum_money(conn, x) for x in used), ZERO)


def mark_written_off(conn: Connection, loan_id: int, total: Decimal, on: date) -> None:
    conn.execute(update(Loan).where(Loan.id == loan_id).values(written_off=total, written_off_on=on))


def recovery_position(conn: Connection, loan_id: int) -> Row[Any] | None:
    """A loan's status, the amount written off and what has been recovered of it (None: no such loan)."""
    return conn.execute(select(Loan.status, Loan.written_off, Loan.recovered).where(Loan.id == loan_id)).first()


def set_recovered(conn: Connection, loan_id: int, recovered: Decimal) -> None:
    conn.execute(update(Loan).where(Loan.id == loan_id).values(recovered=recovered))


def record_event(conn: Connection, kind: str, on: date, actor: str, loan_id: int | None = None,
                 credit_line_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
    """An audit event of a loan or a credit line."""
    prepared.execute(conn, _INSERT_EVENT, {"loan_id": loan_id, "credit_line_id": credit_line_id, "kind": kind,
                                           "business_date": on, "actor": actor, "detail": jsonable(detail or {}),
                                           "at": datetime.now(UTC)})


_INSERT_EVENT = insert(LoanEvent.__table__)


def loan_events(conn: Connection, loan_id: int) -> Sequence[Row[Any]]:
    """A loan's events in order: kind, business date, actor, detail."""
    return conn.execute(select(LoanEvent.kind, LoanEvent.business_date, LoanEvent.actor, LoanEvent.detail)
                        .where(LoanEvent.loan_id == loan_id).order_by(LoanEvent.id)).all()


def relief_granted(conn: Connection, loan_id: int, request_ref: str) -> dict[str, Any] | None:
    """The detail of the restructuring that granted the relief request `request_ref` on a loan, if any."""
    for (detail,) in conn.execute(select(LoanEvent.detail).where(
            LoanEvent.loan_id == loan_id, LoanEvent.kind == "restructured").order_by(LoanEvent.id)):
        if detail.get("request_ref") == request_ref:
            return dict(detail) | {"loan_id": loan_id}
    return None


# --- the general ledger -------------------------------------------------------------------------


def post(conn: Connection, entries: list[m.JournalEntry]) -> int:
    """Insert balanced entries (each checked again here); returns how many."""
    for entry in entries:
        m.check_balanced(entry)
    if not entries:
        return 0
    at = datetime.now(UTC)
    heads = [{"event": e.event, "business_date": e.business_date, "loan_id": e.loan_id, "memo": e.memo[:200],
              "at": at} for e in entries]
    if len(entries) == 1:
        ids = [prepared.insert_id(conn, _INSERT_GL_ENTRY, heads[0])]
    else:  # the ids drawn first, then one statement for the entries and one for all their lines
        ids = _next_entry_ids(conn, len(entries))
        prepared.execute_many(conn, _INSERT_GL_ENTRY, [{"id": i, **h} for i, h in zip(ids, heads, strict=True)])
    prepared.execute_many(conn, _INSERT_GL_LINE, [
        {"entry_id": entry_id, "account": ln.account, "debit": ln.debit, "credit": ln.credit}
        for entry_id, entry in zip(ids, entries, strict=True) for ln in entry.lines])
    return len(entries)


# built once (see _LOAN_BY_ID): every booking, repayment and voucher payment posts entries
_INSERT_GL_ENTRY = insert(GlEntry.__table__)
_LAST_ENTRY_ID = select(func.coalesce(func.max(GlEntry.__table__.c.id), 0))


def _next_entry_ids(conn: Connection, count: int) -> list[int]:
    """Ids for `count` new journal entries. SQLAlchemy's multi-row INSERT ... RETURNING falls back to
    one INSERT per row on SQLite when it must keep the parameters' order (a voucher payment posted
    five). On SQLite the caller holds the write lock (ids past the largest are free); on PostgreSQL
    they come from the column's sequence."""
    if conn.dialect.name == "postgresql":
        return draw_ids(conn, "gl_entries", count)
    first = int(conn.execute(_LAST_ENTRY_ID).scalar_one()) + 1
    return list(range(first, first + count))


_INSERT_GL_LINE = insert(GlLine.__table__)


def trial_balance(conn: Connection, through: date | None = None) -> dict[str, tuple[Decimal, Decimal]]:
    query = (select(GlLine.account, func.sum(GlLine.debit), func.sum(GlLine.credit))
             .join(GlEntry, GlEntry.id == GlLine.entry_id).group_by(GlLine.account).order_by(GlLine.account))
    if through is not None:
        query = query.where(GlEntry.business_date <= through)
    out = {}
    for account, debit, credit in conn.execute(query).all():
        out[account] = (sum_money(conn, debit), sum_money(conn, credit))
    return out


def sum_money(conn: Connection, value: Any) -> Decimal:
    """A SUM over a Money column: typed (a Decimal in yuan) when SQLAlchemy knows the column, raw
    otherwise (integer fen on SQLite)."""
    if value is None:
        return ZERO
    if isinstance(value, int) and conn.dialect.name == "sqlite":
        return (Decimal(value) / 100).quantize(FEN)
    return Decimal(value).quantize(FEN)


def subledger_totals(conn: Connection) -> dict[str, Decimal]:
    """What the loan sub-ledger says each GL control account should hold."""
    cols = {m.NOT_DUE: Loan.principal_not_due, m.ACCRUED: Loan.accrued, m.PENALTY_RECV: Loan.penalty_due,
            m.SUBSIDY_RECV: Loan.subsidy_due, m.ALLOWANCE: Loan.provision}
    row = conn.execute(select(*(func.sum(c) for c in cols.values()))).one()
    out = {acc: sum_money(conn, val) for acc, val in zip(cols, row, strict=True)}
    out[m.ALLOWANCE] = -out[m.ALLOWANCE]  # a contra-asset: its GL balance is a credit
    bills = conn.execute(select(func.sum(LoanBill.principal), func.sum(LoanBill.interest), func.sum(LoanBill.fee))).one()
    out[m.PRINCIPAL_DUE], out[m.INTEREST_DUE], out[m.FEE_RECV] = (sum_money(conn, x) for x in bills)
    loans = conn.execute(select(func.sum(Loan.principal_due), func.sum(Loan.interest_due), func.sum(Loan.fee_due))).one()
    # the loan rows carry the bills' totals too (the close reads them); they must agree with the bills
    out["loans.principal_due"], out["loans.interest_due"], out["loans.fee_due"] = (sum_money(conn, x) for x in loans)
    return out


# --- the portfolio report -----------------------------------------------------------------------


def _among(stmt: Select, among: Select | None) -> Select:
    """Only the loans `among` selects (a lender's own book), or all."""
    return stmt if among is None else stmt.where(Loan.id.in_(among))


def active_by_tier(conn: Connection, among: Select | None = None,
                   ) -> list[tuple[str, int, Decimal, Decimal, Decimal, Decimal, Decimal]]:
    """Active loans per tier: tier, loans, principal not due, principal due, interest due, penalty due, provision."""
    rows = conn.execute(_among(select(Loan.tier, func.count(), func.sum(Loan.principal_not_due),
                                      func.sum(Loan.principal_due), func.sum(Loan.interest_due),
                                      func.sum(Loan.penalty_due), func.sum(Loan.provision))
                               .where(Loan.status == "active"), among).group_by(Loan.tier)).all()
    return [(tier, count, *(sum_money(conn, x) for x in sums)) for tier, count, *sums in rows]


def count_loans(conn: Connection, status: str, among: Select | None = None) -> int:
    return conn.execute(_among(select(func.count()).where(Loan.status == status), among)).scalar()


def written_off_totals(conn: Connection, among: Select | None = None) -> tuple[int, Decimal, Decimal]:
    """Written-off loans: how many, the amount written off and what has been recovered."""
    count, total, recovered = conn.execute(_among(select(func.count(), func.sum(Loan.written_off), func.sum(Loan.recovered))
                                                  .where(Loan.status == "written_off"), among)).one()
    return count, sum_money(conn, total), sum_money(conn, recovered)


def active_by_dpd_bucket(conn: Connection, buckets: Sequence[tuple[str, int | None]],
                         among: Select | None = None) -> dict[str, int]:
    """Active loans per delinquency bucket (name, highest days past due in it; the last one open-ended)."""
    bucket = case(*((Loan.dpd <= hi, name) for name, hi in buckets[:-1]), else_=buckets[-1][0])
    return {name: count for name, count in conn.execute(
        _among(select(bucket, func.count()).where(Loan.status == "active"), among).group_by(bucket)).all()}


def vintage_rows(conn: Connection, among: Select | None = None) -> tuple[date | None, list[Row[Any]]]:
    """The book as of its last close, and every loan's origination, principal and delinquency state
    (for vintage curves: one narrow row per loan, a few thousand in a bank's book)."""
    as_of = conn.execute(_among(select(func.max(Loan.last_closed)), among)).scalar()
    rows = conn.execute(_among(select(Loan.start_date, Loan.principal, Loan.dpd, Loan.overdue_since, Loan.status,
                                      Loan.written_off_on), among)).all()
    return as_of, list(rows)


# --- the book as arrays, for the vectorised close ------------------------------------------------


def money_params(conn: Connection, values: np.ndarray) -> list[Any]:
    if conn.dialect.name == "sqlite":
        return values.tolist()
    return [Decimal(int(x)).scaleb(-2) for x in values.tolist()]


def _days_out(values: np.ndarray) -> list[Any]:
    text = np.datetime_as_string(values.astype("datetime64[D]"))
    return [None if n == v.NONE else s for n, s in zip(values.tolist(), text.tolist(), strict=True)]


def date_params(conn: Connection, values: np.ndarray) -> list[Any]:
    out = _days_out(values)
    if conn.dialect.name == "sqlite":
        return out
    return [None if s is None else date.fromisoformat(s) for s in out]


READ_COLS = ("id",) + v.BOOK_COLUMNS


def _int_expr(conn: Connection, column: str) -> str:
    """SQL that reads a loans column as the close's integer: dates as days since 1970 (-1 for none),
    money as fen, tiers as their index. The database does the conversion, so a chunk arrives as
    rows of integers that numpy takes in one call."""
    sqlite = conn.dialect.name == "sqlite"
    if column in DATE_COLS:
        return _days_expr(conn, column)
    if column in MONEY_COLS:
        return column if sqlite else f"CAST({column} * 100 AS BIGINT)"
    if column in ("tier", "restructured_floor"):
        return "CASE " + " ".join(f"WHEN {column} = '{t}' THEN {i}" for i, t in enumerate(TIER_NAMES)) + " END"
    if column == "subsidy_clawed":
        return f"CAST({column} AS INTEGER)"
    return column


def _days_expr(conn: Connection, column: str) -> str:
    if conn.dialect.name == "sqlite":
        return f"COALESCE(CAST(julianday({column}) - 2440587.5 AS INTEGER), -1)"
    return f"COALESCE({column} - DATE '1970-01-01', -1)"


def _date_sql(conn: Connection, ph: str) -> str:
    """SQL turning a days-since-1970 parameter (-1: none) into a date."""
    if conn.dialect.name == "sqlite":
        return f"CASE WHEN {ph} < 0 THEN NULL ELSE date({ph} * 86400, 'unixepoch') END"
    return f"CASE WHEN {ph}::int < 0 THEN NULL ELSE DATE '1970-01-01' + {ph}::int END"


def _money_sql(conn: Connection, ph: str) -> str:
    return ph if conn.dialect.name == "sqlite" else f"{ph}::bigint / 100.0"


def _cursor(conn: Connection) -> Any:
    return conn.connection.driver_connection.cursor()


def read_chunk(conn: Connection, on: date, after_id: int, limit: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Active loans not yet closed for `on`, in id order after `after_id`: ids and the book arrays."""
    ph = placeholder(conn)
    pg = conn.dialect.name == "postgresql"
    # PostgreSQL: every column a bigint, so the chunk comes as fixed-width binary COPY rows numpy
    # reads in one call (no Python int per value: 3.1 M a chunk)
    cols = ", ".join(f"({_int_expr(conn, c)})::int8" if pg else _int_expr(conn, c) for c in READ_COLS)
    sql = f"SELECT {cols} FROM loans WHERE status = 'active' AND last_closed < {ph} AND id > {ph} ORDER BY id LIMIT {ph}"
    params = (_date_param(conn, on), after_id, limit)
    if pg:
        table = read_int8_table(conn, sql, params, len(READ_COLS))
        if not table.size:
            return np.zeros(0, np.int64), {}
    else:
        cur = _cursor(conn)
        cur.execute(sql, params)
        rows = cur.fetchall()
        cur.close()
        if not rows:
            return np.zeros(0, np.int64), {}
        table = np.array(rows, dtype=np.int64)
    return table[:, 0].copy(), {name: table[:, k + 1].copy() for k, name in enumerate(READ_COLS[1:])}


def _date_param(conn: Connection, d: date) -> Any:
    return d.isoformat() if conn.dialect.name == "sqlite" else d


def placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


DAILY_COLS = ("accrued", "penalty_due", "dpd", "tier", "provision")
CHANGED_COLS = ("principal_not_due", "principal_due", "interest_due", "fee_due", "subsidy_due", "subsidy_received",
                "subsidy_clawed", "overdue_since") + v.CUR_COLUMNS


def _set_sql(conn: Connection, column: str, ph: str) -> str:
    if column in DATE_COLS:
        return f"{column} = {_date_sql(conn, ph)}"
    if column in MONEY_COLS:
        return f"{column} = {_money_sql(conn, ph)}"
    if column in ("tier", "restructured_floor"):
        return f"{column} = ({ph})"
    if column == "subsidy_clawed":
        return f"{column} = ({ph} = 1)" if conn.dialect.name == "postgresql" else f"{column} = {ph}"
    return f"{column} = {ph}"


def write_chunk(conn: Connection, ids: np.ndarray, book: dict[str, np.ndarray], result: v.CloseResult,
                on: date) -> None:
    """Write a closed chunk back: what changes every day for every loan, then the loans that were
    billed or clawed back, then their new bills. Integers go in; the database makes dates and money."""
    if conn.dialect.name == "postgresql":
        _write_chunk_copy(conn, ids, book, result, on)
        return
    ph = placeholder(conn)
    cur = _cursor(conn)

    def column(name: str, idx: np.ndarray | slice) -> list[Any]:
        values = book[name][idx]
        if name in ("tier", "restructured_floor"):
            return [TIER_NAMES[t] for t in values.tolist()]
        return values.tolist()

    every = slice(None)
    sets = ", ".join(_set_sql(conn, c, ph) for c in DAILY_COLS)
    cur.executemany(f"UPDATE loans SET {sets}, last_closed = {_date_sql(conn, str(v.day(on)))} WHERE id = {ph}",
                    list(zip(*(column(c, every) for c in DAILY_COLS), ids.tolist(), strict=True)))
    changed = result.changed
    if changed.size:
        names = [c for c in CHANGED_COLS]
        params = [column(c, changed) for c in names]
        # a date parameter appears twice in its CASE: pass it twice
        sets_parts, cols = [], []
        for c, values in zip(names, params, strict=True):
            sets_parts.append(_set_sql(conn, c, ph))
            cols += [values, values] if c in DATE_COLS else [values]
        cur.executemany(f"UPDATE loans SET {', '.join(sets_parts)} WHERE id = {ph}",
                        list(zip(*cols, ids[changed].tolist(), strict=True)))
    bills = result.bills
    if bills["loan"].size:
        due = bills["due"].tolist()
        cur.executemany(
            f"INSERT INTO loan_bills (loan_id, due_date, fee, interest, principal) VALUES ({ph}, "
            f"{_date_sql(conn, ph)}, {_money_sql(conn, ph)}, {_money_sql(conn, ph)}, {_money_sql(conn, ph)})",
            list(zip(ids[bills["loan"]].tolist(), due, due, bills["fee"].tolist(), bills["interest"].tolist(),
                     bills["principal"].tolist(), strict=True)))
    cur.close()


_PG_TIERS = "ARRAY[" + ", ".join(f"'{t}'" for t in TIER_NAMES) + "]::varchar[]"


def _pg_set(column: str) -> str:
    """SET of one column from the staging table `t` (integers: fen, days since 1970 with -1 for none,
    tiers as their index)."""
    if column in DATE_COLS:
        return f"{column} = CASE WHEN t.{column} < 0 THEN NULL ELSE DATE '1970-01-01' + t.{column}::int END"
    if column in MONEY_COLS:
        return f"{column} = t.{column} / 100.0"
    if column == "subsidy_clawed":
        return f"{column} = (t.{column} = 1)"
    if column in ("tier", "restructured_floor"):
        return f"{column} = ({_PG_TIERS})[t.{column} + 1]"
    return f"{column} = t.{column}"


def _write_chunk_copy(conn: Connection, ids: np.ndarray, book: dict[str, np.ndarray], result: v.CloseResult,
                      on: date) -> None:
    """PostgreSQL: the chunk's rows by binary COPY into staging tables (dropped at commit), then one
    set-based UPDATE ... FROM each; executemany sent 100,000 single-row UPDATEs per chunk. The staging
    rows are all bigints (tiers as their index), so numpy builds each COPY stream in one go."""

    def stage(table: str, names: Sequence[str], idx: np.ndarray | slice) -> None:
        conn.exec_driver_sql(f"CREATE TEMP TABLE {table} (id int8, {', '.join(f'{c} int8' for c in names)}) "
                             "ON COMMIT DROP")
        copy_int8_columns(conn, table, ("id", *names), [ids[idx], *(book[c][idx] for c in names)])

    # The chunk's id range (ids ascend) lets the planner read only the chunk's part of `loans` by its
    # primary key; without it, each chunk's join hashed the whole table (10 full scans a day at 1 M).
    within = f"loans.id BETWEEN {int(ids[0])} AND {int(ids[-1])}"
    closed = f"last_closed = DATE '{on.isoformat()}'"
    # Each loan is updated once: the changed loans (billed, clawed back) with all their columns, the
    # others with the daily ones (updating a changed loan twice wrote two row versions of it).
    changed = result.changed
    rest = np.ones(ids.size, bool)
    rest[changed] = False
    if rest.any():
        stage("close_daily", DAILY_COLS, np.flatnonzero(rest))
        conn.exec_driver_sql(f"UPDATE loans SET {', '.join(_pg_set(c) for c in DAILY_COLS)}, {closed} "
                             f"FROM close_daily t WHERE loans.id = t.id AND {within}")
    if changed.size:
        stage("close_changed", DAILY_COLS + CHANGED_COLS, changed)
        conn.exec_driver_sql(f"UPDATE loans SET {', '.join(_pg_set(c) for c in DAILY_COLS + CHANGED_COLS)}, {closed} "
                             f"FROM close_changed t WHERE loans.id = t.id AND {within}")
    bills = result.bills
    if bills["loan"].size:
        copy_rows(conn, "loan_bills", ("loan_id", "due_date", "fee", "interest", "principal"),
                  ("int8", "date", "numeric", "numeric", "numeric"),
                  ((loan, v.to_date(due), Decimal(fee).scaleb(-2), Decimal(interest).scaleb(-2),
                    Decimal(principal).scaleb(-2))
                   for loan, due, fee, interest, principal in zip(
                       ids[bills["loan"]].tolist(), bills["due"].tolist(), bills["fee"].tolist(),
                       bills["interest"].tolist(), bills["principal"].tolist(), strict=True)))


def next_instalments(conn: Connection, ids: np.ndarray) -> v.NextInstalments:
    """For the close: the instalment after (loan, seq), for the loans billed today."""

    def fetch(loan_idx: np.ndarray, seqs: np.ndarray) -> dict[str, np.ndarray]:
        want_ids, want_seq = ids[loan_idx], seqs + 1
        ph = placeholder(conn)
        cols = ", ".join(["loan_id", "seq"] + [_days_expr(conn, c) for c in ("start_date", "due_date")] +
                         [c if conn.dialect.name == "sqlite" else f"CAST({c} * 100 AS BIGINT)"
                          for c in ("principal", "interest", "fee", "subsidy")])
        cur = _cursor(conn)
        rows: list[tuple[int, ...]] = []
        step = 1000
        for start in range(0, len(want_ids), step):
            part_ids = want_ids[start:start + step].tolist()
            cur.execute(f"SELECT {cols} FROM loan_instalments WHERE loan_id IN ({', '.join([ph] * len(part_ids))})",
                        part_ids)
            rows += cur.fetchall()
        cur.close()
        out = {k: np.zeros(len(want_ids), np.int64) for k in v.CUR_COLUMNS}
        out["cur_start"][:] = v.NONE
        out["cur_due"][:] = v.NONE
        if rows:
            table = np.array(rows, dtype=np.int64)
            # match (loan, seq) pairs: sort the fetched rows by key, look the wanted keys up
            key = table[:, 0] * 100_000 + table[:, 1]
            order = np.argsort(key)
            key = key[order]
            wanted = want_ids * 100_000 + want_seq
            pos = np.clip(np.searchsorted(key, wanted), 0, len(key) - 1)
            hit = key[pos] == wanted
            found = table[order][pos[hit]]
            for k, name in enumerate(("cur_seq", "cur_start", "cur_due", "cur_principal", "cur_interest", "cur_fee",
                                      "cur_subsidy")):
                out[name][hit] = found[:, k + 1]
        return out

    return fetch


# --- the close's runs -----------------------------------------------------------------------------


def lagging_close(conn: Connection, on: date) -> date | None:
    """The earliest day an active loan was last closed, if it is before the day before `on`."""
    return conn.execute(select(func.min(Loan.last_closed)).where(
        Loan.status == "active", Loan.last_closed < on - timedelta(days=1))).scalar()


def earliest_closed(conn: Connection) -> date | None:
    """The earliest day an active loan was last closed (None: no active loan)."""
    return conn.execute(select(func.min(Loan.last_closed)).where(Loan.status == "active")).scalar()


def close_run_status(conn: Connection, on: date) -> str | None:
    return conn.execute(select(CloseRun.status).where(CloseRun.business_date == on)).scalar_one_or_none()


def insert_close_run(conn: Connection, on: date) -> None:
    conn.execute(insert(CloseRun).values(business_date=on, status="running", loans_closed=0, chunks=0))


def reopen_close_run(conn: Connection, on: date) -> None:
    conn.execute(update(CloseRun).where(CloseRun.business_date == on).values(status="running"))


def count_close_chunk(conn: Connection, on: date, closed: int) -> None:
    """A chunk of the run is done: `closed` loans more."""
    conn.execute(update(CloseRun).where(CloseRun.business_date == on).values(
        loans_closed=CloseRun.loans_closed + closed, chunks=CloseRun.chunks + 1))


def finish_close_run(conn: Connection, on: date) -> None:
    conn.execute(update(CloseRun).where(CloseRun.business_date == on).values(
        status="done", finished_at=datetime.now(UTC)))


def cache_chunk_pages(conn: Connection) -> None:
    """On SQLite, a page cache big enough that a chunk's pages stay cached between its read and its write."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA cache_size = -262144")


def hold_book_for_chunk(conn: Connection) -> None:
    """A close chunk reads its loans, computes, and writes them back in one transaction. On SQLite
    that transaction holds the database's write lock from its start (BEGIN IMMEDIATE). On PostgreSQL
    the read takes no row locks: a repayment or servicing change committed by another process
    between the chunk's read and its UPDATE would be overwritten with values computed from the old
    row. EXCLUSIVE mode lets reads of `loans` go on but makes writers (and SELECT ... FOR UPDATE)
    wait for the chunk's commit — seconds — one table lock instead of 100,000 row locks (each a
    tuple write). A writer already holding a loan is waited for before the chunk reads."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE loans IN EXCLUSIVE MODE")


def loan_contract_records(conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """What signed loan contracts commit to in the ledger (its RecordLoader port, iotfin.ledger.ports): their
    terms, which never change after signing (rescheduling is a new event, not an edit of the contract)."""
    return records_by_id(conn, _CONTRACTS, Loan.id, record_ids)


_CONTRACTS = select(Loan.id, Loan.contract_ref, Loan.enterprise_id, Loan.credit_line_id, Loan.product,
                    Loan.method, Loan.day_count, Loan.principal, Loan.rate_ppm, Loan.subsidy_ppm,
                    Loan.penalty_ppm, Loan.term, Loan.start_date).order_by(Loan.id)


# --- the scheduled close: its runs, its lock across processes, the events it sends -----------------

CLOSE_LOCK = "daily_close"


def take_close_lock(conn: Connection, holder: str, now: datetime, lease_until: datetime) -> bool:
    """Take (or renew) the close's lease if it is free, expired or already ours: one conditional
    UPDATE, atomic on both backends; True when this holder has it."""
    if conn.execute(select(CloseLock.name).where(CloseLock.name == CLOSE_LOCK)).first() is None:
        # two processes may both find no row (PostgreSQL: both reads see none): the loser's insert
        # must not fail, the conditional UPDATE below decides (found by tests/demo_pg/test_two_processes.py)
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(dialect_insert(CloseLock).values(name=CLOSE_LOCK, holder=None, lease_until=None)
                     .on_conflict_do_nothing())
    free = (CloseLock.holder.is_(None)) | (CloseLock.lease_until < now) | (CloseLock.holder == holder)
    done = conn.execute(update(CloseLock).where(CloseLock.name == CLOSE_LOCK, free)
                        .values(holder=holder, lease_until=lease_until))
    return done.rowcount == 1


def release_close_lock(conn: Connection, holder: str) -> None:
    conn.execute(update(CloseLock).where(CloseLock.name == CLOSE_LOCK, CloseLock.holder == holder)
                 .values(holder=None, lease_until=None))


def close_lock_holder(conn: Connection, now: datetime) -> str | None:
    row = conn.execute(select(CloseLock.holder, CloseLock.lease_until).where(CloseLock.name == CLOSE_LOCK)).first()
    return row.holder if row is not None and row.holder is not None and row.lease_until >= now else None


def insert_close_job(conn: Connection, trigger: str, through: date, holder: str) -> int:
    return conn.execute(insert(CloseJob).values(trigger=trigger, through=through, status="running", days=0,
                                                holder=holder, started_at=datetime.now(UTC))).inserted_primary_key[0]


def finish_close_job(conn: Connection, job_id: int, status: str, days: int, error: str | None) -> None:
    conn.execute(update(CloseJob).where(CloseJob.id == job_id).values(
        status=status, days=days, error=error[:500] if error else None, finished_at=datetime.now(UTC)))


def fail_stale_close_jobs(conn: Connection, holder_alive: str | None) -> None:
    """Runs left 'running' by a process that died (the lease is no longer theirs) are failed."""
    stale = update(CloseJob).where(CloseJob.status == "running")
    if holder_alive is not None:
        stale = stale.where(CloseJob.holder != holder_alive)
    conn.execute(stale.values(status="failed", error="the process running it stopped", finished_at=datetime.now(UTC)))


def last_close_job(conn: Connection) -> Row | None:
    return conn.execute(select(CloseJob).order_by(CloseJob.id.desc()).limit(1)).first()


def closed_through(conn: Connection) -> date | None:
    """The latest business date whose close finished (None: never closed)."""
    return conn.execute(select(func.max(CloseRun.business_date)).where(CloseRun.status == "done")).scalar()


def instalments_due_on(conn: Connection, due: date) -> list[Row]:
    """Instalments of active loans falling due on `due` (not yet billed): for repayment.due."""
    i = LoanInstalment
    return list(conn.execute(
        select(i.loan_id, i.seq, i.due_date, i.principal, i.interest, i.fee, i.subsidy, Loan.enterprise_id)
        .join(Loan, Loan.id == i.loan_id)
        .where(Loan.status == "active", i.due_date == due, Loan.cur_seq > 0, i.seq >= Loan.cur_seq)
        .order_by(i.loan_id)))


def bills_first_overdue(conn: Connection, on: date) -> list[Row]:
    """Unpaid bills of active loans due the day before `on`: at the close of `on` they are overdue for
    the first time (days past due 1)."""
    b = LoanBill
    return list(conn.execute(
        select(b.loan_id, b.due_date, b.fee, b.interest, b.principal, Loan.enterprise_id, Loan.dpd)
        .join(Loan, Loan.id == b.loan_id)
        .where(Loan.status == "active", b.due_date == on - timedelta(days=1))
        .order_by(b.loan_id)))


def loan_enterprise(conn: Connection, loan_id: int) -> int | None:
    return conn.execute(select(Loan.enterprise_id).where(Loan.id == loan_id)).scalar()



# --- lists and look-ups of the open API (offers' booking, GET /lending/...) --------------------------


_ENTERPRISE_EXISTS = select(Enterprise.id).where(Enterprise.id == bindparam("eid"))


def enterprise_exists(conn: Connection, enterprise_id: int) -> bool:
    return conn.execute(_ENTERPRISE_EXISTS, {"eid": enterprise_id}).first() is not None


def _filtered(stmt: Select, table: Any, enterprise_id: int | None, status: str | None, among: Select | None) -> Select:
    if enterprise_id is not None:
        stmt = stmt.where(table.enterprise_id == enterprise_id)
    if status is not None:
        stmt = stmt.where(table.status == status)
    if among is not None:
        stmt = stmt.where(table.id.in_(among))
    return stmt


def loans_page(conn: Connection, page: PageParams, *, enterprise_id: int | None = None, status: str | None = None,
               among: Select | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of loans, newest first: of one enterprise, in one status, among the ids `among` selects
    (a lender's own loans)."""
    stmt = _filtered(select(Loan.id, Loan.enterprise_id, Loan.credit_line_id, Loan.product, Loan.principal,
                            Loan.rate_ppm, Loan.subsidy_ppm, Loan.term, Loan.start_date, Loan.status, Loan.tier,
                            Loan.dpd, Loan.principal_not_due, Loan.principal_due, Loan.interest_due, Loan.fee_due,
                            Loan.penalty_due, Loan.contract_ref), Loan, enterprise_id, status, among)
    rows, cursor = paginate(conn, stmt, Loan.id, page, descending=True)
    items = []
    for r in rows:
        d = dict(r._mapping)
        d["annual_rate"], d["subsidy_rate"] = rate(d.pop("rate_ppm")), rate(d.pop("subsidy_ppm"))
        items.append(d)
    return items, cursor


def lines_page(conn: Connection, page: PageParams, *, enterprise_id: int | None = None, status: str | None = None,
               among: Select | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of credit lines, newest first, with what is drawn under each."""
    drawn = (select(func.coalesce(func.sum(Loan.principal_not_due + Loan.principal_due), 0))
             .where(Loan.credit_line_id == CreditLine.id, Loan.status == "active").scalar_subquery())
    stmt = _filtered(select(CreditLine.id, CreditLine.enterprise_id, CreditLine.product, CreditLine.credit_limit,
                            CreditLine.rate_ppm, CreditLine.expires_on, CreditLine.status, CreditLine.created_at,
                            drawn.label("drawn")), CreditLine, enterprise_id, status, among)
    rows, cursor = paginate(conn, stmt, CreditLine.id, page, descending=True)
    items = []
    for r in rows:
        d = dict(r._mapping)
        d["annual_rate"] = rate(d.pop("rate_ppm"))
        d["drawn"] = sum_money(conn, d["drawn"])
        d["available"] = d["credit_limit"] - d["drawn"]
        items.append(d)
    return items, cursor


def repayments_page(conn: Connection, loan_id: int, page: PageParams) -> tuple[list[dict[str, Any]], str | None]:
    """A loan's repayments, oldest first, each with how it was applied (from the audit trail)."""
    stmt = select(LoanEvent.id, LoanEvent.business_date, LoanEvent.actor, LoanEvent.detail, LoanEvent.at).where(
        LoanEvent.loan_id == loan_id, LoanEvent.kind == "repayment")
    rows, cursor = paginate(conn, stmt, LoanEvent.id, page)
    return [{"id": r.id, "date": r.business_date, "actor": r.actor, "at": r.at, **(r.detail or {})} for r in rows], cursor


def steal_close_lock(conn: Connection, dead_holder: str, holder: str, lease_until: datetime) -> bool:
    """Take the close's lease from a holder known to be dead (its process is gone)."""
    done = conn.execute(update(CloseLock).where(CloseLock.name == CLOSE_LOCK, CloseLock.holder == dead_holder)
                        .values(holder=holder, lease_until=lease_until))
    return done.rowcount == 1


def book_for_rating(conn: Connection) -> list[tuple[int, int, date, str, date | None, date | None, str | None]]:
    """Every loan as risk's training and re-rating read it: (loan id, enterprise id, start date,
    status, overdue since, written off on, the owning lender's tenant code or None)."""
    q = (select(Loan.id, Loan.enterprise_id, Loan.start_date, Loan.status, Loan.overdue_since, Loan.written_off_on,
                Tenant.code)
         .outerjoin(RecordOwner, (RecordOwner.kind == "loan") & (RecordOwner.record_id == Loan.id))
         .outerjoin(Tenant, Tenant.id == RecordOwner.tenant_id).order_by(Loan.id))
    return [tuple(r) for r in conn.execute(q)]
