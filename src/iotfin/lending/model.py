"""Loan servicing, pure, as one name space for code that reads `m.<name>`: products, schedules, day
counts, accrual, allocation, classification and the booking rules of the general ledger, re-exported
from the modules that hold them. Immutable records and functions over them; no I/O.

This is the reference: `iotfin.lending.vector` computes the same numbers for a whole book in numpy,
and the tests check that the two agree to the fen.
"""

from fractions import Fraction

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, ZERO
from iotfin.lending.amounts import MAX_PRINCIPAL, MAX_RATE, RATE_QUANTUM, fen
from iotfin.lending.classification import (
    DEFAULT_DPD,
    DPD_THRESHOLDS,
    RESTRUCTURE_OBSERVATION_DAYS,
    TIER_ORDER,
    TIER_ZH,
    Tier,
    classify,
    tier_index,
)
from iotfin.lending.close import accrual_target, bill_through, close_day, daily_penalty
from iotfin.lending.daycount import DayCount, add_months, days_30e360, year_fraction
from iotfin.lending.general_ledger import (
    ACCRUED,
    ALLOWANCE,
    BOOKING_RULES,
    CASH,
    CHART,
    FEE_INCOME,
    FEE_RECV,
    INTEREST_DUE,
    INTEREST_INCOME,
    NOT_DUE,
    PENALTY_INCOME,
    PENALTY_RECV,
    PRINCIPAL_DUE,
    PROVISION_EXPENSE,
    RECOVERY_INCOME,
    SUBSIDY_RECV,
    Account,
    JournalEntry,
    Line,
    Unbalanced,
    balances,
    check_balanced,
    journal,
    trial_balance,
)
from iotfin.lending.modifications import accelerate, reschedule
from iotfin.lending.products import PRODUCTS, Product, product
from iotfin.lending.provisioning import (
    PROVISION_RATES,
    WriteOff,
    check_provision_rates,
    provide,
    provision_target,
    write_off,
)
from iotfin.lending.repayments import (
    Allocation,
    accrued_split,
    allocate,
    allocation_buckets,
    payoff_amount,
    repay,
)
from iotfin.lending.schedules import Instalment, Method, Terms, build_schedule, emi, schedule
from iotfin.lending.state import Bill, DayResult, LoanState, new_state, penalty_rate

__all__ = [
    # the servicing code and its tests also read these through this name space
    "FEN", "ZERO", "Fraction", "ValidationError",
    "ACCRUED", "ALLOWANCE", "BOOKING_RULES", "CASH", "CHART", "DEFAULT_DPD", "DPD_THRESHOLDS", "FEE_INCOME",
    "FEE_RECV", "INTEREST_DUE", "INTEREST_INCOME", "MAX_PRINCIPAL", "MAX_RATE", "NOT_DUE", "PENALTY_INCOME",
    "PENALTY_RECV", "PRINCIPAL_DUE", "PRODUCTS", "PROVISION_EXPENSE", "PROVISION_RATES", "RATE_QUANTUM",
    "RECOVERY_INCOME", "RESTRUCTURE_OBSERVATION_DAYS", "SUBSIDY_RECV", "TIER_ORDER", "TIER_ZH", "Account",
    "Allocation", "Bill", "DayCount", "DayResult", "Instalment", "JournalEntry", "Line", "LoanState",
    "Method", "Product", "Terms", "Tier", "Unbalanced", "WriteOff", "accelerate", "accrual_target",
    "accrued_split", "add_months", "allocate", "allocation_buckets", "balances", "bill_through",
    "build_schedule", "check_balanced", "check_provision_rates", "classify", "close_day", "daily_penalty",
    "days_30e360", "emi", "fen", "journal", "new_state", "payoff_amount", "penalty_rate", "product",
    "provide", "provision_target", "repay", "reschedule", "schedule", "tier_index", "trial_balance",
    "write_off", "year_fraction",
]
