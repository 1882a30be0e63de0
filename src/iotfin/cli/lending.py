"""`iotfin loan ...`: schedules, disclosure, booking, repayments, the daily close, relief, monitoring
actions and the ledger reports. Errors are the platform's typed errors (one line, an exit code)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import ValidationError
from iotfin.core.jsonout import dumps
from iotfin.core.money import ZERO, to_money
from iotfin.lending import model as m

loan_app = typer.Typer(help="Loans: schedules, disclosure, servicing, daily close, general ledger.", no_args_is_help=True)
line_app = typer.Typer(help="Revolving credit lines: open, freeze, unfreeze.", no_args_is_help=True)
loan_app.add_typer(line_app, name="line")
offer_app = typer.Typer(help="Offers of approved decisions: list, accept (for the enterprise), book.",
                        no_args_is_help=True)
loan_app.add_typer(offer_app, name="offer")

DateOpt = Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD (Asia/Shanghai).")]


def _date(text: str, name: str = "date") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"--{name}: not a date (YYYY-MM-DD): {text!r}") from None


def _rate(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValidationError(f"--{name}: not a decimal rate such as 0.0435: {text!r}") from None
    if value != value.quantize(m.RATE_QUANTUM) or not value.is_finite():
        raise ValidationError(f"--{name}: a rate has at most six decimals (0.0001 %): {text!r}")
    return value


def _enum(cls: type, text: str, name: str) -> Any:
    try:
        return cls(text)
    except ValueError:
        raise ValidationError(f"--{name}: one of {', '.join(x.value for x in cls)}, not {text!r}") from None


def _ws(data_dir: Path | None) -> Any:
    return kit.workspace(data_dir, schema=True)


def _emit(data: Any, as_json: bool, render: Any = None) -> None:
    kit.emit(data, as_json, render or (lambda d: kit.out.print(kit.kv_table("", d) if isinstance(d, dict) else d)))


def _print(text: str) -> None:
    kit.out.print(text, markup=False)


# --- pure: schedules and disclosure -------------------------------------------------------------


@loan_app.command("schedule")
def schedule_cmd(
    principal: Annotated[str, typer.Option(help="Principal, yuan (decimal).")],
    annual_rate: Annotated[str, typer.Option(help="Annual rate as a fraction, e.g. 0.12.")],
    term: Annotated[int, typer.Option(help="Months.")],
    start: Annotated[str, typer.Option(help="Start date, YYYY-MM-DD.")],
    method: Annotated[str, typer.Option(help="equal-instalment | equal-principal | interest-only | bullet")] = "equal-instalment",
    day_count: Annotated[str, typer.Option(help="actual/actual | actual/365 | actual/360 | 30/360")] = "30/360",
    grace_principal: int = 0,
    grace_interest: int = 0,
    as_json: JsonOpt = False,
) -> None:
    """A cent-exact repayment schedule (half-up to the fen; the last instalment absorbs the residue)."""
    terms = m.Terms(to_money(principal), _rate(annual_rate, "annual-rate"), term, _date(start, "start"),
                    _enum(m.Method, method, "method"), _enum(m.DayCount, day_count, "day-count"), grace_principal,
                    grace_interest)
    rows = [{"seq": i.seq, "start": i.start, "due": i.due, "principal": i.principal, "interest": i.interest,
             "total": i.principal + i.interest} for i in m.schedule(terms)]
    data = {"principal": terms.principal, "annual_rate": terms.annual_rate, "term": term, "method": terms.method.value,
            "day_count": terms.day_count.value, "rounding": "half-up to the fen; the last instalment absorbs the residue",
            "instalments": rows, "total_interest": sum((r["interest"] for r in rows), ZERO)}

    def render(d: dict[str, Any]) -> None:
        t = Table(title=f"{d['principal']} at {d['annual_rate']} over {term} months, {d['method']}, {d['day_count']}",
                  title_justify="left")
        for col in ("seq", "due", "principal", "interest", "total"):
            t.add_column(col, justify="right")
        for r in d["instalments"]:
            t.add_row(str(r["seq"]), str(r["due"]), str(r["principal"]), str(r["interest"]), str(r["total"]))
        kit.out.print(t)
        kit.out.print(f"total interest {d['total_interest']} — {d['rounding']}")

    _emit(data, as_json, render)


@loan_app.command("apr")
def apr_cmd(
    principal: Annotated[str, typer.Option(help="Principal, yuan.")],
    annual_rate: Annotated[str, typer.Option(help="Contract annual rate, e.g. 0.08.")],
    term: Annotated[int, typer.Option(help="Months.")],
    start: Annotated[str, typer.Option(help="Start date.")] = "2026-01-01",
    product: Annotated[str | None, typer.Option(help="A product code (sets method, day count, fees, penalty).")] = None,
    method: Annotated[str, typer.Option()] = "equal-instalment",
    day_count: Annotated[str, typer.Option()] = "30/360",
    upfront_fee: Annotated[str, typer.Option(help="One-off fee at drawdown, yuan.")] = "0",
    periodic_fee: Annotated[str, typer.Option(help="Fee per instalment, yuan.")] = "0",
    subsidy_rate: Annotated[str, typer.Option(help="Annual rate a third party pays (贴息).")] = "0",
    lang: Annotated[str, typer.Option(help="zh | en | both (text output).")] = "both",
    as_json: JsonOpt = False,
) -> None:
    """The key-facts statement: annualised rate by IRR over all interest and fees, gross and net of subsidy."""
    from iotfin.lending.disclosure import (  # lazy: the command line starts without it
        key_facts,
        product_key_facts,
    )

    rate, subsidy, begin = _rate(annual_rate, "annual-rate"), _rate(subsidy_rate, "subsidy-rate"), _date(start, "start")
    if product:
        facts = product_key_facts(product, to_money(principal), rate, term, begin, subsidy)
    else:
        terms = m.Terms(to_money(principal), rate, term, begin, _enum(m.Method, method, "method"),
                        _enum(m.DayCount, day_count, "day-count"), periodic_fee=to_money(periodic_fee),
                        subsidy_rate=subsidy)
        facts = key_facts(terms, to_money(upfront_fee))
    if as_json:
        _emit(facts.to_json(), True)
    else:
        _print("\n\n".join(t for lg, t in (("zh", facts.text_zh), ("en", facts.text_en)) if lang in (lg, "both")))


# --- servicing -------------------------------------------------------------------------------------


@loan_app.command("book")
def book_cmd(
    enterprise: Annotated[int, typer.Option(help="Enterprise id.")],
    product: Annotated[str, typer.Option(help=f"One of: {', '.join(m.PRODUCTS)}.")],
    principal: Annotated[str, typer.Option()],
    annual_rate: Annotated[str, typer.Option()],
    term: Annotated[int, typer.Option(help="Months.")],
    start: Annotated[str, typer.Option(help="Drawdown date.")],
    subsidy_rate: Annotated[str, typer.Option()] = "0",
    line: Annotated[int | None, typer.Option("--line", help="Draw under this credit line.")] = None,
    contract_ref: Annotated[str | None, typer.Option(help="The signed contract's reference.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign and disburse a loan; the contract is anchored in the ledger."""
    from iotfin.lending.service import Offer  # lazy: the command line starts without it

    ws = _ws(data_dir)
    offer = Offer(enterprise, product, to_money(principal), _rate(annual_rate, "annual-rate"), term,
                  _rate(subsidy_rate, "subsidy-rate"), line)
    loan_id = ws.lending.book(offer, _date(start, "start"), actor="cli", contract_ref=contract_ref)
    _emit({"loan_id": loan_id}, as_json)


@loan_app.command("show")
def show_cmd(loan: Annotated[int, typer.Argument(help="Loan id.")], data_dir: DataDirOpt = None,
             as_json: JsonOpt = False) -> None:
    """A loan: balances, classification, schedule and its audit trail."""
    data = _ws(data_dir).lending.loan(loan)
    _emit(data, as_json, lambda d: _print(_dumps(d)))


@loan_app.command("repay")
def repay_cmd(loan: Annotated[int, typer.Argument(help="Loan id.")], amount: Annotated[str, typer.Option()],
              date_: DateOpt, prepay: Annotated[bool, typer.Option("--prepay", help="Pay ahead (partial or full).")] = False,
              data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Record a repayment (penalty → fee → interest → principal, oldest first)."""
    _emit(_ws(data_dir).lending.repay(loan, to_money(amount), _date(date_), prepay, actor="cli"), as_json)


@loan_app.command("close-day")
def close_day_cmd(date_: DateOpt, chunk: Annotated[int, typer.Option(min=1, help="Loans per transaction.")] = 100_000,
                  simulate: Annotated[bool, typer.Option("--simulate", help="Simulation: allow a DATE after today "
                                                         "(demos, what-if workspaces; never production).")] = False,
                  data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Close of business through DATE: accrual, due processing, overdue, penalty, classification, GL.
    Idempotent; after a crash, run it again to finish. A DATE after today (Asia/Shanghai) is refused
    unless --simulate (or IOTFIN_SIMULATION=1). `iotfin serve` also closes by itself (close_at)."""
    run = _ws(data_dir).scheduled_close.run(_date(date_), "manual", simulate=simulate, chunk=chunk)
    runs = run["days"]
    data = {"days": runs, "loans_closed": sum(r["loans_closed"] for r in runs), "run_id": run["run_id"]}
    _emit(data, as_json, lambda d: _print(f"closed {len(runs)} day(s) through {date_}: {d['loans_closed']} loan-days"))


@loan_app.command("close-status")
def close_status_cmd(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The daily close: closed through which date, the last run, the next scheduled run (close_at)."""
    data = _ws(data_dir).scheduled_close.status()

    def show(d: dict[str, Any]) -> None:
        last = d["last_run"]
        _print(f"closed through {d['closed_through'] or 'never'}; next run {d['next_run_at']}"
               + (" (simulation mode)" if d["simulation"] else ""))
        if last is not None:
            _print(f"last run #{last['id']} ({last['trigger']}): {last['status']}, {last['days']} day(s) through "
                   f"{last['through']}" + (f" — {last['error']}" if last["error"] else ""))

    _emit(data, as_json, show)


@loan_app.command("restructure")
def restructure_cmd(loan: Annotated[int, typer.Argument()], date_: DateOpt,
                    term: Annotated[int, typer.Option(help="New term in months from DATE.")],
                    reason: Annotated[str, typer.Option(help="The borrower's hardship, for the audit trail.")],
                    grace: Annotated[int, typer.Option(help="Months of principal deferral.")] = 0,
                    data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Green-channel relief: deferral / rescheduling; the loan is classified as restructured."""
    detail = _ws(data_dir).lending.restructure(loan, _date(date_), term, grace, reason, actor="cli")
    _emit(detail, as_json, lambda d: _print(f"loan {loan} restructured: {d['tier_before']} -> {d['tier_after']}, "
                                            f"in observation until {d['observation_until']}"))


@loan_app.command("accelerate")
def accelerate_cmd(loan: Annotated[int, typer.Argument()], date_: DateOpt, reason: Annotated[str, typer.Option()],
                   data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Acceleration: all principal and accrued interest fall due now."""
    _emit(_ws(data_dir).lending.accelerate(loan, _date(date_), reason, actor="cli"), as_json)


@loan_app.command("write-off")
def write_off_cmd(loan: Annotated[int, typer.Argument()], date_: DateOpt, reason: Annotated[str, typer.Option()],
                  data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Write off a loan classified loss against the loan-loss allowance (核销)."""
    detail = _ws(data_dir).lending.write_off(loan, _date(date_), reason, actor="cli")
    _emit(detail, as_json, lambda d: _print(f"loan {loan} written off: {d['total']} yuan "
                                            f"({d['allowance_used']} from the allowance) / 已核销"))


@loan_app.command("recover")
def recover_cmd(loan: Annotated[int, typer.Argument()], amount: Annotated[str, typer.Option()], date_: DateOpt,
                data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Cash recovered on a written-off loan (已核销贷款收回)."""
    _emit(_ws(data_dir).lending.recover(loan, to_money(amount), _date(date_), actor="cli"), as_json)


@loan_app.command("margin-call")
def margin_call_cmd(loan: Annotated[int, typer.Argument()], amount: Annotated[str, typer.Option()],
                    deadline: Annotated[str, typer.Option()], reason: Annotated[str, typer.Option()], date_: DateOpt,
                    data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Ask for more collateral or a repayment by a deadline (recorded on the loan's audit trail)."""
    _emit(_ws(data_dir).lending.margin_call(loan, to_money(amount), _date(deadline, "deadline"), reason,
                                            _date(date_), actor="cli"), as_json)


@line_app.command("open")
def line_open(enterprise: Annotated[int, typer.Option()], limit: Annotated[str, typer.Option()],
              annual_rate: Annotated[str, typer.Option()], expires: Annotated[str, typer.Option()],
              data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Open a revolving credit line."""
    line_id = _ws(data_dir).lending.open_line(enterprise, to_money(limit), _rate(annual_rate, "annual-rate"),
                                              _date(expires, "expires"), actor="cli")
    _emit({"credit_line_id": line_id}, as_json)


@line_app.command("freeze")
def line_freeze(line: Annotated[int, typer.Argument()], reason: Annotated[str, typer.Option()], date_: DateOpt,
                data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Freeze a credit line: no new drawdowns."""
    _emit(_ws(data_dir).lending.set_line_status(line, "frozen", reason, _date(date_), actor="cli"), as_json)


@line_app.command("unfreeze")
def line_unfreeze(line: Annotated[int, typer.Argument()], reason: Annotated[str, typer.Option()], date_: DateOpt,
                  data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    _emit(_ws(data_dir).lending.set_line_status(line, "active", reason, _date(date_), actor="cli"), as_json)


# --- offers: `iotfin lending ...` -------------------------------------------------------------------


@offer_app.command("list")
def offers_cmd(status: Annotated[str | None, typer.Option(help="open, accepted, booked or expired.")] = None,
               enterprise: Annotated[int | None, typer.Option(help="Enterprise id.")] = None,
               limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
               data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Offers, newest first, with their APR, expiry and status."""
    from iotfin.db.pagination import PageParams  # lazy: the command line starts without it

    items, _ = _ws(data_dir).offers.page(PageParams(limit, None), status=status, enterprise_id=enterprise)

    def render(rows: list[dict[str, Any]]) -> None:
        t = Table(title="Offers / 要约", title_justify="left")
        for col in ("id", "enterprise", "lender", "product", "amount", "tenor", "rate", "APR", "expires", "status"):
            t.add_column(col)
        for o in rows:
            t.add_row(str(o["id"]), str(o["enterprise_id"]), o["lender"] or "(operator)", o["servicing_product"],
                      f"{o['amount']:,}", str(o["tenor_months"]), str(o["annual_rate"]), o["apr_percent"],
                      o["expires_at"].isoformat(timespec="minutes"), o["status"])
        kit.out.print(t)

    _emit(items, as_json, render)


@offer_app.command("accept")
def accept_offer_cmd(offer: Annotated[int, typer.Argument(help="Offer id.")],
                     digest: Annotated[str, typer.Option(help="SHA-256 of the key-facts statement the enterprise read "
                                                         "(the offer's key_facts.digest).")],
                     by: Annotated[str, typer.Option(help="Who accepts for the enterprise (recorded).")] = "cli",
                     data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Record the enterprise's acceptance of an offer (operator tool; enterprises accept over the API)."""
    data = _ws(data_dir).offers.accept(offer, digest, actor=f"cli:{by}")
    _emit(data, as_json, lambda d: _print(f"offer {d['id']} {d['status']} at {d['accepted_at']}"))


@offer_app.command("book")
def book_offer_cmd(offer: Annotated[int, typer.Argument(help="Offer id.")],
                   start: Annotated[str | None, typer.Option(help="Value date (default: the offer's).")] = None,
                   contract_ref: Annotated[str | None, typer.Option(help="The signed contract's reference.")] = None,
                   data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Book an accepted offer exactly as offered (a line-serviced offer opens its credit line)."""
    data = _ws(data_dir).offers.book(offer, lender_tenant_id=None, operator=True, actor="cli",
                                     start=None if start is None else _date(start, "start"), contract_ref=contract_ref)
    data.pop("offer", None)
    _emit(data, as_json)


# --- reports ---------------------------------------------------------------------------------------


@loan_app.command("trial-balance")
def trial_balance_cmd(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Debits and credits per GL account (借贷试算平衡表), with the sub-ledger reconciliation."""
    ws = _ws(data_dir)
    data = ws.lending.trial_balance() | {"reconciliation": ws.lending.reconcile()}

    def render(d: dict[str, Any]) -> None:
        t = Table(title="Trial balance / 试算平衡表", title_justify="left")
        for col in ("account", "name", "科目", "debit", "credit"):
            t.add_column(col, justify="right" if col in ("debit", "credit") else "left")
        for r in d["accounts"]:
            t.add_row(r["account"], r["name_en"], r["name_zh"], f"{r['debit']:,}", f"{r['credit']:,}")
        t.add_row("", "total", "合计", f"{d['total_debit']:,}", f"{d['total_credit']:,}")
        kit.out.print(t)
        kit.out.print(f"balanced: {d['balanced']}; sub-ledger reconciled: {d['reconciliation']['reconciled']}")

    _emit(data, as_json, render)


@loan_app.command("portfolio")
def portfolio_cmd(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Active loans by five-tier classification (五级分类) with balances."""
    _emit(_ws(data_dir).lending.portfolio(), as_json, lambda d: _print(_dumps(d)))


def _dumps(data: Any) -> str:
    return dumps(data, indent=True)
