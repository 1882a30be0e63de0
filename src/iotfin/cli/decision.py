"""`iotfin decision ...`: run a strategy on an application file, publish, deploy, replay, review."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.jsonout import dumps
from iotfin.core.money import to_money

decision_app = typer.Typer(help="Credit decisioning: strategies (JDM), decisions, replay, review queue.",
                           no_args_is_help=True)

NameOpt = Annotated[str, typer.Option("--name", help="Strategy name.")]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NotFound(f"{what}: cannot read {path}: {exc.strerror}") from None


def _service(data_dir: Path | None) -> Any:
    return kit.workspace(data_dir, schema=True).decisions()


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(dumps(data))
    else:
        print(dumps(data, indent=True))


@decision_app.command("run")
def run(strategy: Annotated[Path, typer.Option("--strategy", help="JDM strategy file (GoRules editor export).")],
        input_file: Annotated[Path, typer.Option("--input", help="JSON: {application, assessment, exposure?, on?}.")],
        as_json: JsonOpt = False) -> None:
    """Decide one application with a strategy file, without storing anything (a risk officer's dry run)."""
    from iotfin.decision.applications import Application  # lazy: the command line starts without it
    from iotfin.decision.assessment import RiskAssessment  # lazy: the command line starts without it
    from iotfin.decision.limits import Exposure  # lazy: the command line starts without it
    from iotfin.decision.service import (  # lazy: the command line starts without it
        DecisionPolicy,
        evaluate_application,
    )
    from iotfin.decision.strategies import compile_strategy  # lazy: the command line starts without it
    from iotfin.lending.disclosure import offer_terms  # lazy: the command line starts without it

    compiled, warnings = compile_strategy(_read(strategy, "--strategy"))
    try:
        data = orjson.loads(_read(input_file, "--input"))
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"--input: not JSON: {exc}") from None
    if not isinstance(data, dict) or "application" not in data or "assessment" not in data:
        raise ValidationError("--input: expected an object with 'application' and 'assessment'")
    app = Application.from_json(data["application"])
    assessment = RiskAssessment.from_json(data["assessment"])
    exp = data.get("exposure") or {}
    exposure = Exposure(to_money(exp.get("borrower", "0")), to_money(exp.get("core", "0")))
    on = date.fromisoformat(data["on"]) if data.get("on") else assessment.as_of.date()
    result = evaluate_application(compiled, app, assessment, DecisionPolicy(), exposure, on,
                                  strategy_name=strategy.name, has_core=app.core_enterprise_id is not None,
                                  apr=offer_terms)
    _print(result.to_json() | {"warnings": warnings}, as_json)


@decision_app.command("validate")
def validate(strategy: Annotated[Path, typer.Argument(help="JDM strategy file.")], as_json: JsonOpt = False) -> None:
    """Check a strategy as publishing would: every cell compiles, the graph builds, samples evaluate."""
    from iotfin.decision.strategies import compile_strategy  # lazy: the command line starts without it

    compiled, warnings = compile_strategy(_read(strategy, "strategy"))
    _print({"valid": True, "sha256": compiled.sha256, "warnings": warnings}, as_json)


@decision_app.command("default-strategy")
def default_strategy() -> None:
    """Print the packaged default strategy (open it in the GoRules editor, change it, publish it)."""
    from iotfin.decision.strategies import default_strategy_text  # lazy: the command line starts without it

    sys.stdout.write(default_strategy_text())


@decision_app.command("publish")
def publish(strategy: Annotated[Path, typer.Argument(help="JDM strategy file.")],
            by: Annotated[str, typer.Option("--by", help="Who publishes (recorded).")],
            name: NameOpt = "default", note: Annotated[str | None, typer.Option()] = None,
            activate: Annotated[bool, typer.Option("--activate/--no-activate", help="Make it the champion.")] = True,
            data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Publish a new immutable version (rejected, with the node/rule/column, if malformed)."""
    _print(_service(data_dir).publish(_read(strategy, "strategy"), by=by, name=name, note=note, activate=activate), as_json)


@decision_app.command("versions")
def versions(name: NameOpt = "default", data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Published versions and the deployment in force."""
    svc = _service(data_dir)
    _print({"name": name, "deployment": svc.deployment(name), "versions": svc.versions(name)}, as_json)


@decision_app.command("deploy")
def deploy(champion: Annotated[int, typer.Option(help="Version that decides by default.")],
           by: Annotated[str, typer.Option("--by")],
           challenger: Annotated[int | None, typer.Option(help="Version tried on a share of enterprises.")] = None,
           share_bps: Annotated[int, typer.Option("--share-bps", min=0, max=10_000,
                                                  help="Challenger share in basis points.")] = 0,
           name: NameOpt = "default", data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Put versions in force (champion, optional challenger on a stable hash split)."""
    _print(_service(data_dir).deploy(name, champion, by=by, challenger=challenger, challenger_bps=share_bps), as_json)


@decision_app.command("rollback")
def rollback(by: Annotated[str, typer.Option("--by")], name: NameOpt = "default", data_dir: DataDirOpt = None,
             as_json: JsonOpt = False) -> None:
    """Return to the previous deployment."""
    _print(_service(data_dir).rollback(name, by=by), as_json)


@decision_app.command("replay")
def replay(strategy: Annotated[Path, typer.Argument(help="Draft JDM strategy file.")], name: NameOpt = "default",
           limit: Annotated[int | None, typer.Option(min=1)] = None, data_dir: DataDirOpt = None,
           as_json: JsonOpt = False) -> None:
    """What a draft would have decided on past applications: approval rate, expected loss, volume."""
    _print(_service(data_dir).replay(_read(strategy, "strategy"), name=name, limit=limit), as_json)


@decision_app.command("queue")
def queue(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Applications waiting for an officer."""
    _print({"items": _service(data_dir).queue()}, as_json)


@decision_app.command("show")
def show(application_id: Annotated[int, typer.Argument()], data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """An application with its evidence, decisions (rule traces) and reviews."""
    _print(_service(data_dir).application(application_id), as_json)


@decision_app.command("review")
def review(application_id: Annotated[int, typer.Argument()],
           officer: Annotated[str, typer.Option("--officer")],
           action: Annotated[str, typer.Option("--action", help="approve | decline | counter_offer")],
           reason: Annotated[str, typer.Option("--reason", help="Mandatory.")],
           amount: Annotated[str | None, typer.Option()] = None,
           tenor: Annotated[int | None, typer.Option("--tenor", help="Months.")] = None,
           rate: Annotated[str | None, typer.Option(help="Annual rate, e.g. 0.065.")] = None,
           data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Act on a referred application (four-eyes above the configured amount)."""
    _print(_service(data_dir).review(application_id, officer=officer, action=action, reason=reason, amount=amount,
                                     tenor_months=tenor, rate=rate), as_json)
