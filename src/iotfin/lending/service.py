"""Loan servicing use cases: book, repay, close the day, relieve, act on monitoring, report.

Every money movement goes through a booking rule of `iotfin.lending.model` and is posted to the
general ledger in the same transaction as the sub-ledger change it describes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, case, func, insert, select, update

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.jsonvalues import jsonable
from iotfin.core.money import ZERO, to_money
from iotfin.core.time import business_date, utc_now
from iotfin.db.engine import write_transaction
from iotfin.lending import model as m
from iotfin.lending import store
from iotfin.lending import vector as v
from iotfin.lending.tables import CloseRun, CreditLine, Loan, LoanBill, LoanEvent

DEFAULT_CHUNK = 100_000
# delinquency buckets of the portfolio report: name, highest days past due in it
DPD_BUCKETS = (("current", 0), ("1-30", 30), ("31-60", 60), ("61-90", 90), ("91-180", 180), ("181-360", 360),
               ("360+", None))
Anchor = Callable[[str], object]


class CloseInterrupted(RuntimeError):
    """Raised on purpose between two committed chunks (tests of restartability)."""


@dataclass(frozen=True)
class Offer:
    """An approved offer to book: who, which product, how much, at what price, for how long."""

    enterprise_id: int
    product: str
    principal: Decimal
    annual_rate: Decimal
    term: int
    subsidy_rate: Decimal = ZERO
    credit_line_id: int | None = None


class LendingService:
    def __init__(self, engine: Engine, anchor: Anchor | None = None,
                 provision_rates: dict[m.Tier, Decimal] | None = None):
        self.engine = engine
        self.anchor = anchor  # anchors a signed contract in the ledger: anchor(loan_id)
        self.provision_rates = m.check_provision_rates(provision_rates or m.PROVISION_RATES)
        self._provision_ppm = v.provision_ppm(self.provision_rates)

    # --- booking ---------------------------------------------------------------------------------

    def terms_for(self, offer: Offer, start: date) -> m.Terms:
        prod = m.product(offer.product)
        return m.Terms(to_money(offer.principal), Decimal(offer.annual_rate), offer.term, start, prod.method,
                       prod.day_count, periodic_fee=prod.periodic_fee, subsidy_rate=Decimal(offer.subsidy_rate))

    def book(self, offer: Offer, start: date, actor: str = "system", contract_ref: str | None = None,
             signed: dict[str, Any] | None = None) -> int:
        """Sign and disburse one loan: its schedule, the upfront fee bill, the GL entries, the audit event;
        the contract is anchored in the ledger once committed. `signed` records what the borrower signed
        (e.g. the key-facts statement's APR, total cost and digests) on the booking event."""
        prod = m.product(offer.product)
        terms = self.terms_for(offer, start)
        sched = m.schedule(terms)
        fee = m.fen(terms.principal * prod.upfront_fee_rate)
        with write_transaction(self.engine) as conn:
            if offer.credit_line_id is not None:
                self._check_drawdown(conn, offer, start)
            elif prod.kind == "line":
                raise ValidationError(f"product {prod.code} is drawn under a credit line: give credit_line_id")
            first = sched[0]
            loan_id = conn.execute(insert(Loan).values(
                enterprise_id=offer.enterprise_id, credit_line_id=offer.credit_line_id, product=prod.code,
                method=terms.method.value, day_count=terms.day_count.value, principal=terms.principal,
                rate_ppm=store.ppm(terms.annual_rate), subsidy_ppm=store.ppm(terms.subsidy_rate),
                penalty_ppm=store.ppm(m.penalty_rate(terms.annual_rate, prod.penalty_markup)), term=terms.term,
                start_date=start, contract_ref=contract_ref, last_closed=start, principal_not_due=terms.principal,
                cur_seq=first.seq, cur_start=first.start, cur_due=first.due, cur_principal=first.principal,
                cur_interest=first.interest, cur_fee=first.fee, cur_subsidy=first.subsidy,
                fee_due=fee)).inserted_primary_key[0]
            store.insert_schedule(conn, loan_id, sched)
            entries = [m.journal("disbursement", start, {"principal": terms.principal}, loan_id)]
            if fee:
                conn.execute(insert(LoanBill).values(loan_id=loan_id, due_date=start, fee=fee, interest=ZERO,
                                                     principal=ZERO))
                conn.execute(update(Loan).where(Loan.id == loan_id).values(overdue_since=start))
                entries.append(m.journal("fee_charge", start, {"fee": fee}, loan_id))
            store.post(conn, [e for e in entries if e is not None])
            self._event(conn, "booked", start, actor, loan_id=loan_id, credit_line_id=offer.credit_line_id,
                        detail={"principal": terms.principal, "rate": terms.annual_rate, "term": terms.term,
                                "product": prod.code, "upfront_fee": fee, "subsidy_rate": terms.subsidy_rate}
                        | ({"signed": signed} if signed else {}))
        if self.anchor is not None:
            self.anchor(str(loan_id))
        return loan_id

    def _check_drawdown(self, conn: Connection, offer: Offer, on: date) -> None:
        line = conn.execute(select(CreditLine).where(CreditLine.id == offer.credit_line_id)).first()
        if line is None:
            raise NotFound(f"no credit line {offer.credit_line_id}")
        if line.status != "active":
            raise Conflict(f"credit line {line.id} is {line.status}: no drawdown (额度已{_ZH_STATUS[line.status]}，不能提款)")
        if on > line.expires_on:
            raise Conflict(f"credit line {line.id} expired on {line.expires_on}")
        if line.enterprise_id != offer.enterprise_id:
            raise ValidationError(f"credit line {line.id} belongs to another enterprise")
        used = conn.execute(select(func.coalesce(func.sum(Loan.principal_not_due), 0),
                                   func.coalesce(func.sum(Loan.principal_due), 0))
                            .where(Loan.credit_line_id == line.id, Loan.status == "active")).one()
        outstanding = sum((store.sum_money(conn, x) for x in used), ZERO)
        if outstanding + to_money(offer.principal) > line.credit_limit:
            raise Conflict(f"drawdown {offer.principal} exceeds what is available under credit line {line.id}: "
                           f"{line.credit_limit - outstanding} of {line.credit_limit}")

    def open_line(self, enterprise_id: int, credit_limit: Decimal, annual_rate: Decimal, expires_on: date,
                  product: str = "iot-line", actor: str = "system") -> int:
        if m.product(product).kind != "line":
            raise ValidationError(f"product {product} is not a credit line product")
        limit = to_money(credit_limit)
        if limit <= 0:
            raise ValidationError("credit limit must be positive")
        with write_transaction(self.engine) as conn:
            line_id = conn.execute(insert(CreditLine).values(
                enterprise_id=enterprise_id, product=product, credit_limit=limit, rate_ppm=store.ppm(annual_rate),
                expires_on=expires_on)).inserted_primary_key[0]
            self._event(conn, "line_opened", business_date(utc_now()), actor, credit_line_id=line_id,
                        detail={"limit": limit, "rate": annual_rate, "expires_on": expires_on})
        return line_id

    def book_batch(self, offers: Sequence[Offer], start: date, actor: str = "system") -> np.ndarray:
        """Book many term loans at once (a portfolio migration, a benchmark): vectorised schedules,
        bulk inserts, one aggregated disbursement and fee entry. No contracts are anchored."""
        if not offers:
            return np.zeros(0, np.int64)
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":  # ids are taken below: no booking in between
                conn.exec_driver_sql("LOCK TABLE loans IN EXCLUSIVE MODE")
            first_id = (conn.execute(select(func.max(Loan.id))).scalar() or 0) + 1
            ids = np.arange(first_id, first_id + len(offers), dtype=np.int64)
            groups: dict[tuple[str, int], list[int]] = {}
            for i, o in enumerate(offers):
                if m.product(o.product).kind != "term":
                    raise ValidationError(f"book_batch books term loans, not {o.product}")
                groups.setdefault((o.product, o.term), []).append(i)
            total_principal = total_fee = 0
            ph = store.placeholder(conn)
            cur = conn.connection.driver_connection.cursor()
            for (code, term), members in groups.items():
                prod = m.product(code)
                idx = np.array(members)
                principal = np.array([int(to_money(offers[i].principal) * 100) for i in members], np.int64)
                rates = np.array([store.ppm(Decimal(offers[i].annual_rate)) for i in members], np.int64)
                subsidy = np.array([store.ppm(Decimal(offers[i].subsidy_rate)) for i in members], np.int64)
                for i in members:  # the same validation as one booking
                    self.terms_for(offers[i], start)
                starts = np.full(len(members), v.day(start), np.int64)
                fee_fen = int(prod.periodic_fee * 100)
                sched = v.schedule_batch(principal, rates, starts, term, prod.method, prod.day_count, fee=fee_fen,
                                         subsidy_ppm=subsidy)
                upfront = v.half_up_div(principal * int(prod.upfront_fee_rate * 1_000_000), 1_000_000)
                penalty = np.array([store.ppm(m.penalty_rate(store.rate(r), prod.penalty_markup)) for r in rates])
                total_principal += int(principal.sum())
                total_fee += int(upfront.sum())
                fen = lambda a: store.money_params(conn, a)  # noqa: E731
                day = store.date_params
                rows = list(zip(
                    ids[idx].tolist(), [o.enterprise_id for o in (offers[i] for i in members)], [code] * len(members),
                    [prod.method.value] * len(members), [prod.day_count.value] * len(members), fen(principal),
                    rates.tolist(), subsidy.tolist(), penalty.tolist(), [term] * len(members),
                    day(conn, starts), ["active"] * len(members), day(conn, starts), fen(principal), fen(upfront),
                    day(conn, np.where(upfront > 0, starts, v.NONE)), [1] * len(members), day(conn, sched.start[:, 0]),
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
                cur.executemany(f"INSERT INTO loans ({cols}) VALUES ({', '.join([ph] * 34)})",
                                [r + extra for r in rows])
                n_periods = sched.due.shape[1]
                flat_ids = np.repeat(ids[idx], n_periods)
                seqs = np.tile(np.arange(1, n_periods + 1), len(members))
                cur.executemany(
                    "INSERT INTO loan_instalments (loan_id, seq, start_date, due_date, principal, interest, fee, "
                    f"subsidy) VALUES ({', '.join([ph] * 8)})",
                    list(zip(flat_ids.tolist(), seqs.tolist(), day(conn, sched.start.ravel()),
                             day(conn, sched.due.ravel()), fen(sched.principal.ravel()), fen(sched.interest.ravel()),
                             fen(sched.fee.ravel()), fen(sched.subsidy.ravel()), strict=True)))
                fee_rows = [(int(i), d, f) for i, d, f in zip(ids[idx].tolist(), day(conn, starts), fen(upfront),
                                                              strict=True) if f]
                if fee_rows:
                    cur.executemany("INSERT INTO loan_bills (loan_id, due_date, fee, interest, principal) "
                                    f"VALUES ({ph}, {ph}, {ph}, 0, 0)", fee_rows)
            cur.close()
            if conn.dialect.name == "postgresql":  # later single bookings draw ids after these
                conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('loans', 'id'), (SELECT max(id) FROM loans))")
            to_yuan = lambda x: (Decimal(x) / 100).quantize(m.FEN)  # noqa: E731
            entries = [m.journal("disbursement", start, {"principal": to_yuan(total_principal)},
                                 memo=f"batch of {len(offers)} loans"),
                       m.journal("fee_charge", start, {"fee": to_yuan(total_fee)}, memo=f"batch of {len(offers)} loans")]
            store.post(conn, [e for e in entries if e is not None])
            self._event(conn, "booked_batch", start, actor, detail={"loans": len(offers), "first_id": int(ids[0]),
                                                                    "principal": to_yuan(total_principal)})
        return ids

    # --- repayments ----------------------------------------------------------------------------------

    def repay(self, loan_id: int, amount: Decimal, on: date, prepay: bool = False, actor: str = "borrower") -> dict[str, Any]:
        amount = to_money(amount)
        with write_transaction(self.engine) as conn:
            loan, state = self._lock_active(conn, loan_id, on, "a repayment")
            result, paid = m.repay(state, on, amount, prepay, m.Method(loan.method), m.DayCount(loan.day_count),
                                   store.rate(loan.rate_ppm), store.rate(loan.subsidy_ppm))
            result = self._provided(result, on)  # the allowance falls with the principal repaid
            store.save_state(conn, result.state, schedule_changed=prepay)
            store.post(conn, list(result.entries))
            detail = {"amount": amount, "prepay": prepay, "penalty": paid.penalty, "fee": paid.fee,
                      "interest": paid.interest, "principal": paid.principal, "settled": result.state.closed}
            self._event(conn, "repayment", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def payoff(self, loan_id: int, on: date) -> Decimal:
        with self.engine.connect() as conn:
            _, state = store.load_state(conn, loan_id)
        return m.payoff_amount(state, on)

    def receive_subsidy(self, loan_id: int, amount: Decimal, on: date, payer: str = "subsidy-payer") -> Decimal:
        """The third-party payer settles (part of) its receivable on this loan."""
        amount = to_money(amount)
        with write_transaction(self.engine) as conn:
            loan, state = store.load_state(conn, loan_id, for_update=True)
            if amount <= 0 or amount > state.subsidy_due:
                raise ValidationError(f"subsidy payment {amount} must be positive and at most the {state.subsidy_due} "
                                      f"receivable on loan {loan_id}")
            new = replace(state, subsidy_due=state.subsidy_due - amount,
                            subsidy_received=state.subsidy_received + amount)
            store.save_state(conn, new)
            store.post(conn, [m.journal("subsidy_receipt", on, {"subsidy": amount}, loan_id)])
            self._event(conn, "subsidy_received", on, payer, loan_id=loan_id, detail={"amount": amount})
        return amount

    # --- the daily close -----------------------------------------------------------------------------

    def close_day(self, on: date, chunk: int = DEFAULT_CHUNK, fail_after_chunks: int | None = None) -> dict[str, Any]:
        """Close business day `on` over the whole book, in chunks of loans, each chunk one transaction
        (its loans, their bills, its GL entries and the run's progress). Idempotent: loans already closed
        for `on` are skipped; after a crash, running it again closes the rest."""
        started = time.perf_counter()
        after, closed, chunks = 0, 0, 0
        while True:
            with write_transaction(self.engine) as conn:
                if chunks == 0:  # starting (or resuming): in the first chunk's transaction
                    self._start_run(conn, on)
                if conn.dialect.name == "sqlite":  # a chunk's pages stay cached between its read and its write
                    conn.exec_driver_sql("PRAGMA cache_size = -262144")
                ids, book = store.read_chunk(conn, on, after, chunk)
                last = ids.size < chunk  # a short chunk is the last: the run is done with it
                if ids.size:
                    result = v.close_book(book, v.day(on), store.next_instalments(conn, ids), self._provision_ppm)
                    store.write_chunk(conn, ids, book, result, on)
                    entries = v.totals_to_entries(result.totals, on, memo=f"close {on} loans {ids[0]}..{ids[-1]}")
                    store.post(conn, entries)
                    conn.execute(update(CloseRun).where(CloseRun.business_date == on).values(
                        loans_closed=CloseRun.loans_closed + result.closed, chunks=CloseRun.chunks + 1))
                    after = int(ids[-1])
                    closed += result.closed
                    chunks += 1
                if last:
                    conn.execute(update(CloseRun).where(CloseRun.business_date == on).values(
                        status="done", finished_at=datetime.now(UTC)))
                    break
            if fail_after_chunks is not None and chunks >= fail_after_chunks:
                raise CloseInterrupted(f"close of {on} interrupted after {chunks} chunks (on purpose)")
        return {"business_date": on, "loans_closed": closed, "chunks": chunks,
                "seconds": round(time.perf_counter() - started, 3)}

    @staticmethod
    def _start_run(conn: Connection, on: date) -> None:
        lagging = conn.execute(select(func.min(Loan.last_closed)).where(
            Loan.status == "active", Loan.last_closed < on - timedelta(days=1))).scalar()
        if lagging is not None:
            raise Conflict(f"loans last closed on {lagging}: close {lagging + timedelta(days=1)} first "
                           f"(or use close_through)")
        status = conn.execute(select(CloseRun.status).where(CloseRun.business_date == on)).scalar_one_or_none()
        if status is None:
            conn.execute(insert(CloseRun).values(business_date=on, status="running", loans_closed=0, chunks=0))
        elif status == "done":
            conn.execute(update(CloseRun).where(CloseRun.business_date == on).values(status="running"))

    def close_through(self, on: date, chunk: int = DEFAULT_CHUNK) -> list[dict[str, Any]]:
        """Close every business day from the earliest open one through `on`."""
        with self.engine.connect() as conn:
            earliest = conn.execute(select(func.min(Loan.last_closed)).where(Loan.status == "active")).scalar()
        if earliest is None or earliest >= on:
            return [self.close_day(on, chunk)]
        return [self.close_day(earliest + timedelta(days=k), chunk) for k in range(1, (on - earliest).days + 1)]

    @staticmethod
    def _lock_active(conn: Connection, loan_id: int, on: date | None = None, doing: str = "a change") -> tuple[Loan, m.LoanState]:
        """The loan and its state, locked for a servicing change: only an active loan, and (given `on`)
        never dated inside a day that is already closed."""
        loan, state = store.load_state(conn, loan_id, for_update=True)
        if loan.status != "active":
            raise Conflict(f"loan {loan_id} is {loan.status}")
        if on is not None and on < state.last_closed:
            raise ValidationError(f"loan {loan_id} is closed through {state.last_closed}: {doing} on {on} "
                                  "would change a closed day")
        return loan, state

    # --- relief and monitoring actions ----------------------------------------------------------

    def restructure(self, loan_id: int, on: date, term: int, grace_principal: int = 0, reason: str = "",
                    actor: str = "officer", extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Green-channel hardship relief: re-amortise the principal over `term` months from `on`, with a
        principal deferral of `grace_principal` months. Audited; classified as restructured."""
        if not reason.strip():
            raise ValidationError("relief needs a reason (the borrower's hardship) for the audit trail")
        with write_transaction(self.engine) as conn:
            loan, state = self._lock_active(conn, loan_id, on, "relief")
            ref = (extra or {}).get("request_ref")
            if ref is not None:  # checked under the loan's lock: one grant per request, even when called twice at once
                previous = self._relief_for(conn, loan_id, ref)
                if previous is not None:
                    return previous | {"already_granted": True}
            before = [_inst_json(i) for i in state.schedule[state.cur:]]
            result = self._provided(m.reschedule(state, on, store.rate(loan.rate_ppm), term, m.Method(loan.method),
                                                 m.DayCount(loan.day_count), grace_principal,
                                                 m.product(loan.product).periodic_fee, store.rate(loan.subsidy_ppm)), on)
            store.save_state(conn, result.state, schedule_changed=True)
            store.post(conn, list(result.entries))
            detail = {"reason": reason, "term": term, "grace_principal": grace_principal,
                      "tier_before": state.tier.value, "tier_after": result.state.tier.value,
                      "observation_until": result.state.restructured_until, "schedule_before": before,
                      "schedule_after": [_inst_json(i) for i in result.state.schedule[result.state.cur:]]}
            detail |= extra or {}
            self._event(conn, "restructured", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def grant_relief(self, loan_id: int, kind: str, on: date, reason: str, actor: str, months: int = 3,
                     term: int | None = None, request_ref: str | None = None) -> dict[str, Any]:
        """The hardship relief port for other contexts (customer protection calls it when a hardship
        request is approved). Over the restructure path:

        - ``kind="deferral"``: principal repayments pause for `months` months; the principal outstanding
          is re-amortised over the instalments left plus `months`, the first `months` paying interest only.
        - ``kind="reschedule"``: the principal outstanding is re-amortised over `term` months from `on`.

        Interest, fees and penalty already due stay due. The loan becomes restructured (in observation
        for a year, at least special mention). Audited with reason and actor. `request_ref` (the
        caller's hardship request id) makes the call idempotent: granting the same request again
        returns the first grant's record and changes nothing.
        """
        if kind not in ("deferral", "reschedule"):
            raise ValidationError(f"relief kind must be deferral or reschedule, not {kind!r}")
        if not actor.strip():
            raise ValidationError("relief needs the actor who approved it")
        with self.engine.connect() as conn:
            _, state = store.load_state(conn, loan_id)
            previous = None if request_ref is None else self._relief_for(conn, loan_id, request_ref)
        if previous is not None:
            return previous | {"already_granted": True}
        left = max(1, len(state.schedule) - state.cur)
        if kind == "deferral":
            if not 1 <= months <= 12:
                raise ValidationError("a deferral is 1 to 12 months")
            new_term, grace = left + months, months
        else:
            if term is None or not 1 <= term <= 360:
                raise ValidationError("a reschedule needs the new term, 1 to 360 months")
            new_term, grace = term, 0
        detail = self.restructure(loan_id, on, new_term, grace, reason, actor,
                                  extra={"relief_kind": kind, "request_ref": request_ref})
        return {"loan_id": loan_id, "already_granted": False} | detail

    @staticmethod
    def _relief_for(conn: Connection, loan_id: int, request_ref: str) -> dict[str, Any] | None:
        for (detail,) in conn.execute(select(LoanEvent.detail).where(
                LoanEvent.loan_id == loan_id, LoanEvent.kind == "restructured").order_by(LoanEvent.id)):
            if detail.get("request_ref") == request_ref:
                return dict(detail) | {"loan_id": loan_id}
        return None

    # --- provisioning, write-off and recovery ------------------------------------------------------

    def _provided(self, result: m.DayResult, on: date) -> m.DayResult:
        """A servicing change followed by the allowance's true-up to the loan's new principal and tier."""
        provided = m.provide(result.state, on, self.provision_rates)
        return m.DayResult(provided.state, result.entries + provided.entries)

    def write_off(self, loan_id: int, on: date, reason: str, actor: str = "officer") -> dict[str, Any]:
        """Write off (核销) a loan classified loss against the loan-loss allowance. Its claims leave the
        balance sheet and are kept on the loan row (`written_off`) for recovery."""
        if not reason.strip():
            raise ValidationError("a write-off needs a reason for the audit trail")
        with write_transaction(self.engine) as conn:
            loan, state = self._lock_active(conn, loan_id, on, "a write-off")
            result, wo = m.write_off(state, on, self.provision_rates)
            store.save_state(conn, result.state, schedule_changed=True, status="written_off")
            conn.execute(update(Loan).where(Loan.id == loan_id).values(written_off=wo.total, written_off_on=on))
            store.post(conn, list(result.entries))
            detail = {"reason": reason, "principal": wo.principal, "interest": wo.interest, "fee": wo.fee,
                      "penalty": wo.penalty, "total": wo.total, "allowance_used": wo.allowance_used,
                      "charged_to_impairment_loss": wo.shortfall, "dpd": state.dpd}
            self._event(conn, "written_off", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def recover(self, loan_id: int, amount: Decimal, on: date, actor: str = "collections") -> dict[str, Any]:
        """Cash recovered on a written-off loan (已核销贷款收回): income of the day, at most what is still
        written off and unrecovered."""
        amount = to_money(amount)
        with write_transaction(self.engine) as conn:
            loan = conn.execute(select(Loan.status, Loan.written_off, Loan.recovered).where(Loan.id == loan_id)).first()
            if loan is None:
                raise NotFound(f"no loan {loan_id}")
            if loan.status != "written_off":
                raise Conflict(f"loan {loan_id} is {loan.status}, not written off: repay it instead")
            left = loan.written_off - loan.recovered
            if amount <= 0 or amount > left:
                raise ValidationError(f"a recovery must be positive and at most the {left} still written off on loan {loan_id}")
            conn.execute(update(Loan).where(Loan.id == loan_id).values(recovered=loan.recovered + amount))
            store.post(conn, [m.journal("recovery", on, {"amount": amount}, loan_id)])
            detail = {"amount": amount, "recovered_total": loan.recovered + amount, "written_off": loan.written_off}
            self._event(conn, "recovery", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def accelerate(self, loan_id: int, on: date, reason: str, actor: str = "monitor") -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            loan, state = self._lock_active(conn, loan_id)
            result = self._provided(m.accelerate(state, on), on)
            store.save_state(conn, result.state, schedule_changed=True)
            store.post(conn, list(result.entries))
            detail = {"reason": reason, "now_due": result.state.total_due}
            self._event(conn, "accelerated", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def set_line_status(self, line_id: int, status: str, reason: str, on: date, actor: str = "monitor") -> dict[str, Any]:
        """Freeze (no new drawdowns) or unfreeze a credit line."""
        if status not in ("active", "frozen"):
            raise ValidationError("a credit line can be set to active or frozen")
        with write_transaction(self.engine) as conn:
            line = conn.execute(select(CreditLine).where(CreditLine.id == line_id)).first()
            if line is None:
                raise NotFound(f"no credit line {line_id}")
            if line.status == "closed":
                raise Conflict(f"credit line {line_id} is closed")
            previous = line.status
            conn.execute(update(CreditLine).where(CreditLine.id == line_id).values(status=status))
            kind = "line_frozen" if status == "frozen" else "line_unfrozen"
            self._event(conn, kind, on, actor, credit_line_id=line_id, detail={"reason": reason, "from": previous})
        return {"credit_line_id": line_id, "status": status, "previous": previous}

    def margin_call(self, loan_id: int, amount: Decimal, deadline: date, reason: str, on: date,
                    actor: str = "monitor") -> dict[str, Any]:
        """Ask the borrower to top up collateral or repay `amount` by `deadline` (recorded, notified)."""
        amount = to_money(amount)
        if amount <= 0 or deadline < on:
            raise ValidationError("a margin call needs a positive amount and a deadline not in the past")
        with write_transaction(self.engine) as conn:
            store.load_state(conn, loan_id)
            detail = {"amount": amount, "deadline": deadline, "reason": reason,
                      "notice_en": f"Margin call: provide additional collateral or repay {amount} yuan by {deadline}.",
                      "notice_zh": f"追加担保通知：请于{deadline}前补足担保或还款{amount}元。"}
            self._event(conn, "margin_call", on, actor, loan_id=loan_id, detail=detail)
        return detail

    # --- reports ----------------------------------------------------------------------------------

    def trial_balance(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            tb = store.trial_balance(conn)
        rows = [{"account": acc, "name_en": m.CHART[acc].name_en, "name_zh": m.CHART[acc].name_zh,
                 "debit": d, "credit": c, "balance": d - c} for acc, (d, c) in tb.items()]
        debit = sum((r["debit"] for r in rows), ZERO)
        credit = sum((r["credit"] for r in rows), ZERO)
        return {"accounts": rows, "total_debit": debit, "total_credit": credit, "balanced": debit == credit}

    def reconcile(self) -> dict[str, Any]:
        """Sub-ledger against GL control accounts: every difference listed (empty = reconciled)."""
        with self.engine.connect() as conn:
            tb = store.trial_balance(conn)
            sub = store.subledger_totals(conn)
        gl = {acc: d - c for acc, (d, c) in tb.items()}
        diffs = []
        for acc in (m.NOT_DUE, m.PRINCIPAL_DUE, m.ACCRUED, m.INTEREST_DUE, m.PENALTY_RECV, m.FEE_RECV, m.SUBSIDY_RECV,
                    m.ALLOWANCE):
            if gl.get(acc, ZERO) != sub[acc]:
                diffs.append({"account": acc, "gl": gl.get(acc, ZERO), "subledger": sub[acc]})
        for acc, col in ((m.PRINCIPAL_DUE, "loans.principal_due"), (m.INTEREST_DUE, "loans.interest_due"),
                         (m.FEE_RECV, "loans.fee_due")):
            if sub[acc] != sub[col]:
                diffs.append({"account": acc, "bills": sub[acc], "loan_rows": sub[col]})
        return {"reconciled": not diffs, "differences": diffs}

    def portfolio(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Loan.tier, func.count(), func.sum(Loan.principal_not_due),
                                       func.sum(Loan.principal_due), func.sum(Loan.interest_due),
                                       func.sum(Loan.penalty_due), func.sum(Loan.provision))
                                .where(Loan.status == "active").group_by(Loan.tier)).all()
            settled = conn.execute(select(func.count()).where(Loan.status == "settled")).scalar()
            wo_count, wo_total, wo_recovered = conn.execute(select(func.count(), func.sum(Loan.written_off),
                                                                   func.sum(Loan.recovered))
                                                            .where(Loan.status == "written_off")).one()
            written_off = {"loans": wo_count, "amount": store.sum_money(conn, wo_total),
                           "recovered": store.sum_money(conn, wo_recovered)}
            bucket = case(*((Loan.dpd <= hi, name) for name, hi in DPD_BUCKETS[:-1]), else_=DPD_BUCKETS[-1][0])
            buckets = {name: count for name, count in conn.execute(
                select(bucket, func.count()).where(Loan.status == "active").group_by(bucket)).all()}
            by_tier = {}
            for tier, count, nd, pd, idue, pen, prov in rows:
                by_tier[tier] = {"tier_zh": m.TIER_ZH[m.Tier(tier)], "loans": count,
                                 "principal": store.sum_money(conn, nd) + store.sum_money(conn, pd),
                                 "overdue_principal": store.sum_money(conn, pd),
                                 "interest_due": store.sum_money(conn, idue), "penalty_due": store.sum_money(conn, pen),
                                 "provision": store.sum_money(conn, prov),
                                 "provision_rate": self.provision_rates[m.Tier(tier)]}
        ordered = {t.value: by_tier[t.value] for t in m.TIER_ORDER if t.value in by_tier}
        npl = sum((r["principal"] for t, r in ordered.items() if m.tier_index(m.Tier(t)) >= 2), ZERO)
        allowance = sum((r["provision"] for r in ordered.values()), ZERO)
        total = sum((r["principal"] for r in ordered.values()), ZERO)
        return {"by_tier": ordered, "active_loans": sum(r["loans"] for r in ordered.values()), "settled_loans": settled,
                "by_dpd_bucket": {name: buckets.get(name, 0) for name, _ in DPD_BUCKETS},
                "principal_outstanding": total, "npl_principal": npl,
                "npl_ratio": str((npl / total).quantize(Decimal("0.0001"))) if total else "0",
                "allowance": allowance, "provision_coverage_of_npl": str((allowance / npl).quantize(Decimal("0.0001")))
                if npl else None, "written_off": written_off}

    def loan(self, loan_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            loan, state = store.load_state(conn, loan_id)
            events = conn.execute(select(LoanEvent.kind, LoanEvent.business_date, LoanEvent.actor, LoanEvent.detail)
                                  .where(LoanEvent.loan_id == loan_id).order_by(LoanEvent.id)).all()
        return {"id": loan.id, "enterprise_id": loan.enterprise_id, "product": loan.product, "status": loan.status,
                "principal": loan.principal, "annual_rate": store.rate(loan.rate_ppm), "term": loan.term,
                "start_date": loan.start_date, "last_closed": state.last_closed, "tier": state.tier.value,
                "tier_zh": m.TIER_ZH[state.tier], "dpd": state.dpd, "principal_not_due": state.principal_not_due,
                "due": {"penalty": state.penalty_due, "fee": state.fee_due, "interest": state.interest_due,
                        "principal": state.principal_due},
                "subsidy_due": state.subsidy_due, "provision": state.provision, "written_off": loan.written_off,
                "recovered": loan.recovered, "written_off_on": loan.written_off_on, "schedule": [_inst_json(i) for i in state.schedule],
                "next_instalment": _inst_json(state.schedule[state.cur]) if state.cur < len(state.schedule) else None,
                "events": [{"kind": k, "business_date": d, "actor": a, "detail": det} for k, d, a, det in events]}

    def _event(self, conn: Connection, kind: str, on: date, actor: str, loan_id: int | None = None,
               credit_line_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
        conn.execute(insert(LoanEvent).values(loan_id=loan_id, credit_line_id=credit_line_id, kind=kind,
                                              business_date=on, actor=actor, detail=jsonable(detail or {})))


_ZH_STATUS = {"frozen": "冻结", "closed": "关闭", "active": "启用"}


def _inst_json(i: m.Instalment) -> dict[str, Any]:
    return {"seq": i.seq, "start": i.start, "due": i.due, "principal": i.principal, "interest": i.interest,
            "fee": i.fee, "subsidy": i.subsidy, "borrower_total": i.borrower_total}
