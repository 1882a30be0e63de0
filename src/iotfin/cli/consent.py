"""`iotfin consent ...`: grant, withdraw, reconfirm, list, check, access-log."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import Unauthorized, ValidationError
from iotfin.core.jsonout import dumps
from iotfin.core.time import utc_now

consent_app = typer.Typer(help="Enterprise consent (数据授权): grants, withdrawal, reconfirmation, access log.",
                          no_args_is_help=True)

EnterpriseOpt = Annotated[int, typer.Option("--enterprise", help="Enterprise id.")]


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"--{name}: not an ISO date (YYYY-MM-DD): {text!r}") from None


def _time(text: str, name: str) -> datetime:
    return kit.aware_time(text, name, "2027-06-30T23:59:59+08:00")


GRANT_COLUMNS = ("id", "enterprise_id", "recipient", "purpose", "scopes", "window_start", "window_end", "expires_at",
                 "reconfirm_due", "status")
LOG_COLUMNS = ("id", "at", "recipient", "scope", "purpose", "allowed", "reason", "reason_zh", "grant_id")
DECISION_COLUMNS = ("allowed", "reason", "reason_zh", "reason_en", "grant_id")


def _run(data_dir: Path | None, as_json: bool, title: str, fn: Any, columns: tuple[str, ...] = GRANT_COLUMNS) -> None:
    ws = kit.workspace(data_dir, schema=True)
    try:
        data = fn(ws)
    finally:
        ws.close()  # flushes the access log
    kit.emit(data, as_json, lambda d: kit.out.print(_render(title, d, columns)))


def _render(title: str, data: Any, columns: tuple[str, ...]) -> Any:


    rows = data.get("items") if isinstance(data, dict) and "items" in data else [data]
    if not rows:
        return f"{title}: none / 无"
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*[v if isinstance(v := row.get(c), str) else dumps(v).strip('"') for c in columns])
    return table


@consent_app.command("grant")
def grant(
    enterprise: EnterpriseOpt,
    recipient: Annotated[str, typer.Option(help="Code of the recipient (lender tenant or partner).")],
    purpose: Annotated[str, typer.Option(help="credit_assessment, post_loan_monitoring, financing_verification, supply_chain_service.")],
    scope: Annotated[list[str], typer.Option("--scope", help="A data scope, e.g. telemetry:energy; repeat for more.")],
    window_start: Annotated[str, typer.Option(help="First business date of data that may be read.")],
    window_end: Annotated[str | None, typer.Option(help="Last business date of data (default: the expiry date).")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry (ISO 8601 with offset; at most 12 months; default 12 months).")] = None,
    reconfirm_days: Annotated[int, typer.Option(help="Reconfirmation interval, 1-90 days.")] = 90,
    onward: Annotated[list[str] | None, typer.Option("--onward", help="A third party the recipient may pass the data to.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant a recipient data scopes for a purpose, data window and expiry (anchored in the ledger)."""
    from iotfin.consent.model import GrantRequest  # lazy: the command line starts without it
    from iotfin.consent.service import grant_json  # lazy: the command line starts without it

    now = utc_now()
    expires_at = _time(expires, "expires") if expires else now + timedelta(days=365)
    request = GrantRequest(enterprise_id=enterprise, recipient=recipient, purpose=purpose, scopes=tuple(scope),
                           window_start=_date(window_start, "window-start"),
                           window_end=_date(window_end, "window-end") if window_end else expires_at.date(),
                           expires_at=expires_at, reconfirm_days=reconfirm_days, onward_recipients=tuple(onward or ()))
    _run(data_dir, as_json, "consent granted / 已授权", lambda ws: grant_json(ws.consent.grant(request, now), now))


@consent_app.command("withdraw")
def withdraw(grant_id: Annotated[int, typer.Argument(help="Consent id.")], enterprise: EnterpriseOpt,
             data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Withdraw a consent: refused from the next request on."""
    from iotfin.consent.service import grant_json  # lazy: the command line starts without it

    _run(data_dir, as_json, "consent withdrawn / 已撤回",
         lambda ws: grant_json(ws.consent.withdraw(grant_id, enterprise), utc_now()))


@consent_app.command("reconfirm")
def reconfirm(grant_id: Annotated[int, typer.Argument(help="Consent id.")], enterprise: EnterpriseOpt,
              data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Reconfirm a consent (due at least every 90 days, or it stops working)."""
    from iotfin.consent.service import grant_json  # lazy: the command line starts without it

    _run(data_dir, as_json, "consent reconfirmed / 已确认",
         lambda ws: grant_json(ws.consent.reconfirm(grant_id, enterprise), utc_now()))


@consent_app.command("list")
def list_grants(enterprise: EnterpriseOpt,
                recipient: Annotated[str | None, typer.Option(help="Only grants to this recipient.")] = None,
                data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """An enterprise's consents with their status (active, withdrawn, expired, reconfirmation_overdue)."""
    from iotfin.consent.service import grant_json  # lazy: the command line starts without it

    def fn(ws: Any) -> dict[str, Any]:
        now = utc_now()
        return {"items": [grant_json(g, now) for g in ws.consent.grants(enterprise, recipient)]}

    _run(data_dir, as_json, "consents / 数据授权", fn)


@consent_app.command("check")
def check(enterprise: EnterpriseOpt,
          recipient: Annotated[str, typer.Option(help="Who wants to read.")],
          scope: Annotated[str, typer.Option(help="The data scope.")],
          purpose: Annotated[str, typer.Option(help="Why.")],
          data_start: Annotated[str, typer.Option(help="First business date of the data.")],
          data_end: Annotated[str, typer.Option(help="Last business date of the data.")],
          onward_to: Annotated[str | None, typer.Option(help="The third party it would be passed on to.")] = None,
          data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Decide (and log) one read; exit 0 when allowed, 77 when refused."""

    result: dict[str, Any] = {}

    def fn(ws: Any) -> dict[str, Any]:
        decision = ws.consent.check(recipient, enterprise, scope, purpose,
                                    (_date(data_start, "data-start"), _date(data_end, "data-end")), onward_to=onward_to)
        result.update(decision.to_json())
        return result

    _run(data_dir, as_json, "decision / 授权校验", fn, DECISION_COLUMNS)
    if not result.get("allowed"):
        raise Unauthorized(f"refused: {result['reason']} ({result['reason_en']} / {result['reason_zh']})")


@consent_app.command("access-log")
def access_log(enterprise: EnterpriseOpt,
               limit: Annotated[int, typer.Option(help="Rows per page (1-1000).")] = 100,
               after_id: Annotated[int, typer.Option(help="Rows after this id (paging).")] = 0,
               recipient: Annotated[str | None, typer.Option(help="Only reads by this recipient.")] = None,
               data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Every read of the enterprise's data by others: who, scope, purpose, when, decision, grant."""
    _run(data_dir, as_json, "access log / 访问记录",
         lambda ws: {"items": ws.consent.access_log(enterprise, limit, after_id, recipient)}, LOG_COLUMNS)
