"""Loan servicing use cases: book, repay, close the day, relieve, act on monitoring, report.

Every money movement goes through a booking rule of `iotfin.lending.model` and is posted to the
general ledger in the same transaction as the sub-ledger change it describes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Select

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.money import ZERO, to_money
from iotfin.core.time import business_date, utc_now
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.lending import model as m
from iotfin.lending import store, vintage
from iotfin.lending import vector as v
from iotfin.lending.calendar import today as business_today
from iotfin.lending.ports import Events
from iotfin.lending.tables import Loan

DEFAULT_CHUNK = 100_000
DEFAULT_RATE_CEILING = Decimal("0.24")  # setting lending_rate_ceiling
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
                 provision_rates: dict[m.Tier, Decimal] | None = None, rate_ceiling: Decimal = DEFAULT_RATE_CEILING,
                 *, events: Events | None = None, simulation: bool = False, due_notice_days: int = 3):
        self.engine = engine
        self.events = events  # webhooks: loan.disbursed, repayment.received/.due/.overdue (docs/api.md)
        self.simulation = simulation  # the close may run ahead of today (demos, simulations)
        self.due_notice_days = due_notice_days
        self.anchor = anchor  # anchors a signed contract in the ledger: anchor(loan_id)
        self.provision_rates = m.check_provision_rates(provision_rates or m.PROVISION_RATES)
        self._provision_ppm = v.provision_ppm(self.provision_rates)
        self.rate_ceiling = Decimal(rate_ceiling)  # the legal ceiling of a contract rate (setting lending_rate_ceiling)

    # --- booking ---------------------------------------------------------------------------------

    def terms_for(self, offer: Offer, start: date) -> m.Terms:
        prod = m.product(offer.product)
        return m.Terms(to_money(offer.principal), Decimal(offer.annual_rate), offer.term, start, prod.method,
                       prod.day_count, periodic_fee=prod.periodic_fee, subsidy_rate=Decimal(offer.subsidy_rate))

    def check_ceiling(self, annual_rate: Decimal) -> None:
        if Decimal(annual_rate) > self.rate_ceiling:
            raise ValidationError(f"annual_rate {annual_rate} is above the legal rate ceiling {self.rate_ceiling} "
                                  f"(超过法定利率上限)")

    def check_manual(self, offer: Offer) -> None:
        """A booking outside an offer: inside the product's ranges and under the rate ceiling."""
        self.check_ceiling(offer.annual_rate)
        m.product(offer.product).check_ranges(to_money(offer.principal), offer.term, Decimal(offer.annual_rate))

    def book(self, offer: Offer, start: date, actor: str = "system", contract_ref: str | None = None,
             signed: dict[str, Any] | None = None, *, lender_tenant_id: int | None = None) -> int:
        """Sign and disburse one loan: its schedule, the upfront fee (deducted from the proceeds), the GL
        entries, the audit event; the contract is anchored in the ledger once committed. `signed` records
        what the borrower signed (e.g. the key-facts statement's APR, total cost and digests) on the
        booking event."""
        with write_transaction(self.engine) as conn:
            loan_id = self.book_in(conn, offer, start, actor, contract_ref, signed, lender_tenant_id=lender_tenant_id)
        self.anchored(loan_id)
        return loan_id

    def anchored(self, loan_id: int) -> None:
        """Anchor a committed contract in the ledger (after `book_in`'s transaction commits)."""
        if self.anchor is not None:
            self.anchor(str(loan_id))

    def book_in(self, conn: Connection, offer: Offer, start: date, actor: str = "system",
                contract_ref: str | None = None, signed: dict[str, Any] | None = None, *,
                lender_tenant_id: int | None = None) -> int:
        """`book` inside the caller's transaction (an offer's booking marks the offer in the same one);
        the caller anchors the contract (`anchored`) once committed.

        The upfront fee is deducted from the proceeds at disbursement (the borrower receives the principal
        less the fee): it is charged and settled at booking, so it is never overdue, and the key facts'
        APR (which counts the fee as paid at the start) is the contract's."""
        prod = m.product(offer.product)
        terms = self.terms_for(offer, start)
        self.check_ceiling(terms.annual_rate)
        sched = m.schedule(terms)
        fee = m.fen(terms.principal * prod.upfront_fee_rate)
        if not store.enterprise_exists(conn, offer.enterprise_id):
            raise NotFound(f"no enterprise {offer.enterprise_id}")
        if offer.credit_line_id is not None:
            self._check_drawdown(conn, offer, start)
        elif prod.kind == "line":
            raise ValidationError(f"product {prod.code} is drawn under a credit line: give credit_line_id")
        first = sched[0]
        loan_id = store.insert_loan(conn, terms, prod, first, offer.enterprise_id, offer.credit_line_id,
                                    contract_ref, ZERO)
        store.insert_schedule(conn, loan_id, sched)
        entries = [m.journal("disbursement", start, {"principal": terms.principal}, loan_id)]
        if fee:
            entries += [m.journal("fee_charge", start, {"fee": fee}, loan_id),
                        m.journal("fee_deducted", start, {"fee": fee}, loan_id, memo="upfront fee deducted from the proceeds")]
        store.post(conn, [e for e in entries if e is not None])
        store.record_event(conn, "booked", start, actor, loan_id=loan_id, credit_line_id=offer.credit_line_id,
                           detail={"principal": terms.principal, "rate": terms.annual_rate, "term": terms.term,
                                   "product": prod.code, "upfront_fee": fee, "net_proceeds": terms.principal - fee,
                                   "subsidy_rate": terms.subsidy_rate}
                           | ({"signed": signed} if signed else {}))
        self.disbursed(conn, loan_id, offer, start, fee, lender_tenant_id)
        return loan_id

    def _check_drawdown(self, conn: Connection, offer: Offer, on: date) -> None:
        line = store.credit_line(conn, offer.credit_line_id)
        if line is None:
            raise NotFound(f"no credit line {offer.credit_line_id}")
        if line.status != "active":
            raise Conflict(f"credit line {line.id} is {line.status}: no drawdown (额度已{_ZH_STATUS[line.status]}，不能提款)")
        if on > line.expires_on:
            raise Conflict(f"credit line {line.id} expired on {line.expires_on}")
        if line.enterprise_id != offer.enterprise_id:
            raise ValidationError(f"credit line {line.id} belongs to another enterprise")
        outstanding = store.line_outstanding(conn, line.id)
        if outstanding + to_money(offer.principal) > line.credit_limit:
            raise Conflict(f"drawdown {offer.principal} exceeds what is available under credit line {line.id}: "
                           f"{line.credit_limit - outstanding} of {line.credit_limit}")

    def open_line(self, enterprise_id: int, credit_limit: Decimal, annual_rate: Decimal, expires_on: date,
                  product: str = "iot-line", actor: str = "system") -> int:
        with write_transaction(self.engine) as conn:
            return self.open_line_in(conn, enterprise_id, credit_limit, annual_rate, expires_on, product, actor)

    def open_line_in(self, conn: Connection, enterprise_id: int, credit_limit: Decimal, annual_rate: Decimal,
                     expires_on: date, product: str = "iot-line", actor: str = "system") -> int:
        """`open_line` inside the caller's transaction."""
        if m.product(product).kind != "line":
            raise ValidationError(f"product {product} is not a credit line product")
        limit = to_money(credit_limit)
        if limit <= 0:
            raise ValidationError("credit limit must be positive")
        self.check_ceiling(Decimal(annual_rate))
        if not store.enterprise_exists(conn, enterprise_id):
            raise NotFound(f"no enterprise {enterprise_id}")
        line_id = store.insert_credit_line(conn, enterprise_id, product, limit, annual_rate, expires_on)
        store.record_event(conn, "line_opened", business_date(utc_now()), actor, credit_line_id=line_id,
                           detail={"limit": limit, "rate": annual_rate, "expires_on": expires_on})
        return line_id

    def book_batch(self, offers: Sequence[Offer], start: date, actor: str = "system") -> np.ndarray:
        """Book many term loans at once (a portfolio migration, a benchmark): vectorised schedules,
        bulk inserts, one aggregated disbursement and fee entry. No contracts are anchored."""
        if not offers:
            return np.zeros(0, np.int64)
        with write_transaction(self.engine) as conn:
            first_id = store.lock_loan_ids(conn)  # ids are taken below: no booking in between
            ids = np.arange(first_id, first_id + len(offers), dtype=np.int64)
            groups: dict[tuple[str, int], list[int]] = {}
            for i, o in enumerate(offers):
                if m.product(o.product).kind != "term":
                    raise ValidationError(f"book_batch books term loans, not {o.product}")
                groups.setdefault((o.product, o.term), []).append(i)
            total_principal = total_fee = 0
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
                store.insert_loan_batch(conn, ids[idx], [offers[i].enterprise_id for i in members], prod, term,
                                        principal, rates, subsidy, penalty, starts, upfront, sched)
            store.resync_loan_ids(conn)  # later single bookings draw ids after these
            to_yuan = lambda x: (Decimal(x) / 100).quantize(m.FEN)  # noqa: E731
            entries = [m.journal("disbursement", start, {"principal": to_yuan(total_principal)},
                                 memo=f"batch of {len(offers)} loans"),
                       m.journal("fee_charge", start, {"fee": to_yuan(total_fee)}, memo=f"batch of {len(offers)} loans")]
            store.post(conn, [e for e in entries if e is not None])
            store.record_event(conn, "booked_batch", start, actor,
                               detail={"loans": len(offers), "first_id": int(ids[0]),
                                       "principal": to_yuan(total_principal)})
        return ids

    # --- repayments ----------------------------------------------------------------------------------

    def disbursed(self, conn: Connection, loan_id: int, offer: Offer, start: date, fee: Decimal,
                  lender_tenant_id: int | None) -> None:
        """loan.disbursed, in the booking's transaction, to the lender (when it is a tenant) and the enterprise."""
        if self.events is None:
            return
        self.events(conn, "loan.disbursed", {
            "loan_id": loan_id, "enterprise_id": offer.enterprise_id, "credit_line_id": offer.credit_line_id,
            "product": offer.product, "principal": str(to_money(offer.principal).quantize(m.FEN)),
            "upfront_fee": str(fee), "net_proceeds": str((to_money(offer.principal) - fee).quantize(m.FEN)),
            "annual_rate": str(offer.annual_rate),
            "term_months": offer.term, "start": start.isoformat()},
            enterprise_id=offer.enterprise_id, tenant_id=lender_tenant_id)

    def repay(self, loan_id: int, amount: Decimal, on: date, prepay: bool = False, actor: str = "borrower") -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            return self.repay_in(conn, loan_id, amount, on, prepay, actor)

    def repay_in(self, conn: Connection, loan_id: int, amount: Decimal, on: date, prepay: bool = False,
                 actor: str = "borrower") -> dict[str, Any]:
        """`repay` inside the caller's transaction (a voucher payment settles its discount loans in its own)."""
        amount = to_money(amount)
        loan, state = self._lock_active(conn, loan_id, on, "a repayment")
        return self._repay_loaded(conn, loan, state, amount, on, prepay, actor)

    def repay_up_to_payoff_in(self, conn: Connection, loan_id: int, amount: Decimal, on: date, actor: str) -> Decimal:
        """Prepay at most what would pay the loan off, inside the caller's transaction (a voucher
        payment settling its discount loan); what was applied (zero for a loan no longer active).
        The loan is read once, locked."""
        loan, state = store.load_state(conn, loan_id, for_update=True)
        if loan.status != "active":
            return Decimal("0.00")
        _check_open_day(state, on, "a repayment")
        applied = min(to_money(amount), m.payoff_amount(state, on))
        if applied > 0:
            self._repay_loaded(conn, loan, state, applied, on, True, actor)
        return applied

    def _repay_loaded(self, conn: Connection, loan: Any, state: m.LoanState, amount: Decimal, on: date, prepay: bool,
                      actor: str) -> dict[str, Any]:
        loan_id = state.loan_id
        result, paid = m.repay(state, on, amount, prepay, m.Method(loan.method), m.DayCount(loan.day_count),
                               store.rate(loan.rate_ppm), store.rate(loan.subsidy_ppm))
        result = self._provided(result, on)  # the allowance falls with the principal repaid
        store.save_state(conn, result.state, schedule_changed=prepay)
        store.post(conn, list(result.entries))
        detail = {"amount": amount, "prepay": prepay, "penalty": paid.penalty, "fee": paid.fee,
                  "interest": paid.interest, "principal": paid.principal, "settled": result.state.closed}
        store.record_event(conn, "repayment", on, actor, loan_id=loan_id, detail=detail)
        if self.events is not None:
            self.events(conn, "repayment.received", {
                "loan_id": loan_id, "enterprise_id": loan.enterprise_id, "date": on.isoformat(),
                "amount": str(amount.quantize(m.FEN)), "penalty": str(paid.penalty), "fee": str(paid.fee),
                "interest": str(paid.interest), "principal": str(paid.principal), "prepay": prepay,
                "settled": result.state.closed}, enterprise_id=loan.enterprise_id)
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
            store.record_event(conn, "subsidy_received", on, payer, loan_id=loan_id, detail={"amount": amount})
        return amount

    # --- the daily close -----------------------------------------------------------------------------

    def check_close_date(self, on: date, simulate: bool = False) -> None:
        """A close of a day after today is refused (nothing written), unless in simulation mode."""
        today = business_today()
        if on > today and not (simulate or self.simulation):
            raise ValidationError(f"date: {on} is after today ({today}, Asia/Shanghai): the books close only days "
                                  f"that have begun; closing ahead is for simulation mode (IOTFIN_SIMULATION=1) / "
                                  f"不能对未来日期日终结账（{on} 晚于今天 {today}）")

    def close_day(self, on: date, chunk: int = DEFAULT_CHUNK, fail_after_chunks: int | None = None, *,
                  simulate: bool = False) -> dict[str, Any]:
        """Close business day `on` over the whole book, in chunks of loans, each chunk one transaction
        (its loans, their bills, its GL entries and the run's progress). Idempotent: loans already closed
        for `on` are skipped; after a crash, running it again closes the rest. A day after today is
        refused unless `simulate` (or the service is in simulation mode)."""
        self.check_close_date(on, simulate)
        started = time.perf_counter()
        after, closed, chunks = 0, 0, 0
        while True:
            with write_transaction(self.engine) as conn:
                if chunks == 0:  # starting (or resuming): in the first chunk's transaction
                    self._start_run(conn, on)
                store.cache_chunk_pages(conn)  # a chunk's pages stay cached between its read and its write
                store.hold_book_for_chunk(conn)  # no loan changes between the chunk's read and its write
                ids, book = store.read_chunk(conn, on, after, chunk)
                last = ids.size < chunk  # a short chunk is the last: the run is done with it
                if ids.size:
                    result = v.close_book(book, v.day(on), store.next_instalments(conn, ids), self._provision_ppm)
                    store.write_chunk(conn, ids, book, result, on)
                    entries = v.totals_to_entries(result.totals, on, memo=f"close {on} loans {ids[0]}..{ids[-1]}")
                    store.post(conn, entries)
                    store.count_close_chunk(conn, on, result.closed)
                    after = int(ids[-1])
                    closed += result.closed
                    chunks += 1
                if last:
                    store.finish_close_run(conn, on)
                    break
            if fail_after_chunks is not None and chunks >= fail_after_chunks:
                raise CloseInterrupted(f"close of {on} interrupted after {chunks} chunks (on purpose)")
        return {"business_date": on, "loans_closed": closed, "chunks": chunks,
                "seconds": round(time.perf_counter() - started, 3)}

    def _start_run(self, conn: Connection, on: date) -> None:
        lagging = store.lagging_close(conn, on)
        if lagging is not None:
            raise Conflict(f"loans last closed on {lagging}: close {lagging + timedelta(days=1)} first "
                           f"(or use close_through)")
        status = store.close_run_status(conn, on)
        if status is None:
            store.insert_close_run(conn, on)
            self._due_events(conn, on)  # once per business date, so once per instalment
            self._overdue_events(conn, on)  # the bills of the day before, unpaid: the close cannot pay them
        elif status == "done":
            store.reopen_close_run(conn, on)

    def close_through(self, on: date, chunk: int = DEFAULT_CHUNK, *, simulate: bool = False) -> list[dict[str, Any]]:
        """Close every business day from the earliest open one through `on`."""
        self.check_close_date(on, simulate)
        with self.engine.connect() as conn:
            earliest = store.earliest_closed(conn)
        if earliest is None or earliest >= on:
            return [self.close_day(on, chunk, simulate=simulate)]
        return [self.close_day(earliest + timedelta(days=k), chunk, simulate=simulate)
                for k in range(1, (on - earliest).days + 1)]

    def _due_events(self, conn: Connection, on: date) -> None:
        """repayment.due for the instalments falling due `due_notice_days` after `on`."""
        if self.events is None:
            return
        due = on + timedelta(days=self.due_notice_days)
        self._publish(conn, "repayment.due", [({
            "loan_id": r.loan_id, "instalment": r.seq, "due_date": r.due_date.isoformat(),
            "principal": str(r.principal), "interest": str(r.interest - r.subsidy), "fee": str(r.fee),
            "amount": str(r.principal + r.interest - r.subsidy + r.fee), "enterprise_id": r.enterprise_id,
            "notice_days": self.due_notice_days}, r.enterprise_id) for r in store.instalments_due_on(conn, due)])

    def _publish(self, conn: Connection, event_type: str, items: list[tuple[dict[str, Any], int]]) -> None:
        """The close's notices: in one batch where the events port can take one (`many`: thousands a
        day on a large book, three round trips each one by one), else one by one."""
        many = getattr(self.events, "many", None)
        if many is not None:
            many(conn, event_type, items)
            return
        for payload, enterprise_id in items:
            self.events(conn, event_type, payload, enterprise_id=enterprise_id)  # type: ignore[misc]

    def _overdue_events(self, conn: Connection, on: date) -> None:
        """repayment.overdue for what fell due the day before `on` and is still unpaid at its close."""
        if self.events is None:
            return
        self._publish(conn, "repayment.overdue", [({
            "loan_id": r.loan_id, "due_date": r.due_date.isoformat(), "business_date": on.isoformat(),
            "principal": str(r.principal), "interest": str(r.interest), "fee": str(r.fee),
            "amount": str(r.principal + r.interest + r.fee), "days_past_due": r.dpd,
            "enterprise_id": r.enterprise_id}, r.enterprise_id) for r in store.bills_first_overdue(conn, on)])

    @staticmethod
    def _lock_active(conn: Connection, loan_id: int, on: date | None = None, doing: str = "a change") -> tuple[Loan, m.LoanState]:
        """The loan and its state, locked for a servicing change: only an active loan, and (given `on`)
        never dated inside a day that is already closed."""
        loan, state = store.load_state(conn, loan_id, for_update=True)
        if loan.status != "active":
            raise Conflict(f"loan {loan_id} is {loan.status}")
        if on is not None:
            _check_open_day(state, on, doing)
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
                previous = store.relief_granted(conn, loan_id, ref)
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
            store.record_event(conn, "restructured", on, actor, loan_id=loan_id, detail=detail)
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
            previous = None if request_ref is None else store.relief_granted(conn, loan_id, request_ref)
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
            store.mark_written_off(conn, loan_id, wo.total, on)
            store.post(conn, list(result.entries))
            detail = {"reason": reason, "principal": wo.principal, "interest": wo.interest, "fee": wo.fee,
                      "penalty": wo.penalty, "total": wo.total, "allowance_used": wo.allowance_used,
                      "charged_to_impairment_loss": wo.shortfall, "dpd": state.dpd}
            store.record_event(conn, "written_off", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def recover(self, loan_id: int, amount: Decimal, on: date, actor: str = "collections") -> dict[str, Any]:
        """Cash recovered on a written-off loan (已核销贷款收回): income of the day, at most what is still
        written off and unrecovered."""
        amount = to_money(amount)
        with write_transaction(self.engine) as conn:
            loan = store.recovery_position(conn, loan_id)
            if loan is None:
                raise NotFound(f"no loan {loan_id}")
            if loan.status != "written_off":
                raise Conflict(f"loan {loan_id} is {loan.status}, not written off: repay it instead")
            left = loan.written_off - loan.recovered
            if amount <= 0 or amount > left:
                raise ValidationError(f"a recovery must be positive and at most the {left} still written off on loan {loan_id}")
            store.set_recovered(conn, loan_id, loan.recovered + amount)
            store.post(conn, [m.journal("recovery", on, {"amount": amount}, loan_id)])
            detail = {"amount": amount, "recovered_total": loan.recovered + amount, "written_off": loan.written_off}
            store.record_event(conn, "recovery", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def accelerate(self, loan_id: int, on: date, reason: str, actor: str = "monitor") -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            loan, state = self._lock_active(conn, loan_id)
            result = self._provided(m.accelerate(state, on), on)
            store.save_state(conn, result.state, schedule_changed=True)
            store.post(conn, list(result.entries))
            detail = {"reason": reason, "now_due": result.state.total_due}
            store.record_event(conn, "accelerated", on, actor, loan_id=loan_id, detail=detail)
        return detail

    def set_line_status(self, line_id: int, status: str, reason: str, on: date, actor: str = "monitor") -> dict[str, Any]:
        """Freeze (no new drawdowns) or unfreeze a credit line."""
        if status not in ("active", "frozen"):
            raise ValidationError("a credit line can be set to active or frozen")
        with write_transaction(self.engine) as conn:
            line = store.credit_line(conn, line_id)
            if line is None:
                raise NotFound(f"no credit line {line_id}")
            if line.status == "closed":
                raise Conflict(f"credit line {line_id} is closed")
            previous = line.status
            store.set_line_status(conn, line_id, status)
            kind = "line_frozen" if status == "frozen" else "line_unfrozen"
            store.record_event(conn, kind, on, actor, credit_line_id=line_id,
                               detail={"reason": reason, "from": previous})
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
            store.record_event(conn, "margin_call", on, actor, loan_id=loan_id, detail=detail)
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

    def portfolio(self, among: Select | None = None, vintages: bool = False) -> dict[str, Any]:
        """The book by five-tier class, DPD bucket, NPL and provisions; `among`: only a lender's own loans
        (the ids it selects); `vintages`: also the vintage curves (iotfin.lending.vintage)."""
        with self.engine.connect() as conn:
            rows = store.active_by_tier(conn, among)
            settled = store.count_loans(conn, "settled", among)
            wo_count, wo_total, wo_recovered = store.written_off_totals(conn, among)
            buckets = store.active_by_dpd_bucket(conn, DPD_BUCKETS, among)
            as_of, loans = store.vintage_rows(conn, among) if vintages else (None, [])
        written_off = {"loans": wo_count, "amount": wo_total, "recovered": wo_recovered}
        by_tier = {}
        for tier, count, nd, pd, idue, pen, prov in rows:
            by_tier[tier] = {"tier_zh": m.TIER_ZH[m.Tier(tier)], "loans": count, "principal": nd + pd,
                             "overdue_principal": pd, "interest_due": idue, "penalty_due": pen, "provision": prov,
                             "provision_rate": self.provision_rates[m.Tier(tier)]}
        ordered = {t.value: by_tier[t.value] for t in m.TIER_ORDER if t.value in by_tier}
        npl = sum((r["principal"] for t, r in ordered.items() if m.tier_index(m.Tier(t)) >= 2), ZERO)
        allowance = sum((r["provision"] for r in ordered.values()), ZERO)
        total = sum((r["principal"] for r in ordered.values()), ZERO)
        out = {"by_tier": ordered, "active_loans": sum(r["loans"] for r in ordered.values()), "settled_loans": settled,
                "by_dpd_bucket": {name: buckets.get(name, 0) for name, _ in DPD_BUCKETS},
                "principal_outstanding": total, "npl_principal": npl,
                "npl_ratio": str((npl / total).quantize(Decimal("0.0001"))) if total else "0",
                "allowance": allowance, "provision_coverage_of_npl": str((allowance / npl).quantize(Decimal("0.0001")))
                if npl else None, "written_off": written_off}
        if vintages:
            out["as_of"] = as_of
            out["vintages"] = vintage.curves(loans, as_of)
        return out

    def loans_page(self, page: PageParams, *, enterprise_id: int | None = None, status: str | None = None,
                   among: Select | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of loans, newest first (`among`: the ids a lender owns, as a subquery)."""
        if status is not None and status not in ("active", "settled", "written_off"):
            raise ValidationError(f"status: must be active, settled or written_off, not {status!r}")
        with self.engine.connect() as conn:
            return store.loans_page(conn, page, enterprise_id=enterprise_id, status=status, among=among)

    def lines_page(self, page: PageParams, *, enterprise_id: int | None = None, status: str | None = None,
                   among: Select | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of credit lines, newest first, with what is drawn and available under each."""
        if status is not None and status not in ("active", "frozen", "closed"):
            raise ValidationError(f"status: must be active, frozen or closed, not {status!r}")
        with self.engine.connect() as conn:
            return store.lines_page(conn, page, enterprise_id=enterprise_id, status=status, among=among)

    def credit_line(self, line_id: int) -> dict[str, Any]:
        """A credit line with what is drawn and available under it."""
        with self.engine.connect() as conn:
            line = store.credit_line(conn, line_id)
            if line is None:
                raise NotFound(f"no credit line {line_id}")
            drawn = store.line_outstanding(conn, line_id)
        return {"id": line.id, "enterprise_id": line.enterprise_id, "product": line.product,
                "credit_limit": line.credit_limit, "annual_rate": store.rate(line.rate_ppm),
                "expires_on": line.expires_on, "status": line.status, "created_at": line.created_at,
                "drawn": drawn, "available": line.credit_limit - drawn}

    def repayments_page(self, loan_id: int, page: PageParams) -> tuple[list[dict[str, Any]], str | None]:
        """A loan's repayments, oldest first, each with its allocation."""
        with self.engine.connect() as conn:
            return store.repayments_page(conn, loan_id, page)

    def loan(self, loan_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            loan, state = store.load_state(conn, loan_id)
            events = store.loan_events(conn, loan_id)
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


_ZH_STATUS = {"frozen": "冻结", "closed": "关闭", "active": "启用"}


def _inst_json(i: m.Instalment) -> dict[str, Any]:
    return {"seq": i.seq, "start": i.start, "due": i.due, "principal": i.principal, "interest": i.interest,
            "fee": i.fee, "subsidy": i.subsidy, "borrower_total": i.borrower_total}


def _check_open_day(state: m.LoanState, on: date, doing: str) -> None:
    """A servicing change is never dated inside a day that is already closed."""
    if on < state.last_closed:
        raise ValidationError(f"loan {state.loan_id} is closed through {state.last_closed}: {doing} on {on} "
                              "would change a closed day")
