"""Repayment schedules: the terms of a loan and the instalments built from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from fractions import Fraction

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, ZERO
from iotfin.lending.amounts import MAX_PRINCIPAL, MAX_RATE, RATE_QUANTUM, fen
from iotfin.lending.daycount import DayCount, add_months, year_fraction


class Method(StrEnum):
    EQUAL_INSTALMENT = "equal-instalment"  # 等额本息 (progressive EMI)
    EQUAL_PRINCIPAL = "equal-principal"  # 等额本金
    INTEREST_ONLY = "interest-only"  # 先息后本, balloon at maturity
    BULLET = "bullet"  # 到期一次还本付息: one payment at maturity


@dataclass(frozen=True, slots=True)
class Terms:
    """What a schedule is built from. Monthly instalments on the start date's day of month."""

    principal: Decimal
    annual_rate: Decimal
    term: int  # months
    start: date
    method: Method = Method.EQUAL_INSTALMENT
    day_count: DayCount = DayCount.D30_360
    grace_principal: int = 0  # first N instalments pay no principal
    grace_interest: int = 0  # first N instalments pay no interest; it is due with the next one
    periodic_fee: Decimal = ZERO
    subsidy_rate: Decimal = ZERO  # 贴息: a third party pays this annual rate of the interest, capped at it

    def __post_init__(self) -> None:
        checks = [
            (ZERO < self.principal <= MAX_PRINCIPAL, f"principal must be in (0, {MAX_PRINCIPAL}]"),
            (self.principal == self.principal.quantize(FEN), "principal must be whole fen"),
            (ZERO <= self.annual_rate <= MAX_RATE, "annual rate must be between 0 and 1 (e.g. 0.0435)"),
            (self.annual_rate == self.annual_rate.quantize(RATE_QUANTUM), "annual rate has more than 6 decimals"),
            (ZERO <= self.subsidy_rate <= self.annual_rate, "subsidy rate must be between 0 and the annual rate"),
            (self.subsidy_rate == self.subsidy_rate.quantize(RATE_QUANTUM), "subsidy rate has more than 6 decimals"),
            (1 <= self.term <= 360, "term must be 1..360 months"),
            (0 <= self.grace_principal < self.term, "principal grace must be shorter than the term"),
            (0 <= self.grace_interest < self.term, "interest grace must be shorter than the term"),
            (ZERO <= self.periodic_fee == self.periodic_fee.quantize(FEN), "periodic fee must be whole fen, >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValidationError(message)

    def due_dates(self) -> list[date]:
        if self.method is Method.BULLET:
            return [add_months(self.start, self.term)]
        return [add_months(self.start, k) for k in range(1, self.term + 1)]


@dataclass(frozen=True, slots=True)
class Instalment:
    seq: int  # 1-based
    start: date  # the period [start, due) interest is computed over
    due: date
    principal: Decimal
    interest: Decimal  # gross: what the lender earns for the period
    fee: Decimal = ZERO
    subsidy: Decimal = ZERO  # the part of `interest` a third party pays (never more than it)

    @property
    def borrower_interest(self) -> Decimal:
        return self.interest - self.subsidy

    @property
    def borrower_total(self) -> Decimal:
        return self.principal + self.borrower_interest + self.fee


def emi(principal: Decimal, monthly_rate: Fraction, n: int) -> Decimal:
    """Equal instalment P·r / (1 − (1 + r)^−n), half-up to the fen (40 significant digits)."""
    if monthly_rate == 0:
        return fen(Fraction(principal) / n)
    with localcontext() as ctx:
        ctx.prec = 40
        r = Decimal(monthly_rate.numerator) / Decimal(monthly_rate.denominator)
        exact = principal * r / (1 - (1 + r) ** -n)
        return exact.quantize(FEN, rounding=ROUND_HALF_UP)


def schedule(terms: Terms) -> tuple[Instalment, ...]:
    return build_schedule(terms.principal, terms.annual_rate, terms.start, terms.due_dates(), terms.method,
                          terms.day_count, terms.grace_principal, terms.grace_interest, terms.periodic_fee,
                          terms.subsidy_rate)


def build_schedule(principal: Decimal, annual_rate: Decimal, start: date, dues: Sequence[date], method: Method,
                   day_count: DayCount, grace_principal: int = 0, grace_interest: int = 0,
                   periodic_fee: Decimal = ZERO, subsidy_rate: Decimal = ZERO, first_seq: int = 1,
                   ) -> tuple[Instalment, ...]:
    """Instalments over the given due dates; the first period runs from `start`.

    Interest of period k = half-up(balance × rate × year_fraction(period)). Equal instalment: the EMI
    uses the nominal monthly rate (rate / 12) over the amortising periods, principal = EMI − interest;
    equal principal: half-up(P / n) each; interest-only: all principal with the last; the last
    instalment absorbs the residue in every method. Interest in an interest-grace period is carried
    to the first instalment after it (no interest on interest).
    """
    n = len(dues)
    rate = Fraction(annual_rate)
    balance = principal
    amortising = n - grace_principal
    level = (emi(principal, rate / 12, amortising) if method is Method.EQUAL_INSTALMENT
             else fen(Fraction(principal) / amortising) if method is Method.EQUAL_PRINCIPAL else ZERO)
    out: list[Instalment] = []
    carried, carried_subsidy = ZERO, ZERO
    period_start = start
    for k, due in enumerate(dues):
        yf = year_fraction(period_start, due, day_count)
        interest = fen(Fraction(balance) * rate * yf)
        subsidy = min(interest, fen(Fraction(balance) * Fraction(subsidy_rate) * yf))
        last = k == n - 1
        if last:
            pay_principal = balance
        elif k < grace_principal or method in (Method.INTEREST_ONLY, Method.BULLET):
            pay_principal = ZERO
        elif method is Method.EQUAL_INSTALMENT:
            pay_principal = min(balance, max(ZERO, level - interest))
        else:
            pay_principal = min(balance, level)
        if k < grace_interest:
            carried, carried_subsidy = carried + interest, carried_subsidy + subsidy
            charged, charged_subsidy = ZERO, ZERO
        else:
            charged, charged_subsidy = interest + carried, subsidy + carried_subsidy
            carried, carried_subsidy = ZERO, ZERO
        out.append(Instalment(first_seq + k, period_start, due, pay_principal, charged, periodic_fee, charged_subsidy))
        balance -= pay_principal
        period_start = due
    return tuple(out)
