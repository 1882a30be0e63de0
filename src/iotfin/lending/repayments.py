"""Repayments: allocation of a payment to what is due, prepayment with re-amortisation, payoff."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, ZERO
from iotfin.lending.amounts import RATE_QUANTUM
from iotfin.lending.close import accrual_target, bill_through
from iotfin.lending.daycount import DayCount
from iotfin.lending.general_ledger import as_entries, journal
from iotfin.lending.schedules import Instalment, Method, build_schedule
from iotfin.lending.state import Bill, DayResult, LoanState, insert_bill


@dataclass(frozen=True, slots=True)
class Allocation:
    penalty: Decimal = ZERO
    fee: Decimal = ZERO
    interest: Decimal = ZERO
    principal: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.penalty + self.fee + self.interest + self.principal


def allocation_buckets(state: LoanState) -> list[tuple[int, str, Decimal]]:
    """Unpaid buckets in payment order: penalty first (it is loan-level), then bill by bill, oldest
    first, each bill's components in the product's allocation order. (bill index -1 = penalty.)"""
    order = [c for c in state.allocation if c != "penalty"]
    out: list[tuple[int, str, Decimal]] = []
    if "penalty" in state.allocation and state.penalty_due:
        out.append((-1, "penalty", state.penalty_due))
    for i, bill in enumerate(state.bills):
        out += [(i, c, bill.component(c)) for c in order if bill.component(c)]
    return out


def allocate(state: LoanState, amount: Decimal) -> tuple[LoanState, Allocation]:
    """Apply a payment to what is due, in allocation order. Refuses more than is due."""
    if amount <= 0 or amount != amount.quantize(FEN):
        raise ValidationError(f"a repayment must be a positive amount in whole fen, not {amount}")
    if amount > state.total_due:
        raise ValidationError(f"repayment {amount} exceeds the {state.total_due} due on loan {state.loan_id}; "
                              "use a prepayment for the rest")
    left = amount
    paid = {"penalty": ZERO, "fee": ZERO, "interest": ZERO, "principal": ZERO}
    bills = [dict(fee=b.fee, interest=b.interest, principal=b.principal) for b in state.bills]
    penalty = state.penalty_due
    for idx, comp, due in allocation_buckets(state):
        if left == 0:
            break
        take = min(left, due)
        left -= take
        paid[comp] += take
        if idx < 0:
            penalty -= take
        else:
            bills[idx][comp] -= take
    kept = tuple(Bill(b.due, **parts) for b, parts in zip(state.bills, bills, strict=True) if sum(parts.values()))
    return replace(state, bills=kept, penalty_due=penalty), Allocation(**paid)


def payoff_amount(state: LoanState, on: date) -> Decimal:
    """What settles the loan in full on `on` (after that day's billing): everything due, the current
    period's interest accrued to `on`, and the principal not yet due."""
    billed = bill_through(state, on).state
    borrower_accrued = ZERO
    if billed.cur < len(billed.schedule):
        accrued, subsidy = accrued_split(billed.schedule[billed.cur], on)
        borrower_accrued = accrued - subsidy
    return billed.total_due + borrower_accrued + billed.principal_not_due


def accrued_split(inst: Instalment, on: date) -> tuple[Decimal, Decimal]:
    """Interest of an interrupted period accrued to `on`, and the subsidised part of it (pro rata, floor)."""
    accrued = accrual_target(inst.interest, inst.start, inst.due, on)
    subsidy = (inst.subsidy * accrued / inst.interest).quantize(FEN, rounding=ROUND_FLOOR) if inst.interest else ZERO
    return accrued, min(accrued, subsidy)


def repay(state: LoanState, on: date, amount: Decimal, prepay: bool = False, method: Method | None = None,
          day_count: DayCount | None = None, annual_rate: Decimal | None = None,
          subsidy_rate: Decimal | None = None) -> tuple[DayResult, Allocation]:
    """A repayment on `on`: bill what is due by then, pay it in allocation order; with prepay=True the
    rest first pays the current period's accrued interest, then principal not yet due, and the
    remaining instalments are re-amortised over the same due dates (or the loan is settled)."""
    billed = bill_through(state, on)
    s, entries = billed.state, list(billed.entries)
    due_part = min(amount, s.total_due)
    rest = amount - due_part
    if rest and not prepay:
        raise ValidationError(f"repayment {amount} exceeds the {s.total_due} due on loan {s.loan_id}; "
                              "use a prepayment for the rest")
    paid = Allocation()
    if due_part:
        s, paid = allocate(s, due_part)
    if rest:
        if method is None or day_count is None or annual_rate is None:
            raise ValidationError("a prepayment needs the loan's method, day count and rate")
        if s.cur >= len(s.schedule):
            raise ValidationError(f"loan {s.loan_id} has nothing left to prepay")
        inst = s.schedule[s.cur]
        accrued, accrued_subsidy = accrued_split(inst, on)
        entries += as_entries(journal("accrual", on, {"interest": accrued - s.accrued_in_period}, s.loan_id))
        pay_interest = min(rest, accrued - accrued_subsidy)
        pay_principal = rest - pay_interest
        if pay_principal > s.principal_not_due:
            raise ValidationError(f"prepayment exceeds the payoff amount {payoff_amount(state, on)} of loan {s.loan_id}")
        # The current period ends today: its accrued interest is billed, the principal prepaid is billed and paid.
        entries += as_entries(journal("billing", on, {"principal": pay_principal, "interest": accrued,
                                                "borrower_interest": accrued - accrued_subsidy,
                                                "subsidy": accrued_subsidy}, s.loan_id))
        remaining_principal = s.principal_not_due - pay_principal
        dues = [i.due for i in s.schedule[s.cur:]]
        fee = inst.fee
        new_tail = () if remaining_principal == 0 else build_schedule(
            remaining_principal, annual_rate, on, dues, method, day_count, periodic_fee=fee,
            subsidy_rate=_subsidy_rate(inst, annual_rate) if subsidy_rate is None else subsidy_rate, first_seq=inst.seq)
        unpaid_interest = accrued - accrued_subsidy - pay_interest
        bills = s.bills if not unpaid_interest else insert_bill(s.bills, Bill(on, interest=unpaid_interest))
        s = replace(s, schedule=s.schedule[:s.cur] + new_tail, accrued_in_period=ZERO, bills=bills,
                    principal_not_due=remaining_principal, subsidy_due=s.subsidy_due + accrued_subsidy)
        paid = replace(paid, interest=paid.interest + pay_interest, principal=paid.principal + pay_principal)
    entries += as_entries(journal("repayment", on, {"total": paid.total, "penalty": paid.penalty, "fee": paid.fee,
                                              "interest": paid.interest, "principal": paid.principal}, s.loan_id))
    since = s.overdue_since
    return DayResult(replace(s, dpd=(on - since).days if since and since < on else 0), tuple(entries)), paid


def _subsidy_rate(inst: Instalment, annual_rate: Decimal) -> Decimal:
    """The subsidy rate implied by an instalment (subsidy / interest × rate), to six decimals."""
    if not inst.interest:
        return ZERO
    return (annual_rate * inst.subsidy / inst.interest).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)
