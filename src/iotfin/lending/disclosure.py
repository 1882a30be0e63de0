"""Honest disclosure before signing: the key-facts statement (贷款关键信息说明), zh-CN and en. Pure.

The annualised rate is the one the People's Bank of China asks lenders to show (PBOC announcement
[2021] No. 3): the internal rate of return of every cash flow the borrower pays — interest and all
fees — per period, times the periods in a year. It is shown gross and, where a third party pays part
of the interest (贴息), net of that subsidy.

Other contexts call `key_facts(terms, ...)` and `annualised_rate(cashflows)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext

from iotfin.core.errors import ValidationError
from iotfin.core.money import ZERO
from iotfin.lending import model as m

RATE_DISPLAY = Decimal("0.0001")  # a rate is shown to 0.01 % (as a fraction: four decimals)


def annualised_rate(cashflows: Sequence[tuple[int, Decimal]], periods_per_year: int = 12) -> Decimal:
    """IRR × periods a year, to six decimals (0.0001 %).

    `cashflows` are (period index, amount) from the borrower's side: what they receive is positive,
    what they pay negative. Solved in Decimal by bisection on the net present value, which is
    monotone in the rate for a loan (one inflow, then outflows). Hand-written rather than
    numpy-financial's `irr`: that finds the roots of a degree-n polynomial in float64 and can return
    nan or a spurious root; a bracketed bisection is twenty lines, exact to the digit we show and
    reproducible on every platform.
    """
    flows = sorted((int(t), Decimal(a)) for t, a in cashflows)
    if not flows or not any(a > 0 for _, a in flows) or not any(a < 0 for _, a in flows):
        raise ValidationError("an annualised rate needs money received and money paid")
    if any(t < 0 for t, _ in flows):
        raise ValidationError("cash-flow periods must be >= 0")
    with localcontext() as ctx:
        ctx.prec = 34

        def npv(r: Decimal) -> Decimal:
            base = 1 + r
            return sum((a / base ** t for t, a in flows), Decimal(0))

        lo, hi = Decimal("-0.99"), Decimal("1")  # per period: -99 % .. +100 % a month
        f_lo, f_hi = npv(lo), npv(hi)
        if f_lo * f_hi > 0:
            raise ValidationError("no annualised rate: the cash flows do not change sign in a bounded rate")
        for _ in range(80):  # 2^-80 of the bracket: far below the 1e-8 per period we keep
            mid = (lo + hi) / 2
            f_mid = npv(mid)
            if f_mid == 0:
                lo = hi = mid
                break
            if (f_mid > 0) == (f_lo > 0):
                lo, f_lo = mid, f_mid
            else:
                hi = mid
        return ((lo + hi) / 2 * periods_per_year).quantize(m.RATE_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class KeyFacts:
    principal: Decimal
    term_months: int
    start: date
    method: m.Method
    day_count: m.DayCount
    contract_rate: Decimal  # nominal annual rate in the contract
    apr_gross: Decimal  # IRR-based annualised cost, all interest and fees
    apr_net: Decimal  # the same, net of the third-party subsidy
    upfront_fee: Decimal
    periodic_fees: Decimal
    total_interest: Decimal  # gross
    subsidy: Decimal
    total_cost: Decimal  # what the borrower pays beyond the principal: interest net of subsidy + fees
    total_repayment: Decimal
    penalty_rate: Decimal | None
    schedule: tuple[m.Instalment, ...]
    text_zh: str
    text_en: str

    def to_json(self) -> dict[str, object]:
        return {
            "principal": self.principal, "term_months": self.term_months, "start": self.start,
            "method": self.method.value, "day_count": self.day_count.value, "contract_rate": self.contract_rate,
            "apr_gross": self.apr_gross, "apr_net": self.apr_net, "apr_gross_percent": percent(self.apr_gross),
            "apr_net_percent": percent(self.apr_net), "upfront_fee": self.upfront_fee,
            "periodic_fees": self.periodic_fees, "total_interest": self.total_interest, "subsidy": self.subsidy,
            "total_cost": self.total_cost, "total_repayment": self.total_repayment, "penalty_rate": self.penalty_rate,
            "schedule": [{"seq": i.seq, "due": i.due, "principal": i.principal, "interest": i.borrower_interest,
                          "fee": i.fee, "subsidy": i.subsidy, "total": i.borrower_total} for i in self.schedule],
            "text_zh": self.text_zh, "text_en": self.text_en,
        }


def percent(rate: Decimal) -> str:
    return f"{(rate * 100).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def borrower_cashflows(terms: m.Terms, schedule: Sequence[m.Instalment], upfront_fee: Decimal = ZERO,
                       net_of_subsidy: bool = True) -> list[tuple[int, Decimal]]:
    """(month index, amount) as the borrower sees them: the principal less the upfront fee at 0, then
    every instalment (principal, interest — net of subsidy or not — and fees) at its month."""
    flows = [(0, terms.principal - upfront_fee)]
    for inst in schedule:
        months = (inst.due.year - terms.start.year) * 12 + inst.due.month - terms.start.month
        interest = inst.borrower_interest if net_of_subsidy else inst.interest
        flows.append((months, -(inst.principal + interest + inst.fee)))
    return flows


def key_facts(terms: m.Terms, upfront_fee: Decimal = ZERO, penalty_rate: Decimal | None = None) -> KeyFacts:
    """The key-facts statement for these terms, in Chinese and English."""
    sched = m.schedule(terms)
    gross = annualised_rate(borrower_cashflows(terms, sched, upfront_fee, net_of_subsidy=False))
    net = annualised_rate(borrower_cashflows(terms, sched, upfront_fee, net_of_subsidy=True))
    total_interest = sum((i.interest for i in sched), ZERO)
    subsidy = sum((i.subsidy for i in sched), ZERO)
    fees = sum((i.fee for i in sched), ZERO)
    cost = total_interest - subsidy + fees + upfront_fee
    repayment = sum((i.borrower_total for i in sched), ZERO)
    facts = dict(principal=terms.principal, term_months=terms.term, start=terms.start, method=terms.method,
                 day_count=terms.day_count, contract_rate=terms.annual_rate, apr_gross=gross, apr_net=net,
                 upfront_fee=upfront_fee, periodic_fees=fees, total_interest=total_interest, subsidy=subsidy,
                 total_cost=cost, total_repayment=repayment, penalty_rate=penalty_rate, schedule=sched)
    return KeyFacts(**facts, text_zh=_text_zh(facts), text_en=_text_en(facts))


METHOD_ZH = {m.Method.EQUAL_INSTALMENT: "等额本息", m.Method.EQUAL_PRINCIPAL: "等额本金",
             m.Method.INTEREST_ONLY: "按月付息、到期还本", m.Method.BULLET: "到期一次还本付息"}
DAY_COUNT_ZH = {m.DayCount.ACT_ACT: "实际天数/实际天数", m.DayCount.ACT_365: "实际天数/365",
                m.DayCount.ACT_360: "实际天数/360", m.DayCount.D30_360: "30/360"}
METHOD_EN = {m.Method.EQUAL_INSTALMENT: "equal monthly instalments", m.Method.EQUAL_PRINCIPAL:
             "equal monthly principal", m.Method.INTEREST_ONLY: "monthly interest, principal at maturity",
             m.Method.BULLET: "principal and interest in one payment at maturity"}

RIGHTS_ZH = (
    "您可以提前偿还部分或全部贷款，利息按实际占用天数计算，不收取提前还款违约金。",
    "因经营困难无法按期还款的，您可以通过绿色通道申请延期或重新安排还款计划，我们将在审核后书面答复。",
    "您有权随时查询贷款余额、还款计划和每笔还款的分配明细。",
    "您可以随时撤回对设备数据的授权；撤回不影响已发放贷款，但可能影响后续授信。",
    "如有异议，可联系贷款机构客服，或拨打金融消费者投诉热线 12378。",
)
RIGHTS_EN = (
    "You may repay part or all of the loan early; interest is charged for the days used and there is no prepayment penalty.",
    "If hardship prevents you from paying on time, you may ask through the green channel for a deferral or a new "
    "repayment plan; we answer in writing after review.",
    "You may at any time see your balance, your schedule and how each payment was applied.",
    "You may withdraw your consent to the use of device data at any time; loans already made are not affected, "
    "future credit may be.",
    "For complaints, contact the lender, or the financial consumer hotline 12378.",
)


def _text_zh(f: dict) -> str:
    lines = [
        "贷款关键信息说明",
        f"借款金额：{f['principal']} 元；期限：{f['term_months']} 个月；起息日：{f['start']}；还款方式：{METHOD_ZH[f['method']]}。",
        f"合同利率（单利，年）：{percent(f['contract_rate'])}；计息规则：{DAY_COUNT_ZH[f['day_count']]}。",
        f"年化利率（内部收益率法，含全部利息和费用）：{percent(f['apr_gross'])}。",
    ]
    if f["subsidy"]:
        lines.append(f"扣除财政/第三方贴息 {f['subsidy']} 元后，您实际承担的年化利率：{percent(f['apr_net'])}。"
                     "如贷款逾期超过90天，贴息将被收回并由您承担。")
    lines += [
        f"利息合计 {f['total_interest']} 元；一次性费用 {f['upfront_fee']} 元；期间费用合计 {f['periodic_fees']} 元；"
        f"您需支付的借款总成本 {f['total_cost']} 元，还款总额 {f['total_repayment']} 元。",
    ]
    if f["penalty_rate"] is not None:
        lines.append(f"逾期罚息：逾期本金按年利率 {percent(f['penalty_rate'])} 按日计收。")
    lines.append("您的权利：")
    lines += [f"{k}. {r}" for k, r in enumerate(RIGHTS_ZH, 1)]
    return "\n".join(lines)


def _text_en(f: dict) -> str:
    lines = [
        "Key facts statement",
        f"Amount: {f['principal']} yuan; term: {f['term_months']} months; from {f['start']}; repayment: "
        f"{METHOD_EN[f['method']]}.",
        f"Contract rate (simple, annual): {percent(f['contract_rate'])}; day count {f['day_count'].value}.",
        f"Annualised rate (IRR method, all interest and fees): {percent(f['apr_gross'])}.",
    ]
    if f["subsidy"]:
        lines.append(f"After the interest subsidy of {f['subsidy']} yuan paid by a third party, the annualised rate you "
                     f"bear is {percent(f['apr_net'])}. If the loan is more than 90 days overdue the subsidy is "
                     "taken back and becomes yours to pay.")
    lines.append(f"Total interest {f['total_interest']} yuan; upfront fee {f['upfront_fee']} yuan; periodic fees "
                 f"{f['periodic_fees']} yuan; total cost to you {f['total_cost']} yuan; total repayment "
                 f"{f['total_repayment']} yuan.")
    if f["penalty_rate"] is not None:
        lines.append(f"Late payment: overdue principal bears penalty interest at {percent(f['penalty_rate'])} a year, "
                     "charged daily.")
    lines.append("Your rights:")
    lines += [f"{k}. {r}" for k, r in enumerate(RIGHTS_EN, 1)]
    return "\n".join(lines)


def _product_terms(product_code: str, principal: Decimal, annual_rate: Decimal, term: int, start: date,
                   subsidy_rate: Decimal = ZERO) -> tuple[m.Product, m.Terms, Decimal]:
    prod = m.product(product_code)
    terms = m.Terms(principal, annual_rate, term, start, prod.method, prod.day_count, periodic_fee=prod.periodic_fee,
                    subsidy_rate=subsidy_rate)
    return prod, terms, m.fen(principal * prod.upfront_fee_rate)


def product_key_facts(product_code: str, principal: Decimal, annual_rate: Decimal, term: int, start: date,
                      subsidy_rate: Decimal = ZERO) -> KeyFacts:
    """Key facts for an offer on one of the shelf's products (its method, day count, fees, penalty)."""
    prod, terms, upfront_fee = _product_terms(product_code, principal, annual_rate, term, start, subsidy_rate)
    return key_facts(terms, upfront_fee, m.penalty_rate(annual_rate, prod.penalty_markup))


def product_offer_apr(product_code: str, principal: Decimal, annual_rate: Decimal, term: int,
                      start: date) -> tuple[Decimal, Decimal, tuple[m.Instalment, ...], m.Method]:
    """What `product_key_facts` (no subsidy) says of the APR — (APR, upfront fee, schedule, method) —
    without its second IRR and its texts: the credit decision's disclosure, once per decision."""
    _, terms, upfront_fee = _product_terms(product_code, principal, annual_rate, term, start)
    sched = m.schedule(terms)
    return (annualised_rate(borrower_cashflows(terms, sched, upfront_fee, net_of_subsidy=False)), upfront_fee, sched,
            terms.method)


@dataclass(frozen=True, slots=True)
class OfferFacts:
    """An offer's key facts as decisioning discloses them: the APR (IRR, basis point), the upfront fee,
    the first instalment and the repayment method's names."""

    apr: Decimal
    fee: Decimal
    first_payment: Decimal
    method_zh: str
    method_en: str


def offer_terms(servicing: str, principal: Decimal, annual_rate: Decimal, months: int, start: date) -> OfferFacts:
    """Decisioning's product-terms port: the offer's APR and repayment as the servicing product books it
    (its repayment method, day count, upfront and periodic fees), so the key-facts statement at signing
    shows the same APR as the offer."""
    apr, fee, schedule, method = product_offer_apr(servicing, principal, annual_rate, months, start)
    return OfferFacts(apr.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP), fee, schedule[0].borrower_total,
                      METHOD_ZH[method], METHOD_EN[method])
