"""`iotfin monitor ...`: evaluation against ground truth, rules and price checks, the alert lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import ValidationError

monitor_app = typer.Typer(help="Post-loan monitoring: signals, warning rules, alerts, evaluation.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts: list, show, acknowledge, assign, resolve.", no_args_is_help=True)
monitor_app.add_typer(alerts_app, name="alerts")

ActorOpt = Annotated[str, typer.Option("--by", help="Who does it (officer id), for the audit trail.")]


def _alerts(data_dir: Path | None) -> Any:
    from iotfin.monitor.store import AlertStore  # lazy: the command line starts without it

    return AlertStore(kit.workspace(data_dir, schema=True).engine)


@monitor_app.command("rules-check")
def rules_check(path: Annotated[Path, typer.Argument(help="JDM decision model (JSON).")],
                version: Annotated[str | None, typer.Option(help="Version (default: metadata.version).")] = None,
                as_json: JsonOpt = False) -> None:
    """Compile a warning-rule model; a model that does not compile is refused (exit 65) with the reason."""
    from iotfin.monitor.rules import RuleSet  # lazy: the command line starts without it

    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    rules = RuleSet.load(path.read_text(encoding="utf-8"), version)
    kit.emit({"version": rules.version, "sha256": rules.digest, "ok": True}, as_json,
              lambda d: kit.out.print(f"rules {d['version']} compile (sha256 {d['sha256'][:16]}…)"))


@monitor_app.command("prices-import")
def prices_import(path: Annotated[Path, typer.Argument(help="CSV (day,commodity,price[,unit]) or Parquet.")],
                  data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Import daily commodity prices; gaps, duplicates and non-positive prices are refused (exit 65)."""
    from iotfin.monitor.prices import PriceBook, read_file  # lazy: the command line starts without it

    points = read_file(path)
    store = _alerts(data_dir)
    book = PriceBook()
    book.add(store.load_prices())
    days = book.add(points)  # validates the series as it will stand, before anything is written
    store.save_prices(points)
    kit.emit({"imported": len(points), "days_by_commodity": days}, as_json,
              lambda d: kit.out.print(f"imported {d['imported']} prices: {d['days_by_commodity']}"))


@alerts_app.command("list")
def alerts_list(status: Annotated[str | None, typer.Option(help="open | acknowledged | resolved")] = None,
                enterprise: Annotated[int | None, typer.Option(help="Enterprise id.")] = None,
                limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
                data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Alerts, newest first."""

    rows = _alerts(data_dir).list(status, enterprise, limit)

    def render(data: list[dict[str, Any]]) -> None:
        table = Table(title="Alerts / 预警", title_justify="left")
        for col in ("id", "enterprise", "type", "tier", "status", "opened", "reason"):
            table.add_column(col)
        for a in data:
            table.add_row(str(a["id"]), str(a["enterprise_id"]), a["incident_type"], a["tier"], a["status"],
                          a["opened_at"][:16], f"{a['reason_zh']} / {a['reason_en']}")
        kit.out.print(table)

    kit.emit(rows, as_json, render)


@alerts_app.command("show")
def alerts_show(alert: Annotated[int, typer.Argument(help="Alert id.")], data_dir: DataDirOpt = None,
                as_json: JsonOpt = False) -> None:
    """One alert with its audit trail."""
    kit.emit(_alerts(data_dir).get(alert), as_json, lambda d: kit.out.print_json(data=d))


@alerts_app.command("ack")
def alerts_ack(alert: Annotated[int, typer.Argument(help="Alert id.")], by: ActorOpt,
               data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Acknowledge an open alert."""
    kit.emit(_alerts(data_dir).transition(alert, "acknowledged", by), as_json,
              lambda d: kit.out.print(f"alert {d['id']} acknowledged / 已确认"))


@alerts_app.command("assign")
def alerts_assign(alert: Annotated[int, typer.Argument(help="Alert id.")],
                  officer: Annotated[str, typer.Option(help="Officer to assign it to.")], by: ActorOpt,
                  data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Assign an alert to an officer."""
    kit.emit(_alerts(data_dir).assign(alert, officer, by), as_json,
              lambda d: kit.out.print(f"alert {d['id']} assigned to {d['assigned_to']} / 已分派"))


@alerts_app.command("resolve")
def alerts_resolve(alert: Annotated[int, typer.Argument(help="Alert id.")], by: ActorOpt,
                   reason: Annotated[str, typer.Option(help="Resolution reason (mandatory).")],
                   data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Resolve an alert; the reason is mandatory and kept in the audit trail."""
    kit.emit(_alerts(data_dir).transition(alert, "resolved", by, reason), as_json,
              lambda d: kit.out.print(f"alert {d['id']} resolved / 已解除: {d['resolution_reason']}"))
