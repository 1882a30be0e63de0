"""Changes to a loan's schedule outside repayment: rescheduling (relief, a restructuring) and
acceleration (提前到期)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from iotfin.core.errors import ValidationError
from iotfin.core.money import ZERO
from iotfin.lending.classification import RESTRUCTURE_OBSERVATION_DAYS, TIER_ORDER, Tier
from iotfin.lending.close import accrual_target, bill_through
from iotfin.lending.daycount import DayCount
from iotfin.lending.general_ledger import as_entries, journal
from iotfin.lending.schedules import Method, Terms, build_schedule
from iotfin.lending.state import Bill, DayResult, LoanState, insert_bill


def reschedule(state: LoanState, on: date, annual_rate: Decimal, term: int, method: Method, day_count: DayCount,
               grace_principal: int = 0, periodic_fee: Decimal = ZERO, subsidy_rate: Decimal = ZERO) -> DayResult:
    """Relief: the principal outstanding (overdue principal capitalised) is re-amortised from `on` over
    `term` months, with an optional principal grace (a deferral). Interest, fees and penalty already
    due stay due. The loan is restructured: in observation for a year, at least special mention and no
    better than before."""
    billed = bill_through(state, on)
    s, entries = billed.state, list(billed.entries)
    if s.cur < len(s.schedule):  # the interrupted period's accrued interest falls due now
        inst = s.schedule[s.cur]
        accrued = accrual_target(inst.interest, inst.start, inst.due, on)
        entries += as_entries(journal("accrual", on, {"interest": accrued - s.accrued_in_period}, s.loan_id))
        entries += as_entries(journal("billing", on, {"interest": accrued, "borrower_interest": accrued}, s.loan_id))
        if accrued:
            s = replace(s, bills=insert_bill(s.bills, Bill(on, interest=accrued)))
    overdue_principal = s.principal_due
    entries += as_entries(journal("capitalise_overdue", on, {"principal": overdue_principal}, s.loan_id))
    bills = tuple(b for b in (replace(b, principal=ZERO) for b in s.bills) if b.total)
    principal = s.principal_not_due + overdue_principal
    if principal == 0:
        raise ValidationError(f"loan {s.loan_id} has no principal left to reschedule")
    terms = Terms(principal, annual_rate, term, on, method, day_count, grace_principal=grace_principal,
                  periodic_fee=periodic_fee, subsidy_rate=subsidy_rate)
    tail = build_schedule(principal, annual_rate, on, terms.due_dates(), method, day_count,
                          grace_principal=grace_principal, periodic_fee=periodic_fee, subsidy_rate=subsidy_rate,
                          first_seq=(s.schedule[s.cur - 1].seq + 1) if s.cur else 1)
    floor = max(s.tier, Tier.SPECIAL_MENTION, key=TIER_ORDER.index)
    s = replace(s, schedule=s.schedule[:s.cur] + tail, accrued_in_period=ZERO, bills=bills, principal_not_due=principal,
                restructured_until=max(on + timedelta(days=RESTRUCTURE_OBSERVATION_DAYS), tail[min(1, len(tail) - 1)].due),
                restructured_floor=floor, tier=floor)
    return DayResult(s, tuple(entries))


def accelerate(state: LoanState, on: date) -> DayResult:
    """Acceleration (提前到期): all principal and the interest accrued to `on` fall due now."""
    billed = bill_through(state, on)
    s, entries = billed.state, list(billed.entries)
    if s.cur >= len(s.schedule):
        return DayResult(s, tuple(entries))
    inst = s.schedule[s.cur]
    accrued = accrual_target(inst.interest, inst.start, inst.due, on)
    entries += as_entries(journal("accrual", on, {"interest": accrued - s.accrued_in_period}, s.loan_id))
    entries += as_entries(journal("billing", on, {"principal": s.principal_not_due, "interest": accrued,
                                            "borrower_interest": accrued}, s.loan_id))
    bill = Bill(on, interest=accrued, principal=s.principal_not_due)
    s = replace(s, schedule=s.schedule[:s.cur], accrued_in_period=ZERO, principal_not_due=ZERO,
                bills=insert_bill(s.bills, bill) if bill.total else s.bills)
    return DayResult(s, tuple(entries))
