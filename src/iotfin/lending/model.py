"""Loan servicing, pure: products, schedules, day counts, accrual, allocation, classification and the
booking rules of the general ledger. Immutable records and functions over them; no I/O.

Rounding rule (stated once, used everywhere): every amount is computed exactly (rational arithmetic)
and rounded half-up (四舍五入) to the fen once, where it is booked; the last instalment absorbs the
residue, so instalment principals always sum to the principal lent. Rates carry at most six decimal
places (0.0001 %), which makes the vectorised int64 path in `iotfin.lending.vector` exact.

This module is the reference: `iotfin.lending.vector` computes the same numbers for a whole book in
numpy, and the tests check that the two agree to the fen.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from fractions import Fraction

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, ZERO

RATE_QUANTUM = Decimal("0.000001")  # rates carry at most six decimals (0.0001 %)
MAX_PRINCIPAL = Decimal("100000000.00")  # 100 M yuan per loan keeps int64 fen arithmetic exact
MAX_RATE = Decimal("1")  # 100 % a year


class Method(StrEnum):
    EQUAL_INSTALMENT = "equal-instalment"  # 等额本息 (progressive EMI)
    EQUAL_PRINCIPAL = "equal-principal"  # 等额本金
    INTEREST_ONLY = "interest-only"  # 先息后本, balloon at maturity
    BULLET = "bullet"  # 到期一次还本付息: one payment at maturity


class DayCount(StrEnum):
    ACT_ACT = "actual/actual"  # ISDA: days in a leap year over 366, the others over 365
    ACT_365 = "actual/365"
    ACT_360 = "actual/360"
    D30_360 = "30/360"  # 30E/360: day 31 counts as 30


# --- money and dates ------------------------------------------------------------------------


def fen(value: Fraction | Decimal | int) -> Decimal:
    """Round an exact amount in yuan half-up to the fen (the one rounding rule)."""
    q = Fraction(value) * 100
    n = (q.numerator * 2 + q.denominator) // (2 * q.denominator)  # floor(q + 1/2): half-up for q >= 0
    if q < 0:
        n = -((-q.numerator * 2 + q.denominator) // (2 * q.denominator))
    return (Decimal(n) / 100).quantize(FEN)


def add_months(start: date, months: int) -> date:
    """Same day `months` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    y, m = divmod(start.month - 1 + months, 12)
    year, month = start.year + y, m + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def year_fraction(start: date, end: date, basis: DayCount) -> Fraction:
    """The exact year fraction of the period [start, end) under a day-count convention."""
    if basis is DayCount.ACT_365:
        return Fraction((end - start).days, 365)
    if basis is DayCount.ACT_360:
        return Fraction((end - start).days, 360)
    if basis is DayCount.D30_360:
        return Fraction(days_30e360(start, end), 360)
    total = Fraction(0)
    cursor = start
    while cursor < end:  # ISDA: split at each 1 January
        boundary = min(end, date(cursor.year + 1, 1, 1))
        total += Fraction((boundary - cursor).days, 366 if calendar.isleap(cursor.year) else 365)
        cursor = boundary
    return total


def days_30e360(start: date, end: date) -> int:
    d1, d2 = min(start.day, 30), min(end.day, 30)
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)


# --- products and terms ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Product:
    code: str
    name_en: str
    name_zh: str
    kind: str  # "term" or "line" (revolving credit line: drawdowns under a limit)
    method: Method
    day_count: DayCount
    penalty_markup: Decimal  # penalty rate = contract rate × (1 + markup), on overdue principal
    upfront_fee_rate: Decimal = ZERO  # share of principal, billed at drawdown
    periodic_fee: Decimal = ZERO  # yuan per instalment
    allocation: tuple[str, ...] = ("penalty", "fee", "interest", "principal")


# The product shelf is data. Penalty markups follow common PRC practice (罚息 = contract rate + 30–50 %).
PRODUCTS: dict[str, Product] = {p.code: p for p in (
    Product("iot-term", "IoT-secured term loan", "物联网动产质押贷款", "term", Method.EQUAL_INSTALMENT,
            DayCount.ACT_360, Decimal("0.5"), upfront_fee_rate=Decimal("0.005")),
    Product("iot-line", "IoT revolving credit line", "物联网循环额度贷", "line", Method.INTEREST_ONLY,
            DayCount.ACT_360, Decimal("0.5")),
    Product("receivable-bullet", "Receivable financing (bullet)", "应收账款融资", "term", Method.BULLET,
            DayCount.ACT_365, Decimal("0.5")),
    Product("equipment-principal", "Equipment loan (equal principal)", "设备贷(等额本金)", "term",
            Method.EQUAL_PRINCIPAL, DayCount.D30_360, Decimal("0.3"), periodic_fee=Decimal("10.00")),
)}


def product(code: str) -> Product:
    try:
        return PRODUCTS[code]
    except KeyError:
        raise ValidationError(f"unknown product {code!r}; known: {', '.join(sorted(PRODUCTS))}") from None


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


# --- the PRC five-tier classification --------------------------------------------------------


class Tier(StrEnum):
    NORMAL = "normal"  # 正常
    SPECIAL_MENTION = "special-mention"  # 关注
    SUBSTANDARD = "substandard"  # 次级
    DOUBTFUL = "doubtful"  # 可疑
    LOSS = "loss"  # 损失


TIER_ORDER = tuple(Tier)
TIER_ZH = {Tier.NORMAL: "正常", Tier.SPECIAL_MENTION: "关注", Tier.SUBSTANDARD: "次级", Tier.DOUBTFUL: "可疑",
           Tier.LOSS: "损失"}
# Days past due at which a loan is at least this tier, as we read 《商业银行金融资产风险分类办法》 (CBIRC/PBOC
# Order 2023 No. 1): any overdue → special mention; > 90 days → substandard; > 270 → doubtful; > 360 → loss.
DPD_THRESHOLDS: tuple[tuple[int, Tier], ...] = ((361, Tier.LOSS), (271, Tier.DOUBTFUL), (91, Tier.SUBSTANDARD),
                                                (1, Tier.SPECIAL_MENTION), (0, Tier.NORMAL))
DEFAULT_DPD = 91  # non-performing from here: subsidies are clawed back
RESTRUCTURE_OBSERVATION_DAYS = 365  # restructured loans are observed for at least a year


def classify(dpd: int, restructured: bool = False, floor: Tier = Tier.NORMAL) -> Tier:
    """The tier by days past due; a restructured loan in observation is at least special mention and
    never better than it was when restructured (`floor`)."""
    tier = next(t for threshold, t in DPD_THRESHOLDS if dpd >= threshold)
    if restructured:
        tier = max(tier, Tier.SPECIAL_MENTION, floor, key=TIER_ORDER.index)
    return tier


def tier_index(tier: Tier) -> int:
    return TIER_ORDER.index(tier)


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


# --- the general ledger: chart of accounts and booking rules as data -------------------------


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    name_en: str
    name_zh: str
    kind: str  # asset, liability, income


CHART: dict[str, Account] = {a.code: a for a in (
    Account("1002", "Cash at bank (settlement)", "银行存款(清算)", "asset"),
    Account("1303.01", "Loans — principal not yet due", "贷款—未到期本金", "asset"),
    Account("1303.02", "Loans — principal due", "贷款—到期本金", "asset"),
    Account("1132.01", "Interest accrued, not yet due", "应收利息—已计提未到期", "asset"),
    Account("1132.02", "Interest due from borrowers", "应收利息—借款人到期", "asset"),
    Account("1132.03", "Penalty interest receivable", "应收罚息", "asset"),
    Account("1221.01", "Fees receivable", "应收手续费", "asset"),
    Account("1221.02", "Interest subsidy receivable", "应收贴息", "asset"),
    Account("6011.01", "Interest income", "利息收入", "income"),
    Account("6011.02", "Penalty interest income", "罚息收入", "income"),
    Account("6021", "Fee income", "手续费收入", "income"),
    Account("1304", "Loan loss allowance", "贷款损失准备", "contra-asset"),
    Account("6702.01", "Credit impairment loss — loan provisions", "信用减值损失—贷款", "expense"),
    Account("6702.02", "Recoveries of loans written off", "已核销贷款收回", "income"),
)}

CASH, NOT_DUE, PRINCIPAL_DUE = "1002", "1303.01", "1303.02"
ACCRUED, INTEREST_DUE, PENALTY_RECV, FEE_RECV, SUBSIDY_RECV = "1132.01", "1132.02", "1132.03", "1221.01", "1221.02"
INTEREST_INCOME, PENALTY_INCOME, FEE_INCOME = "6011.01", "6011.02", "6021"
ALLOWANCE, PROVISION_EXPENSE, RECOVERY_INCOME = "1304", "6702.01", "6702.02"

# event -> lines (account, +1 debit / -1 credit, component). A rule is balanced when its components
# satisfy the identity noted beside it; `journal` checks every entry it builds.
BOOKING_RULES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "disbursement": ((NOT_DUE, 1, "principal"), (CASH, -1, "principal")),
    "fee_charge": ((FEE_RECV, 1, "fee"), (FEE_INCOME, -1, "fee")),
    "accrual": ((ACCRUED, 1, "interest"), (INTEREST_INCOME, -1, "interest")),
    # interest = borrower_interest + subsidy
    "billing": ((PRINCIPAL_DUE, 1, "principal"), (NOT_DUE, -1, "principal"),
                (INTEREST_DUE, 1, "borrower_interest"), (SUBSIDY_RECV, 1, "subsidy"), (ACCRUED, -1, "interest"),
                (FEE_RECV, 1, "fee"), (FEE_INCOME, -1, "fee")),
    "penalty": ((PENALTY_RECV, 1, "penalty"), (PENALTY_INCOME, -1, "penalty")),
    # total = penalty + fee + interest + principal
    "repayment": ((CASH, 1, "total"), (PENALTY_RECV, -1, "penalty"), (FEE_RECV, -1, "fee"),
                  (INTEREST_DUE, -1, "interest"), (PRINCIPAL_DUE, -1, "principal")),
    "subsidy_receipt": ((CASH, 1, "subsidy"), (SUBSIDY_RECV, -1, "subsidy")),
    # interest = unpaid + refunded: the borrower owes the subsidy again, the payer is refunded
    "subsidy_clawback": ((INTEREST_DUE, 1, "interest"), (SUBSIDY_RECV, -1, "unpaid"), (CASH, -1, "refunded")),
    "capitalise_overdue": ((NOT_DUE, 1, "principal"), (PRINCIPAL_DUE, -1, "principal")),
    # a negative provision is a release (the allowance falls, the expense is reversed)
    "provision": ((PROVISION_EXPENSE, 1, "provision"), (ALLOWANCE, -1, "provision")),
    # allowance + shortfall = principal_not_due + principal_due + accrued + interest + fee + penalty
    "write_off": ((ALLOWANCE, 1, "allowance"), (PROVISION_EXPENSE, 1, "shortfall"),
                  (NOT_DUE, -1, "principal_not_due"), (PRINCIPAL_DUE, -1, "principal_due"), (ACCRUED, -1, "accrued"),
                  (INTEREST_DUE, -1, "interest"), (FEE_RECV, -1, "fee"), (PENALTY_RECV, -1, "penalty")),
    "recovery": ((CASH, 1, "amount"), (RECOVERY_INCOME, -1, "amount")),
}


@dataclass(frozen=True, slots=True)
class Line:
    account: str
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True, slots=True)
class JournalEntry:
    event: str
    business_date: date
    lines: tuple[Line, ...]
    loan_id: int | None = None
    memo: str = ""


class Unbalanced(ValidationError):
    code = "unbalanced"


def journal(event: str, business_date: date, amounts: dict[str, Decimal], loan_id: int | None = None,
            memo: str = "") -> JournalEntry | None:
    """The entry a booking rule makes for these component amounts (None when every line is zero).
    A negative amount (an accrual reversal) books on the other side."""
    lines = []
    for account, side, component in BOOKING_RULES[event]:
        amount = amounts.get(component, ZERO) * side
        if amount:
            lines.append(Line(account, amount if amount > 0 else ZERO, -amount if amount < 0 else ZERO))
    if not lines:
        return None
    entry = JournalEntry(event, business_date, tuple(lines), loan_id, memo)
    check_balanced(entry)
    return entry


def check_balanced(entry: JournalEntry) -> None:
    debit = sum((ln.debit for ln in entry.lines), ZERO)
    credit = sum((ln.credit for ln in entry.lines), ZERO)
    if debit != credit:
        raise Unbalanced(f"{entry.event} entry does not balance: debit {debit} != credit {credit}")
    for ln in entry.lines:
        if ln.account not in CHART:
            raise Unbalanced(f"{entry.event}: unknown account {ln.account}")
        if ln.debit != ln.debit.quantize(FEN) or ln.credit != ln.credit.quantize(FEN):
            raise Unbalanced(f"{entry.event}: amount not in whole fen on {ln.account}")


def trial_balance(entries: Iterable[JournalEntry]) -> dict[str, tuple[Decimal, Decimal]]:
    """Account -> (total debits, total credits)."""
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for entry in entries:
        for ln in entry.lines:
            d, c = totals.get(ln.account, (ZERO, ZERO))
            totals[ln.account] = (d + ln.debit, c + ln.credit)
    return dict(sorted(totals.items()))


def balances(entries: Iterable[JournalEntry]) -> dict[str, Decimal]:
    """Account -> debit balance (credit balances negative)."""
    return {acc: d - c for acc, (d, c) in trial_balance(entries).items()}


# --- a loan's servicing state and the daily close ---------------------------------------------


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


def accrual_target(interest: Decimal, start: date, due: date, on: date) -> Decimal:
    """Interest of a period accrued by the end of `on`: floor(I × elapsed / days), so the daily
    accruals of a period sum to its scheduled interest exactly."""
    days = (due - start).days
    elapsed = min(max((on - start).days, 0), days)
    return (interest * elapsed / days).quantize(FEN, rounding=ROUND_FLOOR) if days else interest


def daily_penalty(overdue_principal: Decimal, penalty_rate: Decimal) -> Decimal:
    """One day of penalty interest: half-up(overdue principal × penalty rate / 360)."""
    return fen(Fraction(overdue_principal) * Fraction(penalty_rate) / 360)


@dataclass(frozen=True, slots=True)
class DayResult:
    state: LoanState
    entries: tuple[JournalEntry, ...] = field(default=())


def bill_through(state: LoanState, on: date) -> DayResult:
    """Bill every instalment due on or before `on` (accruing its period in full first)."""
    entries: list[JournalEntry] = []
    s = state
    while s.cur < len(s.schedule) and s.schedule[s.cur].due <= on:
        inst = s.schedule[s.cur]
        rest = inst.interest - s.accrued_in_period
        entries += _opt(journal("accrual", on, {"interest": rest}, s.loan_id))
        entries += _opt(journal("billing", on, {"principal": inst.principal, "interest": inst.interest,
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
            entries += _opt(journal("accrual", on, {"interest": target - s.accrued_in_period}, s.loan_id))
            s = replace(s, accrued_in_period=target)
        if inst.due <= on:
            billed = bill_through(s, on)
            s, entries = billed.state, entries + list(billed.entries)
    changes: dict[str, object] = {}
    since = s.overdue_since
    dpd = (on - since).days if since is not None and since < on else 0
    if dpd > 0:
        penalty = daily_penalty(s.principal_due, s.penalty_rate)
        entries += _opt(journal("penalty", on, {"penalty": penalty}, s.loan_id))
        changes["penalty_due"] = s.penalty_due + penalty
    if dpd >= DEFAULT_DPD and not s.subsidy_clawed and (s.subsidy_due or s.subsidy_received):
        clawed = s.subsidy_due + s.subsidy_received
        entries += _opt(journal("subsidy_clawback", on, {"interest": clawed, "unpaid": s.subsidy_due,
                                                         "refunded": s.subsidy_received}, s.loan_id))
        changes.update(bills=_insert_bill(s.bills, Bill(on, interest=clawed)), subsidy_due=ZERO,
                       subsidy_received=ZERO, subsidy_clawed=True)
    restructured = s.restructured_until is not None and on <= s.restructured_until
    tier = classify(dpd, restructured, s.restructured_floor)
    outstanding = s.principal_not_due + s.principal_due
    target = _provision(outstanding, rates[tier])
    if target != s.provision:
        entries += _opt(journal("provision", on, {"provision": target - s.provision}, s.loan_id))
    s = replace(s, last_closed=on, dpd=dpd, tier=tier, provision=target, **changes)
    return DayResult(s, tuple(entries))


def _provision(outstanding: Decimal, rate: Decimal) -> Decimal:
    # exact: at most 11 + 6 significant digits, well inside Decimal's 28
    return (outstanding * rate).quantize(FEN, rounding=ROUND_HALF_UP)


def provision_target(state: LoanState, rates: dict[Tier, Decimal] = PROVISION_RATES) -> Decimal:
    """The allowance a loan needs: half-up(principal outstanding × its tier's rate)."""
    return _provision(state.principal_outstanding, rates[state.tier])


def provide(state: LoanState, on: date, rates: dict[Tier, Decimal] = PROVISION_RATES) -> DayResult:
    """Bring the loan's allowance to its target: a charge when it grew (a downgrade, a new loan), a
    release when it fell (a repayment, an upgrade, settlement)."""
    target = provision_target(state, rates)
    if target == state.provision:
        return DayResult(state)
    entry = journal("provision", on, {"provision": target - state.provision}, state.loan_id)
    return DayResult(replace(state, provision=target), tuple(_opt(entry)))


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
    return DayResult(s, provided.entries + tuple(_opt(entry))), wo


def _opt(entry: JournalEntry | None) -> list[JournalEntry]:
    return [] if entry is None else [entry]


def _insert_bill(bills: tuple[Bill, ...], bill: Bill) -> tuple[Bill, ...]:
    return tuple(sorted((*bills, bill), key=lambda b: b.due))


# --- repayments ---------------------------------------------------------------------------------


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
        entries += _opt(journal("accrual", on, {"interest": accrued - s.accrued_in_period}, s.loan_id))
        pay_interest = min(rest, accrued - accrued_subsidy)
        pay_principal = rest - pay_interest
        if pay_principal > s.principal_not_due:
            raise ValidationError(f"prepayment exceeds the payoff amount {payoff_amount(state, on)} of loan {s.loan_id}")
        # The current period ends today: its accrued interest is billed, the principal prepaid is billed and paid.
        entries += _opt(journal("billing", on, {"principal": pay_principal, "interest": accrued,
                                                "borrower_interest": accrued - accrued_subsidy,
                                                "subsidy": accrued_subsidy}, s.loan_id))
        remaining_principal = s.principal_not_due - pay_principal
        dues = [i.due for i in s.schedule[s.cur:]]
        fee = inst.fee
        new_tail = () if remaining_principal == 0 else build_schedule(
            remaining_principal, annual_rate, on, dues, method, day_count, periodic_fee=fee,
            subsidy_rate=_subsidy_rate(inst, annual_rate) if subsidy_rate is None else subsidy_rate, first_seq=inst.seq)
        unpaid_interest = accrued - accrued_subsidy - pay_interest
        bills = s.bills if not unpaid_interest else _insert_bill(s.bills, Bill(on, interest=unpaid_interest))
        s = replace(s, schedule=s.schedule[:s.cur] + new_tail, accrued_in_period=ZERO, bills=bills,
                    principal_not_due=remaining_principal, subsidy_due=s.subsidy_due + accrued_subsidy)
        paid = replace(paid, interest=paid.interest + pay_interest, principal=paid.principal + pay_principal)
    entries += _opt(journal("repayment", on, {"total": paid.total, "penalty": paid.penalty, "fee": paid.fee,
                                              "interest": paid.interest, "principal": paid.principal}, s.loan_id))
    since = s.overdue_since
    return DayResult(replace(s, dpd=(on - since).days if since and since < on else 0), tuple(entries)), paid


def _subsidy_rate(inst: Instalment, annual_rate: Decimal) -> Decimal:
    """The subsidy rate implied by an instalment (subsidy / interest × rate), to six decimals."""
    if not inst.interest:
        return ZERO
    return (annual_rate * inst.subsidy / inst.interest).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)


def new_state(loan_id: int, terms: Terms, penalty_markup: Decimal,
              allocation: tuple[str, ...] = ("penalty", "fee", "interest", "principal")) -> LoanState:
    return LoanState(loan_id, schedule(terms), penalty_rate(terms.annual_rate, penalty_markup), terms.start,
                     terms.principal, allocation=allocation)


def penalty_rate(annual_rate: Decimal, markup: Decimal) -> Decimal:
    return (annual_rate * (1 + markup)).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)


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
        entries += _opt(journal("accrual", on, {"interest": accrued - s.accrued_in_period}, s.loan_id))
        entries += _opt(journal("billing", on, {"interest": accrued, "borrower_interest": accrued}, s.loan_id))
        if accrued:
            s = replace(s, bills=_insert_bill(s.bills, Bill(on, interest=accrued)))
    overdue_principal = s.principal_due
    entries += _opt(journal("capitalise_overdue", on, {"principal": overdue_principal}, s.loan_id))
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
    entries += _opt(journal("accrual", on, {"interest": accrued - s.accrued_in_period}, s.loan_id))
    entries += _opt(journal("billing", on, {"principal": s.principal_not_due, "interest": accrued,
                                            "borrower_interest": accrued}, s.loan_id))
    bill = Bill(on, interest=accrued, principal=s.principal_not_due)
    s = replace(s, schedule=s.schedule[:s.cur], accrued_in_period=ZERO, principal_not_due=ZERO,
                bills=_insert_bill(s.bills, bill) if bill.total else s.bills)
    return DayResult(s, tuple(entries))
