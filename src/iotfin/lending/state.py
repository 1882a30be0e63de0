"""A loan's servicing state (its sub-ledger): the schedule, what is billed and unpaid, its tier."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from iotfin.core.money import ZERO
from iotfin.lending.amounts import RATE_QUANTUM
from iotfin.lending.classification import Tier
from iotfin.lending.general_ledger import JournalEntry
from iotfin.lending.schedules import Instalment, Terms, schedule


@dataclass(frozen=True, slots=True)
class Bill:
    """What fell due on a date and is still unpaid (an instalment, an upfront fee, a charge)."""

    due: date
    fee: Decimal = ZERO
    interest: Decimal = ZERO
    principal: Decimal = ZERO

    def component(self, name: str) -> Decimal:
        return getattr(self, name)

    @property
    def total(self) -> Decimal:
        return self.fee + self.interest + self.principal


@dataclass(frozen=True, slots=True)
class LoanState:
    """A loan's sub-ledger. `cur` is the first instalment not yet billed."""

    loan_id: int
    schedule: tuple[Instalment, ...]
    penalty_rate: Decimal
    last_closed: date
    principal_not_due: Decimal
    cur: int = 0
    accrued_in_period: Decimal = ZERO  # interest accrued on schedule[cur] so far (account 1132.01)
    bills: tuple[Bill, ...] = ()
    penalty_due: Decimal = ZERO
    subsidy_due: Decimal = ZERO
    subsidy_received: Decimal = ZERO
    subsidy_clawed: bool = False
    dpd: int = 0
    tier: Tier = Tier.NORMAL
    restructured_until: date | None = None
    restructured_floor: Tier = Tier.NORMAL
    allocation: tuple[str, ...] = ("penalty", "fee", "interest", "principal")
    provision: Decimal = ZERO  # this loan's share of the loan-loss allowance (account 1304)

    @property
    def principal_outstanding(self) -> Decimal:
        return self.principal_not_due + self.principal_due

    @property
    def principal_due(self) -> Decimal:
        return sum((b.principal for b in self.bills), ZERO)

    @property
    def interest_due(self) -> Decimal:
        return sum((b.interest for b in self.bills), ZERO)

    @property
    def fee_due(self) -> Decimal:
        return sum((b.fee for b in self.bills), ZERO)

    @property
    def overdue_since(self) -> date | None:
        return next((b.due for b in self.bills if b.total > 0), None)

    @property
    def total_due(self) -> Decimal:
        return self.penalty_due + self.fee_due + self.interest_due + self.principal_due

    @property
    def closed(self) -> bool:
        return self.cur >= len(self.schedule) and self.total_due == 0 and self.principal_not_due == 0


@dataclass(frozen=True, slots=True)
class DayResult:
    state: LoanState
    entries: tuple[JournalEntry, ...] = field(default=())


def insert_bill(bills: tuple[Bill, ...], bill: Bill) -> tuple[Bill, ...]:
    return tuple(sorted((*bills, bill), key=lambda b: b.due))


def new_state(loan_id: int, terms: Terms, penalty_markup: Decimal,
              allocation: tuple[str, ...] = ("penalty", "fee", "interest", "principal")) -> LoanState:
    return LoanState(loan_id, schedule(terms), penalty_rate(terms.annual_rate, penalty_markup), terms.start,
                     terms.principal, allocation=allocation)


def penalty_rate(annual_rate: Decimal, markup: Decimal) -> Decimal:
    return (annual_rate * (1 + markup)).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)
