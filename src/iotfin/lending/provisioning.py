"""Loan-loss provisioning (贷款损失准备) by tier, and write-off (核销) against the allowance."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, ZERO
from iotfin.lending.amounts import RATE_QUANTUM
from iotfin.lending.classification import TIER_ORDER, Tier
from iotfin.lending.general_ledger import as_entries, journal
from iotfin.lending.state import DayResult, LoanState

# Loan-loss provisioning (贷款损失准备) by tier, as a share of the principal outstanding (not yet due +
# overdue). The defaults are the rates of the PBOC's 《银行贷款损失准备计提指引》 (银发〔2002〕98号): specific
# provisions of 2 % on special mention, 25 % substandard, 50 % doubtful, 100 % loss, and its 1 % general
# reserve, applied here per loan to normal loans. Configurable (`LendingService(provision_rates=...)`,
# checked by `check_provision_rates`); rates carry six decimals.
PROVISION_RATES: dict[Tier, Decimal] = {Tier.NORMAL: Decimal("0.01"), Tier.SPECIAL_MENTION: Decimal("0.02"),
                                        Tier.SUBSTANDARD: Decimal("0.25"), Tier.DOUBTFUL: Decimal("0.50"),
                                        Tier.LOSS: Decimal("1")}


def check_provision_rates(rates: dict[Tier, Decimal]) -> dict[Tier, Decimal]:
    """Every tier given, each rate in [0, 1] with at most six decimals, never lower for a worse tier."""
    if set(rates) != set(Tier):
        raise ValidationError(f"provision rates must give every tier: {', '.join(t.value for t in Tier)}")
    ordered = [Decimal(rates[t]) for t in TIER_ORDER]
    for t, r in zip(TIER_ORDER, ordered, strict=True):
        if not ZERO <= r <= 1 or r != r.quantize(RATE_QUANTUM):
            raise ValidationError(f"provision rate for {t.value} must be between 0 and 1 with at most 6 decimals, not {r}")
    if any(a > b for a, b in zip(ordered, ordered[1:], strict=False)):
        raise ValidationError("provision rates must not fall as the tier worsens")
    if ordered[-1] != 1:
        raise ValidationError("loans classified loss are provisioned in full (rate 1): they are written off against it")
    return dict(zip(TIER_ORDER, ordered, strict=True))


def provision_for(outstanding: Decimal, rate: Decimal) -> Decimal:
    # exact: at most 11 + 6 significant digits, well inside Decimal's 28
    return (outstanding * rate).quantize(FEN, rounding=ROUND_HALF_UP)


def provision_target(state: LoanState, rates: dict[Tier, Decimal] = PROVISION_RATES) -> Decimal:
    """The allowance a loan needs: half-up(principal outstanding × its tier's rate)."""
    return provision_for(state.principal_outstanding, rates[state.tier])


def provide(state: LoanState, on: date, rates: dict[Tier, Decimal] = PROVISION_RATES) -> DayResult:
    """Bring the loan's allowance to its target: a charge when it grew (a downgrade, a new loan), a
    release when it fell (a repayment, an upgrade, settlement)."""
    target = provision_target(state, rates)
    if target == state.provision:
        return DayResult(state)
    entry = journal("provision", on, {"provision": target - state.provision}, state.loan_id)
    return DayResult(replace(state, provision=target), tuple(as_entries(entry)))


@dataclass(frozen=True, slots=True)
class WriteOff:
    principal: Decimal  # not yet due + overdue
    interest: Decimal  # accrued + due
    fee: Decimal
    penalty: Decimal
    allowance_used: Decimal
    shortfall: Decimal  # charged to the impairment loss at write-off (what the allowance did not cover)

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fee + self.penalty


def write_off(state: LoanState, on: date, rates: dict[Tier, Decimal] = PROVISION_RATES) -> tuple[DayResult, WriteOff]:
    """Write off (核销) a loan classified loss against the allowance: its principal, interest, fee and
    penalty claims leave the balance sheet (they stay claims, recoverable off-balance-sheet). The
    allowance is first trued up (to 100 % of principal at loss); what it does not cover (interest,
    fees, penalty) is charged to the impairment loss. A subsidy payer's receivable is not the
    borrower's debt and stays."""
    if state.tier is not Tier.LOSS:
        raise ValidationError(f"loan {state.loan_id} is classified {state.tier.value}, not loss: only loss loans are written off")
    provided = provide(state, on, rates)
    s = provided.state
    principal_due, interest_due, fee_due = s.principal_due, s.interest_due, s.fee_due
    claims = s.principal_outstanding + s.accrued_in_period + interest_due + fee_due + s.penalty_due
    used = min(s.provision, claims)
    wo = WriteOff(s.principal_outstanding, s.accrued_in_period + interest_due, fee_due, s.penalty_due, used,
                  claims - used)
    entry = journal("write_off", on, {"allowance": used, "shortfall": wo.shortfall,
                                      "principal_not_due": s.principal_not_due, "principal_due": principal_due,
                                      "accrued": s.accrued_in_period, "interest": interest_due, "fee": fee_due,
                                      "penalty": s.penalty_due}, s.loan_id)
    s = replace(s, schedule=s.schedule[:s.cur], principal_not_due=ZERO, accrued_in_period=ZERO, bills=(),
                penalty_due=ZERO, provision=s.provision - used)
    return DayResult(s, provided.entries + tuple(as_entries(entry))), wo
