"""`iotfin telemetry …`: queries of the telemetry store."""

from __future__ import annotations

import time
from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import ValidationError
from iotfin.core.time import parse_time

telemetry_app = typer.Typer(help="Telemetry store queries.", no_args_is_help=True)



@telemetry_app.command("query")
def telemetry_query(
    device: Annotated[int, typer.Option("--device", help="Device id.")],
    key: Annotated[str, typer.Option("--key", help="Metric key.")],
    start: Annotated[str, typer.Option("--from", help="Start (ISO date/time, UTC if naive, or epoch ms).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive.")],
    agg: Annotated[str | None, typer.Option("--agg", help="Bucket such as 1m, 15min, 1h, 1d.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A device's readings, or downsampled aggregates, over a time range."""
    try:
        start_ms, end_ms = parse_time(start), parse_time(end)
    except ValueError as exc:
        raise ValidationError(f"--from/--to: {exc}") from None
    if end_ms <= start_ms:
        raise ValidationError("--to must be after --from")
    store = kit.workspace(data_dir).telemetry
    if agg:
        try:
            table = store.aggregate(device, key, start_ms, end_ms, agg)
        except ValueError as exc:
            raise ValidationError(f"--agg: {exc}") from None
    else:
        table = store.series(device, key, start_ms, end_ms)
    rows = table.to_pylist()
    data = {"device": device, "key": key, "from": start_ms, "to": end_ms, "agg": agg, "rows": rows}

    def render(d: dict[str, Any]) -> None:
        t = Table(title=f"device {device} · {key}", title_justify="left")
        for col in table.column_names:
            t.add_column(col)
        for row in rows:
            t.add_row(*(str(v) for v in row.values()))
        kit.out.print(t)

    kit.emit(data, as_json, render)


@telemetry_app.command("stats")
def telemetry_stats(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Size of the telemetry store: days, files, data points, bytes per point."""
    ws = kit.workspace(data_dir)
    data = ws.telemetry.stats() | {"quarantine_by_reason": ws.quarantine.counts("reason")}
    kit.emit(data, as_json, lambda d: kit.out.print(kit.kv_table("telemetry store", d)))


@telemetry_app.command("rollup")
def telemetry_rollup(
    before: Annotated[str | None, typer.Option("--before", help="Only days before this UTC date (default: every day).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring the hourly rollups long-range charts read up to date (`iotfin serve` does it daily)."""
    from iotfin.telemetry.daily import refresh_hourly  # lazy: numpy/Parquet only for this command

    try:
        until = date.fromisoformat(before) if before else None
    except ValueError as exc:
        raise ValidationError(f"--before: {exc}") from None
    started = time.perf_counter()
    built = refresh_hourly(kit.workspace(data_dir).telemetry, before=until)
    data = {"days_built": built, "seconds": round(time.perf_counter() - started, 2)}
    kit.emit(data, as_json, lambda d: kit.out.print(kit.kv_table("hourly rollup", d)))

