"""`iotfin demo` and `iotfin sim …`: commands that exist for the demo and the simulator."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.app.serve import serve_platform
from iotfin.cli import app as cli
from iotfin.cli import kit
from iotfin.cli.industry import industry_app
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.cli.monitor import monitor_app
from iotfin.cli.risk import risk_app
from iotfin.core.errors import ValidationError

sim_app = typer.Typer(help="Synthetic IoT economy.", no_args_is_help=True)
cli.add_typer(sim_app, name="sim")


@cli.command()
def demo(
    headless: Annotated[bool, typer.Option("--headless", help="Do not serve the platform afterwards.")] = False,
    as_json: JsonOpt = False,
    workspace: Annotated[Path, typer.Option(help="Demo workspace (rebuilt on every run).")] = Path(".iotfin/demo"),
    enterprises: Annotated[int, typer.Option(min=10, max=100_000)] = 300,
    devices: Annotated[int | None, typer.Option(help="Fleet size (default: 2,000, or 10 per enterprise if fewer).")] = None,
    days: Annotated[int, typer.Option(min=30, max=3650)] = 180,
    seed: int = 42,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Run on this database (PostgreSQL: "
                            "an empty database, or one a previous demo built; it is rebuilt). Default "
                            "IOTFIN_DATABASE_URL, else SQLite in the workspace.")] = None,
) -> None:
    """Build a fresh workspace, simulate an economy, load it through the platform, summarise, serve."""
    from iotfin.demo.run import run_demo  # lazy: the command line starts without it

    with kit.progress(enabled=not as_json) as progress:
        fleet = devices if devices is not None else min(2_000, 10 * enterprises)
        url = database_url or kit.settings().database_url  # the flag, else IOTFIN_DATABASE_URL / iotfin.toml
        ws, summary = run_demo(workspace, enterprises=enterprises, days=days, seed=seed, devices=fleet, progress=progress,
                               database_url=url)
    kit.emit(summary, as_json, _render_demo)
    if not headless:
        if not as_json:
            kit.out.print(f"[bold]console / 工作台:[/bold] http://127.0.0.1:{port}/  ·  API docs: http://127.0.0.1:{port}/docs")
        serve_platform(ws, port)


def _render_demo(s: dict[str, Any]) -> None:
    kit.out.print(f"[bold]iotfin demo[/bold] — workspace {s['workspace']} (schema {s['schema_revision']})")
    kit.out.print(kit.kv_table("Economy / 经济体", s["economy"]))
    kit.out.print(kit.kv_table("Devices / 设备", s["devices"]["by_type"] | {"total": s["devices"]["total"]}))
    docs = Table(title="Trade documents / 贸易单据", title_justify="left")
    docs.add_column("type")
    docs.add_column("count", justify="right")
    docs.add_column("amount (CNY)", justify="right")
    for doc_type, row in sorted(s["trade_documents"].items()):
        docs.add_row(doc_type, f"{row['count']:,}", f"{row['amount']:,}")
    kit.out.print(docs)
    kit.out.print(kit.kv_table("Telemetry ingest / 遥测接入", s["ingest"] | {"stored": s["telemetry"]}))
    kit.out.print(kit.kv_table("Data points by transport / 各接入方式数据点", {
        k: "sent {sent:,} · acknowledged {acknowledged:,} · rejected {rejected:,} · stored {stored:,}".format(**v)
        for k, v in s["telemetry_transports"].items() if isinstance(v, dict)}))
    fin = s["financing_registry"]
    kit.out.print(kit.kv_table("Financing registry / 融资登记", {k: v for k, v in fin.items() if k != "refused_examples"}))
    for example in fin["refused_examples"]:
        kit.out.print(f"  [red]refused / 拒绝重复融资[/red] request {example['request_id']} "
                  f"(invoice typed as {example['invoice_number_as_typed']!r}): {example['reason']}")
        kit.out.print(f"    {example['reason_zh']}")
    kit.out.print(kit.kv_table("Ground truth / 真实标签", s["ground_truth"]))
    kit.out.print(kit.kv_table("Timings (s) / 耗时(秒)", s["timings_s"]))
    logins = s.get("logins") or {}
    if logins.get("users"):
        table = Table(title=f"Logins / 登录账号 — password / 密码: {logins['password']}", title_justify="left")
        for column in ("username", "roles", "lender / 机构", "customers / 客户"):
            table.add_column(column)
        for u in logins["users"]:
            who = u["tenant"] or (f"enterprise {u['enterprise_id']}" if u["enterprise_id"] else "platform")
            table.add_row(u["username"], ", ".join(u["roles"]), who,
                          str(logins["customers_by_lender"].get(u["tenant"], "")))
        kit.out.print(table)
        kit.out.print("  console / 工作台: sign in at http://127.0.0.1:<port>/ with these logins (docs/console.md); "
                      "API: POST /oauth/token grant_type=password (docs/first-day.md)")




@sim_app.command("generate")
def sim_generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")],
    enterprises: Annotated[int, typer.Option(min=5)] = 300,
    days: Annotated[int, typer.Option(min=1, max=3650)] = 90,
    seed: int = 42,
    devices: Annotated[int | None, typer.Option(help="Target device count (default ~10 per enterprise).")] = None,
    start: Annotated[str | None, typer.Option(help="First simulated day, YYYY-MM-DD.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 2,
    shocks: Annotated[bool, typer.Option("--shocks", help="Add a holiday shutdown, a regional outage and a "
                                         "commodity slump with ground truth (issue 24; needs 30+ days).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate a deterministic synthetic economy (Parquet) with its ground truth."""
    from iotfin.sim import SimConfig, generate  # lazy: the command line starts without it

    kwargs: dict[str, Any] = {"enterprises": enterprises, "days": days, "seed": seed, "devices": devices,
                              "shocks": shocks}
    if start:
        try:
            kwargs["start_date"] = date.fromisoformat(start)
        except ValueError:
            raise ValidationError(f"--start: not a date (YYYY-MM-DD): {start!r}") from None
    with kit.progress(enabled=not as_json) as progress:
        manifest = generate(SimConfig(**kwargs), out_dir, progress=progress, workers=workers)
    data = {"out": str(out_dir), "counts": manifest["counts"], "config": manifest["config"]}
    kit.emit(data, as_json, lambda d: kit.out.print(kit.kv_table(f"generated into {d['out']}", d["counts"])))


@sim_app.command("load")
def sim_load(sim_dir: Annotated[Path, typer.Argument(help="A folder written by `iotfin sim generate`.")],
             data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Load a simulated economy into the workspace through the platform's ingest path."""
    from iotfin.demo.loader import (  # lazy: the command line starts without it
        load_master_data,
        load_telemetry,
    )
    from iotfin.sim import SimDataset  # lazy: the command line starts without it

    ws = kit.workspace(data_dir)
    ws.initialise()
    ds = SimDataset(sim_dir)
    rows = load_master_data(ws, ds)
    with kit.progress(enabled=not as_json) as progress:
        tally, offered = load_telemetry(ws, ds, progress=progress)
    data = {"rows": rows, "offered": offered, "accepted": tally.accepted, "duplicates": tally.duplicates,
            "rejected": tally.rejected, "rejected_by_reason": dict(tally.rejected_by_reason)}
    kit.emit(data, as_json, lambda d: kit.out.print(kit.kv_table("loaded", d)))


def _seeds(text: str, name: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValidationError(f"{name}: comma-separated seed numbers, e.g. 1,2 (got {text!r})") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValidationError(f"{name}: at least one seed, none negative (got {text!r})")
    return seeds


# --- evaluation harnesses on the simulator, under `iotfin risk` and `iotfin monitor` ----------------


@risk_app.command("compare")
def compare_cmd(
    train_seeds: Annotated[str, typer.Option("--train-seeds", help="Simulator seeds to train on, e.g. 1,2.")] = "1,2",
    test_seeds: Annotated[str, typer.Option("--test-seeds", help="Other seeds to test on, e.g. 3.")] = "3",
    enterprises: Annotated[int, typer.Option(help="Enterprises per simulated economy.", min=20)] = 200,
    days: Annotated[int, typer.Option(help="Simulated days per economy.", min=60, max=3650)] = 240,
    max_bad_rate: Annotated[float | None, typer.Option("--max-bad-rate", help="Bad-rate limit for the approvable share (default: half the test sample's bad rate).")] = None,
    workdir: Annotated[Path | None, typer.Option("--workdir", help="Keep the economies and models here (default: a temporary folder).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Three-dimension vs entity-only model on the simulator: train on some seeds, test on others (AUC, KS, approvable share)."""

    from iotfin.demo.risk_compare import compare  # lazy: the command line starts without it

    train, test = _seeds(train_seeds, "--train-seeds"), _seeds(test_seeds, "--test-seeds")
    with tempfile.TemporaryDirectory(prefix="iotfin-compare-") as tmp:
        result = compare(train, test, workdir or Path(tmp), enterprises=enterprises, days=days, max_bad_rate=max_bad_rate)
    lines = [f"train seeds {result['train']['seeds']} ({result['train']['rows']} rows, {result['train']['bads']} defaults); "
             f"test seeds {result['test']['seeds']} ({result['test']['rows']} rows, {result['test']['bads']} defaults); "
             f"approvable at a bad rate ≤ {result['max_bad_rate']:.2%}"]
    for name, m in result["models"].items():
        for which, t in m["test"].items():
            lines.append(f"  {name:<16} {which:<10} AUC {t['auc']:.3f}  KS {t['ks']:.3f}  approvable "
                         f"{t['approvable_share_expected']:.1%} (expected) / {t['approvable_share_realised']:.1%} (realised)")
    lines.append(result["note"])
    kit.emit(result, as_json, lambda _: print("\n".join(lines)))


@industry_app.command("lift")
def lift_cmd(
    train_seeds: Annotated[str, typer.Option("--train-seeds", help="Simulator seeds to train on, e.g. 1,2.")] = "1,2",
    test_seeds: Annotated[str, typer.Option("--test-seeds", help="Other seeds to test on, e.g. 3,4,5.")] = "3,4,5",
    enterprises: Annotated[int, typer.Option(help="Enterprises per simulated economy.", min=20)] = 200,
    days: Annotated[int, typer.Option(help="Simulated days per economy (with shocks).", min=150, max=3650)] = 240,
    workdir: Annotated[Path | None, typer.Option("--workdir", help="Keep the economies and models here (default: a temporary folder).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The enterprise model with and without relative-activity features (a firm against its sector peers), on
    shocked simulator economies: train on some seeds, test on others; AUC pooled and per test seed, and the lift."""
    from iotfin.demo.industry_lift import lift  # lazy: the command line starts without it

    train, test = _seeds(train_seeds, "--train-seeds"), _seeds(test_seeds, "--test-seeds")
    with tempfile.TemporaryDirectory(prefix="iotfin-lift-") as tmp:
        result = lift(train, test, workdir or Path(tmp), enterprises=enterprises, days=days)
    kit.emit(result, as_json, _render_lift)


def _render_lift(r: dict[str, Any]) -> None:
    seeds = list(r["models"]["three_dimension"]["test_per_seed"])
    table = Table(title=f"AUC on held-out seeds / 留出种子上的 AUC — train {r['train']['seeds']} ({r['train']['rows']} rows), "
                        f"test {r['test']['seeds']} ({r['test']['rows']} rows)")
    for col in ("model / 模型", "champion / 冠军", "scorecard", "challenger", "pooled / 合并", *(f"seed {s}" for s in seeds)):
        table.add_column(col)
    for name, m in r["models"].items():
        t = m["test"]
        table.add_row(name, m["champion"], f"{t['scorecard']['auc']:.3f}", f"{t['challenger']['auc']:.3f}",
                      f"{t['champion']['auc']:.3f}", *(f"{m['test_per_seed'][s]['champion']['auc']:.3f}" for s in seeds))
    kit.out.print(table)
    per_seed = ", ".join(f"seed {s} {v:+.3f}" for s, v in r["auc_lift_per_seed"].items())
    kit.out.print(f"AUC lift, champion against champion / 冠军模型 AUC 提升: {r['auc_lift']:+.4f} ({per_seed}); like for like / "
                  f"同类模型: " + ", ".join(f"{k} {v:+.4f}" for k, v in r["auc_lift_like_for_like"].items()))
    kit.out.print(r["note"])


@monitor_app.command("evaluate")
def evaluate_cmd(
    enterprises: Annotated[int, typer.Option(min=5, max=100_000)] = 120,
    days: Annotated[int, typer.Option(min=10, max=3650)] = 30,
    seed: int = 7,
    devices: Annotated[int | None, typer.Option(help="Fleet size (default 10 per enterprise).")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Keep the run here (default: a temporary folder).")] = None,
    shocks: Annotated[bool, typer.Option("--shocks", help="Add sector-wide and regional shocks and compare today's "
                                         "rules with peer-scoped ones (needs 30+ days; runs twice).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulate, push the telemetry through the real ingest path with the monitor subscribed, and report
    recall, time to detect and false alerts per incident type against the ground truth."""
    from iotfin.demo.monitor_eval import evaluate  # lazy: the command line starts without it

    with kit.progress(enabled=not as_json) as progress:
        report = evaluate(enterprises=enterprises, days=days, seed=seed, devices=devices, workdir=workdir,
                          progress=progress, shocks=shocks)
    kit.emit(report, as_json, _render_evaluation)


def _render_evaluation(r: dict[str, Any]) -> None:
    table = Table(title="Detection vs ground truth / 预警检出评估", title_justify="left")
    for col in ("incident type", "incidents", "detected", "recall", "TTD median h", "TTD p95 h"):
        table.add_column(col, justify="left" if col == "incident type" else "right")
    for kind, e in r["per_incident_type"].items():
        table.add_row(kind, str(e["incidents"]), str(e["detected"]), "-" if e["recall"] is None else f"{e['recall']:.0%}",
                      str(e.get("ttd_median_h", "-")), str(e.get("ttd_p95_h", "-")))
    kit.out.print(table)
    kit.out.print(f"false alerts: {r['false_alerts']} ({r['false_alerts_per_1000_device_days']} per 1,000 device-days "
                  f"over {r['device_days']:,.0f} device-days); alert latency p99 {r['alert_latency_s']['p99']} s")
    if "vouchers" in r:
        for kind, e in r["vouchers"]["fraud_evaluation"].items():
            caught = e.get("flagged", e.get("refused"))
            kit.out.print(f"voucher fraud {kind}: injected {e['injected']}, caught {caught} (TP {e['true_positive']}, "
                          f"FP {e['false_positive']}), precision {e['precision']}, recall {e['recall']}")
        m = r["vouchers"]["maturity_at_risk"]
        kit.out.print(f"vouchers at risk of maturity: {m['vouchers']} ({m['overdue']} overdue), alerts opened "
                      f"{m['alerts_opened']}")
    if "shock_comparison" in r:
        c = r["shock_comparison"]
        for name in ("today", "peer_scoped"):
            x = c[name]
            kit.out.print(f"{name}: false alerts during shocks {x['false_alerts_during_shocks']}, production-shutdown "
                          f"recall {x['recall_production_shutdown']}, min device-signal recall "
                          f"{x['min_recall_device_signal_types']}")
        kit.out.print(f"reduction of false alerts during shocks: {c['false_alerts_during_shocks_reduction']}")
