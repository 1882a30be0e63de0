"""`iotfin risk …`: train, score, monitor, and the master scale."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.cli import kit
from iotfin.cli.kit import JsonOpt
from iotfin.core.errors import ValidationError
from iotfin.core.jsonout import dumps

risk_app = typer.Typer(help="Credit risk models: train, score, monitor (scorecard + LightGBM; three dimensions).",
                       no_args_is_help=True)

ModelOpt = Annotated[Path, typer.Option("--model", help="Model folder (its LATEST version) or one version folder.")]


def _print(data: Any, as_json: bool, text: str) -> None:
    print(dumps(data) if as_json else text)


def _catalogue(path: Path | None) -> dict[str, dict[str, str]] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"--catalogue {path}: {exc}") from None
    if isinstance(data, list):  # [{"name": …, "dimension": …, "en": …, "zh": …}, …]
        data = {str(item["name"]): item for item in data if isinstance(item, dict) and "name" in item}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValidationError(f"--catalogue {path}: expected {{feature: {{en, zh, dimension}}}} or a list of such entries")
    return data


def _workspace(data_dir: Path | None, anchor: bool | None) -> Any:
    """The workspace to anchor in: asked for (--anchor), or found (an existing SQLite file or a configured URL)."""
    if anchor is False:
        return None
    settings = kit.settings(data_dir)
    exists = settings.database_url is not None or (Path(settings.data_dir) / "iotfin.db").exists()
    if not exists and not anchor:
        return None
    return kit.workspace(data_dir, schema=True)


@risk_app.command("train")
def train_cmd(
    data: Annotated[Path, typer.Argument(help="Training table: CSV (header row) or Parquet.")],
    target: Annotated[str, typer.Option("--target", help="Binary target column.")],
    model: ModelOpt,
    date_col: Annotated[str | None, typer.Option("--date-col", help="Date column: the latest 20 % become the out-of-time sample.")] = None,
    bad: Annotated[str | None, typer.Option("--bad", help="Target value meaning bad (default: 1/true/bad/default).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Column that is not a feature (repeatable).")] = None,
    catalogue: Annotated[Path | None, typer.Option("--catalogue", help="JSON: feature -> {en, zh[, dimension]}.")] = None,
    enterprise: Annotated[bool, typer.Option("--enterprise", help="Three-dimension model: every feature's dimension from --catalogue.")] = False,
    champion: Annotated[str, typer.Option(help="auto (best cross-validated AUC; with --budget-s 0 best on test / out-of-time), scorecard, challenger or blend.")] = "auto",
    budget_s: Annotated[float, typer.Option("--budget-s", min=0, help="Seconds for the binning and hyperparameter search (0: fixed parameters).")] = 60.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of splits, folds and search: the same seed and --trials give the same model.")] = 7,
    monotone: Annotated[str, typer.Option("--monotone", help="Monotone constraints on the challenger: all, measured (where their CV cost, mean + 1 standard error, is within 0.002 AUC) or none.")] = "measured",
    test_share: Annotated[float, typer.Option("--test-share", min=0, max=0.9, help="Share of rows held out as the test sample; 0 (with a budget): train on all, held-out figures out-of-fold.")] = 0.3,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Stop the search after this many trials (reproducible whatever the machine's speed).")] = None,
    drop_unusable: Annotated[bool, typer.Option("--drop-unusable", help="Drop constant, empty or text columns (noted in the manifest) instead of refusing the data.")] = False,
    pdo: Annotated[float, typer.Option(help="Points to double the good:bad odds.")] = 20.0,
    base_odds: Annotated[float, typer.Option(help="Good:bad odds at --base-points.")] = 50.0,
    base_points: Annotated[float, typer.Option(help="Points at --base-odds.")] = 600.0,
    anchor: Annotated[bool | None, typer.Option("--anchor/--no-anchor", help="Anchor the model fingerprint in the workspace ledger (default: when a workspace exists).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Workspace folder (IOTFIN_DATA_DIR).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a scorecard and a LightGBM challenger (or the three-dimension model) and write a new model version."""
    from iotfin.risk.models.train import TrainConfig, train  # lazy: the command line starts without it
    from iotfin.risk.woe import Scaling  # lazy: the command line starts without it

    if champion not in ("auto", "scorecard", "challenger", "blend"):
        raise ValidationError(f"--champion must be auto, scorecard, challenger or blend, not {champion!r}")
    if monotone not in ("all", "measured", "none"):
        raise ValidationError(f"--monotone must be all, measured or none, not {monotone!r}")
    labels = _catalogue(catalogue)
    dimensions = None
    if enterprise:
        if not labels:
            raise ValidationError("--enterprise needs --catalogue naming each feature's dimension")
        dimensions = {k: str(v["dimension"]) for k, v in labels.items() if v.get("dimension")}
        if not dimensions:
            raise ValidationError("--catalogue gives no feature a dimension (entity, asset or transaction)")
    config = TrainConfig(scaling=Scaling(pdo, base_odds, base_points), champion=champion, budget_s=budget_s, seed=seed,
                         monotone=monotone, max_trials=trials, test_share=test_share, on_unusable="drop" if drop_unusable else "error")
    ws = _workspace(data_dir, anchor)
    try:
        summary = train(data, target, model, date_col=date_col, exclude=exclude or (), catalogue=labels, bad=bad,
                        dimensions=dimensions, config=config, workspace=ws)
    finally:
        if ws is not None:
            ws.close()
    ev = summary["evaluation"]
    judge = "oot" if "oot" in ev else "test" if "test" in ev else "cv"
    lines = [f"model {summary['model']} written to {summary['path']} ({summary['seconds']} s)",
             f"champion: {summary['champion']}; {judge} sample:"]
    lines += [f"  {name:<10} AUC {m['auc']:.3f}  KS {m['ks']:.3f}" for name, m in ev[judge].items()]
    lines.append(f"features in the scorecard: {', '.join(summary['selected'])}")
    if summary.get("search"):
        lines.append("cross-validated AUC: " + ", ".join(f"{k} {v['cv_auc']:.3f}" for k, v in summary["search"].items())
                     + f" ({summary['seconds']} s of a {budget_s:g} s budget)")
    if "anchor" in summary:
        lines.append(f"anchored in the ledger as {summary['anchor']['record']} (leaf {summary['anchor']['leaf_index']})")
    _print(summary, as_json, "\n".join(lines))


EngineOpt = Annotated[str, typer.Option("--engine", help="duckdb (in-process, default) or spark (PySpark: the spark extra of iotfin).")]
MasterOpt = Annotated[str, typer.Option("--master", help="Spark master with --engine spark: local[N], spark://host:7077, yarn, k8s://https://host:port.")]


@risk_app.command("features")
def features_cmd(
    as_of: Annotated[str, typer.Option("--as-of", help="Business date YYYY-MM-DD: features as of the end of that day.")],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet file: one row per enterprise founded by then.")],
    lender: Annotated[str | None, typer.Option("--lender", help="Consent-scope for this lender (default: unscoped, the platform's own batch).")] = None,
    engine: EngineOpt = "duckdb",
    master: MasterOpt = "local[2]",
    export_dir: Annotated[Path | None, typer.Option("--export-dir", help="With --engine spark: where the system of record is exported to Parquet (default <data dir>/exports/spark/<as-of>); must be reachable by the executors.")] = None,
    data_dir: kit.DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The batch feature table of every enterprise (same definitions on DuckDB and on Spark)."""
    from iotfin.risk.spark import features_file  # lazy: DuckDB, pyarrow and (for spark) PySpark

    ws = kit.workspace(data_dir, schema=True)
    try:
        summary = features_file(ws.features, as_of, out, lender, engine, master, export_dir)
    finally:
        ws.close()
    _print(summary, as_json, f"{summary['rows']:,} enterprises' features as of {summary['as_of']} on {engine} into {out}"
           + (f" ({summary['withheld']} withheld for {lender})" if lender else ""))


@risk_app.command("score")
def score_cmd(
    data: Annotated[Path, typer.Argument(help="Table to score: CSV or Parquet with the model's feature columns.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="Output file (.csv or .parquet): one row per input row, in input order.")],
    keep: Annotated[list[str] | None, typer.Option("--keep", help="Input column to copy to the output, e.g. an id (repeatable).")] = None,
    engine: EngineOpt = "duckdb",
    master: MasterOpt = "local[2]",
    as_json: JsonOpt = False,
) -> None:
    """PD, score, grade and reason codes (zh-CN/en) for every row; sub-scores per dimension for enterprise models."""

    from iotfin.risk.data import read_table, write_table  # lazy: the command line starts without it
    from iotfin.risk.models.bundle import load_model  # lazy: the command line starts without it
    from iotfin.risk.scoring import score_frame  # lazy: the command line starts without it

    if engine != "duckdb":  # issue 21: the same scoring code on Spark executors
        from iotfin.risk.spark import score_file  # lazy: PySpark is an optional extra

        summary = score_file(data, model, out, keep or [], engine, master)
        _print(summary, as_json, f"scored {summary['rows']:,} rows with {summary['model']} on Spark ({master}) "
               f"into {out}; grades {summary['grades']}")
        return
    started = time.perf_counter()
    frame = read_table(data)
    m = load_model(model)
    scored = score_frame(m, frame, keep=keep or [])
    write_table(scored, out)
    grades = scored["grade"].value_counts().to_dict()
    summary = {"model": m.model_id, "rows": int(len(scored)), "out": str(out), "grades": grades,
               "mean_pd": float(scored["pd"].mean()) if len(scored) else None,
               "seconds": round(time.perf_counter() - started, 3)}
    _print(summary, as_json, f"scored {summary['rows']:,} rows with {m.model_id} into {out}; grades {grades}")


@risk_app.command("monitor")
def monitor_cmd(
    data: Annotated[Path, typer.Argument(help="A recent population (CSV or Parquet), optionally with outcomes.")],
    model: ModelOpt,
    outcome: Annotated[str | None, typer.Option("--outcome", help="Outcome column (blank = not known yet).")] = None,
    bad: Annotated[str | None, typer.Option("--bad", help="Outcome value meaning bad.")] = None,
    fail_on_alert: Annotated[bool, typer.Option("--fail-on-alert", help="Exit 3 when an alert is raised.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """PSI of score and features against the training sample, bad rate by grade; alerts are logged with the model."""
    from iotfin.risk.data import read_table  # lazy: the command line starts without it
    from iotfin.risk.models.bundle import load_model  # lazy: the command line starts without it
    from iotfin.risk.monitoring import monitor  # lazy: the command line starts without it

    m = load_model(model)
    report = monitor(m, read_table(data), outcome=outcome, bad=bad)
    lines = [f"{m.model_id}: {report['rows']:,} rows, score PSI {report['psi']['score']:.3f}"]
    lines += [f"  grade {g['grade']}: bad rate {g['bad_rate']:.2%} on {g['rows']} (band ≤ {g['pd_band_upper']:.2%})"
              for g in report["bad_rate_by_grade"]]
    lines += [f"ALERT [{a['severity']}] {a['en']} / {a['zh']}" for a in report["alerts"]] or ["no alerts / 无预警"]
    _print(report, as_json, "\n".join(lines))
    if fail_on_alert and report["alerts"]:
        raise typer.Exit(3)


@risk_app.command("grades")
def grades_cmd(as_json: JsonOpt = False) -> None:
    """The master scale: grade, PD band, meaning (en/zh)."""
    from iotfin.risk.grades import scale_table  # lazy: the command line starts without it

    rows = scale_table()
    _print(rows, as_json, "\n".join(f"{r['grade']:<4} PD ({r['pd_from']:.2%}, {r['pd_to']:.2%}]  {r['en']} / {r['zh']}"
                                    for r in rows))


@risk_app.command("profile")
def profile_cmd(
    enterprise_id: Annotated[int, typer.Argument(help="Enterprise id.", min=1)],
    lender: Annotated[str | None, typer.Option("--lender", help="Only ratings made for this lender (tenant code).")] = None,
    as_lender: Annotated[bool, typer.Option("--as-lender", help="Read as --lender would: re-check the enterprise's consent (logged).")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Workspace folder (IOTFIN_DATA_DIR).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """An enterprise's latest credit profile: three-dimension sub-scores, combined PD and grade, reasons (zh-CN/en)."""
    if as_lender and not lender:
        raise ValidationError("--as-lender needs --lender CODE")
    ws = kit.workspace(data_dir, schema=True)
    try:
        data = ws.ratings.operator_profile(enterprise_id, lender, as_lender)
    finally:
        ws.close()  # flushes the access log
    kit.emit(data, as_json, lambda d: kit.out.print(*render_profile(d)))


def render_profile(p: dict[str, Any]) -> list[Any]:
    """The profile as two rich tables (dimensions, reasons) under a heading, zh-CN and en side by side."""

    head = (f"[bold]企业 enterprise {p['enterprise_id']}[/bold] · 机构 lender {p['lender']} · "
            f"评级日 as of {p['as_of']} · 模型 model {p['model']}\n"
            f"综合评级 combined grade [bold]{p['grade']}[/bold] ({p['grade_zh']} / {p['grade_en']}) · "
            f"违约概率 PD {p['pd']:.2%} · 分数 score {p['score']}")
    dims = Table(title="三维信用 / three dimensions", title_justify="left")
    for col in ("维度 dimension", "等级 grade", "违约概率 PD", "分数 score"):
        dims.add_column(col)
    for d in p["dimensions"].values():
        dims.add_row(f"{d['zh']} {d['en']}", d["grade"], f"{d['pd']:.2%}", f"{d['score']}")
    reasons = Table(title="主要原因 / main reasons", title_justify="left")
    for col in ("#", "原因", "reason", "扣分 points lost"):
        reasons.add_column(col)
    for i, r in enumerate(p["reasons"], 1):
        reasons.add_row(str(i), r["zh"], r["en"], f"{r['points']}")
    out: list[Any] = [head, dims, reasons if p["reasons"] else "无扣分原因 / no reason: no feature cost points"]
    if p.get("features_withheld"):
        out.append(f"未获授权的特征 {p['features_withheld']} 个（按缺失处理） / {p['features_withheld']} features withheld "
                   "for want of consent (treated as missing)")
    return out



DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Workspace folder (IOTFIN_DATA_DIR).")]


@risk_app.command("train-enterprise")
def train_enterprise_cmd(
    outcomes: Annotated[Path | None, typer.Option("--outcomes", help="CSV or Parquet of enterprise_id, as_of, default "
                                                  "(imported outcomes) instead of the platform's own book.")] = None,
    window_days: Annotated[int, typer.Option("--window-days", help="A loan is bad if 90+ days past due or written "
                                             "off within this many days of its start.")] = 365,
    min_bads: Annotated[int, typer.Option("--min-bads", min=2, help="Fewest bad outcomes to train on.")] = 5,
    data_dir: DataDir = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the enterprise three-dimension model from the platform's own history (features as of each
    loan's start, point in time; outcomes from the book) and write it with its validation report. The
    new version is a candidate: `iotfin risk promote` makes it the champion."""
    ws = kit.workspace(data_dir, schema=True)
    try:
        summary = ws.train_enterprise(outcomes=outcomes, window_days=window_days, min_bads=min_bads)
    finally:
        ws.close()
    ev = summary["evaluation"]
    judge = "oot" if "oot" in ev else "test"
    lines = [f"model {summary['model']} trained on {summary['rows']} rows ({summary['bads']} bad) from {summary['source']}",
             *(f"  {name:<10} {judge} AUC {m['auc']:.3f}  KS {m['ks']:.3f}" for name, m in ev[judge].items()),
             f"validation report: {summary['report']}",
             f"status: candidate (not used for decisions). Next: {summary['next']}"]
    _print(summary, as_json, "\n".join(lines))


@risk_app.command("promote")
def promote_cmd(
    version: Annotated[str, typer.Argument(help="Model version (v0003) or model id to make champion.")],
    by: Annotated[str, typer.Option("--by", help="Who promotes (recorded and anchored in the ledger).")],
    note: Annotated[str | None, typer.Option("--note", help="Why (recorded with the promotion).")] = None,
    data_dir: DataDir = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a trained enterprise model version the champion the decision service rates with (logged
    and anchored in the ledger). Until one is promoted the platform rates with the bootstrap scorecard."""
    ws = kit.workspace(data_dir, schema=True)
    try:
        record = ws.promote_model(version, by=by, note=note)
    finally:
        ws.close()
    _print(record, as_json, f"{record['model']} is the champion (promoted by {record['promoted_by']}; "
                            f"ledger leaf {record.get('leaf_index')}; previous: {record['previous'] or 'none'})")


@risk_app.command("models")
def models_cmd(data_dir: DataDir = None, as_json: JsonOpt = False) -> None:
    """Enterprise model versions with their status (champion, former champion, candidate) and the bootstrap scorecards."""
    ws = kit.workspace(data_dir, schema=True)
    try:
        rows = ws.model_versions()
        cards = ws.scorecards.versions()
    finally:
        ws.close()
    data = {"models": rows, "bootstrap_scorecards": cards,
            "in_force": next((r["model"] for r in rows if r["status"] == "champion"), None)
            or next((c["model"] for c in cards if c["active"]), "bootstrap (shipped; published on first use)")}
    lines = [f"{r['version']}  {r['status']:<16} {r['model']}  AUC {r['auc'] if r['auc'] is None else round(r['auc'], 3)} "
             f"({r['sample']}, {r['rows']} rows)" for r in rows] or ["no trained enterprise model"]
    lines += [f"bootstrap-v{c['version']}  {'active' if c['active'] else 'inactive':<8} published by {c['published_by']} "
              f"{c['published_at']:%Y-%m-%d %H:%M}" for c in cards]
    lines.append(f"rating with: {data['in_force']}")
    _print(data, as_json, "\n".join(lines))


@risk_app.command("rerate")
def rerate_cmd(data_dir: DataDir = None, as_json: JsonOpt = False) -> None:
    """Re-rate now every enterprise with an active loan or an open credit-assessment consent (what
    `iotfin serve` does daily at rerate_at) and store the ratings."""
    ws = kit.workspace(data_dir, schema=True)
    try:
        summary = ws.rerate()
    finally:
        ws.close()
    _print(summary, as_json, f"re-rated {summary['ratings_stored']} of {summary['enterprises']} enterprises for "
                             f"{summary['lenders']} lenders with {summary['model']}; grades {summary['grades']}")


scorecard_app = typer.Typer(help="The bootstrap scorecard: versions, publish, activate.", no_args_is_help=True)
risk_app.add_typer(scorecard_app, name="scorecard")


@scorecard_app.command("list")
def scorecard_list(data_dir: DataDir = None, as_json: JsonOpt = False) -> None:
    """Published versions of the bootstrap scorecard (the shipped one is published on first use)."""
    ws = kit.workspace(data_dir, schema=True)
    try:
        ws.scorecards.ensure_shipped()
        rows = ws.scorecards.versions()
    finally:
        ws.close()
    _print(rows, as_json, "\n".join(f"v{r['version']} {'ACTIVE ' if r['active'] else '       '}{r['sha256'][:12]} "
                                    f"by {r['published_by']}: {r['note'] or ''}" for r in rows))


@scorecard_app.command("show")
def scorecard_show(version: Annotated[int | None, typer.Argument(help="Version (default: the active one).")] = None,
                   data_dir: DataDir = None) -> None:
    """The content of a version (JSON), e.g. to edit and publish as the next version."""
    ws = kit.workspace(data_dir, schema=True)
    try:
        if version is None:
            version, _ = ws.scorecards.active()
        row = ws.scorecards.version(version)
    finally:
        ws.close()
    print(json.dumps(row["content"], ensure_ascii=False, indent=1))


@scorecard_app.command("publish")
def scorecard_publish(
    file: Annotated[Path, typer.Argument(help="Scorecard JSON (iotfin-bootstrap-scorecard/1).")],
    by: Annotated[str, typer.Option("--by", help="Who publishes.")],
    note: Annotated[str | None, typer.Option("--note", help="Why.")] = None,
    activate: Annotated[bool, typer.Option("--activate/--no-activate", help="Put it in force at once.")] = True,
    data_dir: DataDir = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate and publish a new version of the bootstrap scorecard."""
    try:
        content = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{file}: {exc.strerror or exc}") from None
    ws = kit.workspace(data_dir, schema=True)
    try:
        ws.scorecards.ensure_shipped()  # the shipped version stays version 1
        out = ws.scorecards.publish(content, by=by, note=note, activate=activate)
    finally:
        ws.close()
    _print(out, as_json, f"published {out['model']} ({out['sha256'][:12]})" + (", active" if activate else ""))


@scorecard_app.command("activate")
def scorecard_activate(version: Annotated[int, typer.Argument(help="Version to put in force.")],
                       by: Annotated[str, typer.Option("--by", help="Who activates.")],
                       data_dir: DataDir = None, as_json: JsonOpt = False) -> None:
    """Put a published version of the bootstrap scorecard in force."""
    ws = kit.workspace(data_dir, schema=True)
    try:
        out = ws.scorecards.activate(version, by=by)
    finally:
        ws.close()
    out.pop("content", None)
    _print(out, as_json, f"bootstrap-v{version} is active (by {by})")
