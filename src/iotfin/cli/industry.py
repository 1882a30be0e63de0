"""`iotfin industry ...`: industry activity indices (产业分析) — update, read a cell, a day's cells,
resumption after a shock, a firm's activity relative to its peers. Cells from fewer firms than the
workspace's `industry_min_firms` are never printed."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import ValidationError

industry_app = typer.Typer(help="Industry activity indices from IoT (产业分析).", no_args_is_help=True)

MeasureOpt = Annotated[str, typer.Option(help="energy | operating | logistics | inventory")]
SectorOpt = Annotated[str, typer.Option(help="Sector, or * for all.")]
RegionOpt = Annotated[str, typer.Option("--region", help="Region code (GB/T 2260), or * for all.")]
ChainOpt = Annotated[str, typer.Option("--chain", help="Supply chain id, 'none', or * for all.")]


def _date(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{name}: not a date (YYYY-MM-DD): {text!r}") from None


@industry_app.command("update")
def update(full: Annotated[bool, typer.Option("--full", help="Recompute every day, not only new ones.")] = False,
           since: Annotated[str | None, typer.Option(help="With --full: first day, YYYY-MM-DD.")] = None,
           until: Annotated[str | None, typer.Option(help="With --full: last day, YYYY-MM-DD.")] = None,
           data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Bring the indices up to date with the telemetry store (only new or changed days unless --full)."""
    ws = kit.workspace(data_dir, schema=True)
    result = ws.industry.update(full=full, since=_date(since, "--since"), until=_date(until, "--until"))
    kit.emit(result, as_json, lambda d: kit.out.print(
        f"industry indices: {d['days_computed']} day(s) computed, {d['index_rows']} index rows, "
        f"{d['timings_s']['total']} s"))


@industry_app.command("index")
def index(measure: MeasureOpt = "energy", sector: SectorOpt = "*", region: RegionOpt = "*", chain: ChainOpt = "*",
          since: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
          until: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD.")] = None,
          data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """One cell's daily index (base period = 100), calendar-adjusted, year-on-year, 7/30-day trends."""
    ws = kit.workspace(data_dir, schema=True)
    result = ws.industry.indices(measure, sector, region, chain, _date(since, "--since"), _date(until, "--until"))
    kit.emit(result, as_json, _render_index)


def _render_index(d: dict[str, Any]) -> None:
    kit.out.print(f"{d['label_zh']} / {d['label_en']}  cell {d['cell']}  (cells under {d['min_firms']} firms are "
                  f"withheld: {d['suppressed_days']} day(s))")
    for r in d["rows"]:
        kit.out.print(f"  {r['day']}  firms {r['firms']:>5}  index {r['index']}  adjusted {r['index_calendar_adjusted']}"
                      f"  7d {r['trend7']}  30d {r['trend30']}  yoy {r['yoy_pct']}")


@industry_app.command("period")
def period(start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
           end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.")],
           measure: MeasureOpt = "energy", sector: SectorOpt = "*", region: RegionOpt = "*", chain: ChainOpt = "*",
           data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """A period's index on daily averages (leap-day adjusted) and year-on-year."""
    ws = kit.workspace(data_dir, schema=True)
    first, last = _date(start, "--start"), _date(end, "--end")
    assert first is not None and last is not None
    result = ws.industry.period(measure, first, last, sector, region, chain)
    kit.emit(result, as_json, lambda d: kit.out.print(
        f"{d['start']}..{d['end']}  index {d['index']}  yoy {d['yoy_pct']} %"))


@industry_app.command("cells")
def cells(measure: MeasureOpt = "energy", on: Annotated[str | None, typer.Option(help="Day (default latest).")] = None,
          data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Every cell of one day that may be served."""
    ws = kit.workspace(data_dir, schema=True)
    result = ws.industry.cells(measure, _date(on, "--on"))
    kit.emit(result, as_json, lambda d: [kit.out.print(
        f"{r['sector']:<16}{r['region_code']:<8}{r['chain_id']:<6} firms {r['firms']:>5}  index {r['index']}")
        for r in d["rows"]])


@industry_app.command("resumption")
def resumption(shock: Annotated[str, typer.Option(help="First day of the shock, YYYY-MM-DD.")],
               sector: SectorOpt = "*", region: RegionOpt = "*",
               until: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD.")] = None,
               data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Share of a cell's firms back at work each day (daily kWh > 30 % of the pre-shock daily average)."""
    ws = kit.workspace(data_dir, schema=True)
    when = _date(shock, "--shock")
    assert when is not None
    result = ws.industry.resumption(when, sector, region, _date(until, "--until"))
    kit.emit(result, as_json, lambda d: [kit.out.print(f"  {r['day']}  {r['resumed_share']:.0%} of {r['firms']}")
                                         for r in d["rows"]])


@industry_app.command("relative")
def relative(enterprise: Annotated[int, typer.Option(help="Enterprise id.")],
             on: Annotated[str, typer.Option(help="Day, YYYY-MM-DD.")],
             lender: Annotated[str | None, typer.Option(help="Read as this lender (consent-checked and logged).")] = None,
             purpose: str = "credit_assessment", window: int = 7,
             data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """A firm's energy activity against its sector-and-region peers' (1.0 = in step)."""
    ws = kit.workspace(data_dir, schema=True)
    when = _date(on, "--on")
    assert when is not None
    result = ws.industry.relative(enterprise, when, recipient=lender, purpose=purpose, window=window)
    kit.emit(result, as_json, lambda d: kit.out.print(
        f"enterprise {d['enterprise_id']}: relative activity {d['relative_activity']} against {d['peers']} peers"))
