"""The daily close of one loan: accrual, billing, ageing, penalty interest, subsidy clawback, tier."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, ZERO
from iotfin.lending.amounts import fen
from iotfin.lending.classification import DEFAULT_DPD, Tier, classify
from iotfin.lending.general_ledger import JournalEntry, as_entries, journal
from iotfin.lending.provisioning import PROVISION_RATES, provision_for
from iotfin.lending.state import Bill, DayResult, LoanState, insert_bill


def accrual_target(interest: Decimal, start: date, due: date, on: date) -> Decimal:
    """Interest of a period accrued by the end of `on`: floor(I × elapsed / days), so the daily
    accruals of a period sum to its scheduled interest exactly."""
    days = (due - start).days
    elapsed = min(max((on - start).days, 0), days)
    return (interest * elapsed / days).quantize(FEN, rounding=ROUND_FLOOR) if days else interest


def daily_penalty(overdue_principal: Decimal, penalty_rate: Decimal) -> Decimal:
    """One day of penalty interest: half-up(overdue principal × penalty rate / 360)."""
    return fen(Fraction(overdue_principal) * Fraction(penalty_rate) / 360)


def bill_through(state: LoanState, on: date) -> DayResult:
    """Bill every instalment due on or before `on` (accruing its period in full first)."""
    entries: list[JournalEntry] = []
    s = state
    while s.cur < len(s.schedule) and s.schedule[s.cur].due <= on:
        inst = s.schedule[s.cur]
        rest = inst.interest - s.accrued_in_period
        entries += as_entries(journal("accrual", on, {"interest": rest}, s.loan_id))
        entries += as_entries(journal("billing", on, {"principal": inst.principal, "interest": inst.interest,
                                                "borrower_interest": inst.borrower_interest,
                                                "subsidy": inst.subsidy, "fee": inst.fee}, s.loan_id))
        bill = Bill(inst.due, inst.fee, inst.borrower_interest, inst.principal)
        s = replace(s, cur=s.cur + 1, accrued_in_period=ZERO, principal_not_due=s.principal_not_due - inst.principal,
                    bills=s.bills + ((bill,) if bill.total else ()), subsidy_due=s.subsidy_due + inst.subsidy)
    return DayResult(s, tuple(entries))


def close_day(state: LoanState, on: date, rates: dict[Tier, Decimal] = PROVISION_RATES) -> DayResult:
    """The close of business `on` for one loan: accrue, bill what falls due, age, penalise,
    claw back the subsidy on default, classify. Idempotent: a loan already closed for `on` is unchanged."""
    if state.last_closed >= on:
        return DayResult(state)
    if state.last_closed != on - timedelta(days=1):
        raise ValidationError(f"loan {state.loan_id} was last closed {state.last_closed}: close the days before {on} first")
    entries: list[JournalEntry] = []
    s = state
    if s.cur < len(s.schedule):
        inst = s.schedule[s.cur]
        target = accrual_target(inst.interest, inst.start, inst.due, on)
        if target != s.accrued_in_period:
            entries += as_entries(journal("accrual", on, {"interest": target - s.accrued_in_period}, s.loan_id))
            s = replace(s, accrued_in_period=target)
        if inst.due <= on:
            billed = bill_through(s, on)
            s, entries = billed.state, entries + list(billed.entries)
    changes: dict[str, object] = {}
    since = s.overdue_since
    dpd = (on - since).days if since is not None and since < on else 0
    if dpd > 0:
        penalty = daily_penalty(s.principal_due, s.penalty_rate)
        entries += as_entries(journal("penalty", on, {"penalty": penalty}, s.loan_id))
        changes["penalty_due"] = s.penalty_due + penalty
    if dpd >= DEFAULT_DPD and not s.subsidy_clawed and (s.subsidy_due or s.subsidy_received):
        clawed = s.subsidy_due + s.subsidy_received
        entries += as_entries(journal("subsidy_clawback", on, {"interest": clawed, "unpaid": s.subsidy_due,
                                                         "refunded": s.subsidy_received}, s.loan_id))
        changes.update(bills=insert_bill(s.bills, Bill(on, interest=clawed)), subsidy_due=ZERO,
                       subsidy_received=ZERO, subsidy_clawed=True)
    restructured = s.restructured_until is not None and on <= s.restructured_until
    tier = classify(dpd, restructured, s.restructured_floor)
    outstanding = s.principal_not_due + s.principal_due
    target = provision_for(outstanding, rates[tier])
    if target != s.provision:
        entries += as_entries(journal("provision", on, {"provision": target - s.provision}, s.loan_id))
    s = replace(s, last_closed=on, dpd=dpd, tier=tier, provision=target, **changes)
    return DayResult(s, tuple(entries))
