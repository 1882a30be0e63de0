"""The general ledger: chart of accounts and booking rules as data, journal entries and balances."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, ZERO


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
    Account("2241.01", "Voucher payments in settlement", "数字债权凭证清算款", "liability"),
)}

CASH, NOT_DUE, PRINCIPAL_DUE = "1002", "1303.01", "1303.02"
ACCRUED, INTEREST_DUE, PENALTY_RECV, FEE_RECV, SUBSIDY_RECV = "1132.01", "1132.02", "1132.03", "1221.01", "1221.02"
INTEREST_INCOME, PENALTY_INCOME, FEE_INCOME = "6011.01", "6011.02", "6021"
ALLOWANCE, PROVISION_EXPENSE, RECOVERY_INCOME = "1304", "6702.01", "6702.02"
VOUCHER_CLEARING = "2241.01"

# event -> lines (account, +1 debit / -1 credit, component). A rule is balanced when its components
# satisfy the identity noted beside it; `journal` checks every entry it builds.
BOOKING_RULES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "disbursement": ((NOT_DUE, 1, "principal"), (CASH, -1, "principal")),
    "fee_charge": ((FEE_RECV, 1, "fee"), (FEE_INCOME, -1, "fee")),
    # the upfront fee deducted from the proceeds at disbursement: charged and settled at once (never overdue)
    "fee_deducted": ((CASH, 1, "fee"), (FEE_RECV, -1, "fee")),
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
    # a digital debt voucher's payment (iotfin.receivables): collected from the core enterprise into
    # clearing, then paid out to each holder; clearing nets to zero once every share is paid out
    "voucher_collection": ((CASH, 1, "amount"), (VOUCHER_CLEARING, -1, "amount")),
    "voucher_payout": ((VOUCHER_CLEARING, 1, "amount"), (CASH, -1, "amount")),
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


def as_entries(entry: JournalEntry | None) -> list[JournalEntry]:
    return [] if entry is None else [entry]
