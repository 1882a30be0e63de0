"""`iotfin ledger …` (checkpoints, evidence bundles, audit) and `iotfin financing …` (liens)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError as PydanticError

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import ValidationError
from iotfin.core.jsonout import dumps

ledger_app = typer.Typer(help="Trusted ledger: checkpoints, evidence bundles, audit, witnessing.", no_args_is_help=True)
financing_app = typer.Typer(help="Financing registry: liens on receivables, receipts, stock, vehicles.", no_args_is_help=True)



@ledger_app.command("key")
def ledger_key(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The log's verifier key (give it to whoever checks evidence)."""
    ws = kit.workspace(data_dir, schema=True)
    kit.emit({"verifier_key": ws.ledger.verifier_key, "origin": ws.ledger.origin}, as_json,
          lambda d: print(d["verifier_key"]))


@ledger_app.command("checkpoint")
def ledger_checkpoint(witness: Annotated[str | None, typer.Option(help="Also ask this tlog-witness (base URL) to cosign.")] = None,
                      data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Sign a checkpoint of the log as it stands (never one inconsistent with an earlier one)."""
    from iotfin.ledger.service import request_cosignature  # lazy: the command line starts without it

    ws = kit.workspace(data_dir, schema=True)
    note = ws.ledger.checkpoint()
    data: dict[str, Any] = {"checkpoint": note}
    if witness:
        data["cosignatures"] = request_cosignature(ws.ledger, witness)
    kit.emit(data, as_json, lambda d: print(d["checkpoint"] + "".join(d.get("cosignatures", [])), end=""))


@ledger_app.command("prove")
def ledger_prove(
    record: Annotated[str, typer.Argument(help="TYPE:ID, e.g. trade_document:1234 or lien:7.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the bundle (JSON).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write an evidence bundle for one anchored record."""
    type_name, sep, record_id = record.partition(":")
    if not sep or not record_id:
        raise ValidationError(f"RECORD must look like TYPE:ID, not {record!r}")
    bundle = kit.workspace(data_dir, schema=True).ledger.prove(type_name, record_id)
    _write_bundle(out_path, bundle, as_json)


@ledger_app.command("prove-reading")
def ledger_prove_reading(
    device: Annotated[int, typer.Option(help="Device id.")],
    key: Annotated[str, typer.Option(help="Metric key.")],
    ts: Annotated[int, typer.Option(help="Reading timestamp, epoch ms.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the bundle (JSON).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write an evidence bundle for one stored telemetry reading."""
    ws = kit.workspace(data_dir, schema=True)
    bundle = ws.ledger.prove_reading(ws.settings.resolved_telemetry_dir, device, key, ts)
    _write_bundle(out_path, bundle, as_json)


def _write_bundle(path: Path, bundle: dict[str, Any], as_json: bool) -> None:
    path.write_text(dumps(bundle, indent=True) + "\n")
    kit.emit({"out": str(path), "leaf_index": bundle["leaf"]["index"]}, as_json,
          lambda d: kit.out.print(f"evidence written to {d['out']} (leaf {d['leaf_index']})"))


@ledger_app.command("verify")
def ledger_verify(
    bundle_path: Annotated[Path, typer.Argument(help="An evidence bundle.")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key (or @FILE holding it).")],
    as_json: JsonOpt = False,
) -> None:
    """Check a bundle offline, with no database: exit 0 if it holds, 65 with the reason if not."""

    from iotfin.ledger.evidence import (  # lazy: the command line starts without it
        EvidenceInvalid,
        verify_bundle,
    )

    vkey = Path(key[1:]).read_text().strip() if key.startswith("@") else key
    try:
        bundle = json.loads(bundle_path.read_text())
    except (OSError, ValueError) as exc:
        raise EvidenceInvalid(f"cannot read {bundle_path}: {exc}") from None
    proved = verify_bundle(bundle, vkey)
    kit.emit({"valid": True, **proved}, as_json, lambda d: kit.out.print(f"[green]VALID[/green] {d['record_type']} {d['record_id']} "
                                                               f"is leaf {d['leaf_index']} of checkpoint {d['checkpoint']['size']}"))


@ledger_app.command("audit")
def ledger_audit(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Re-derive the log from its stored leaves and re-check every anchored record: exit 65 if anything changed."""
    ws = kit.workspace(data_dir, schema=True)
    report = ws.ledger.audit(telemetry_root=ws.settings.resolved_telemetry_dir)
    kit.emit(report, as_json, lambda d: kit.out.print_json(data=d))
    if not report["ok"]:
        raise typer.Exit(65)



AssetOpt = Annotated[str, typer.Option("--asset", help='Asset as JSON, e.g. \'{"kind": "vehicle", "vin": "..."}\'.')]


def _asset_key(text: str):  # noqa: ANN202 - lazy import keeps `iotfin --help` fast


    from iotfin.api.routers.financing import AssetIn  # lazy: the command line starts without it

    try:
        return AssetIn.model_validate(json.loads(text)).key()
    except (json.JSONDecodeError, PydanticError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValidationError(f"--asset: {first}") from None


@financing_app.command("place")
def financing_place(
    asset: AssetOpt,
    tenant: Annotated[str, typer.Option(help="Code of the lender placing the lien.")],
    ref: Annotated[str, typer.Option(help="The lender's financing reference.")],
    amount: Annotated[str, typer.Option(help="Amount financed, yuan (decimal).")],
    registration_no: Annotated[str | None, typer.Option(help="Movable-property registration number.")] = None,
    registered_at: Annotated[str | None, typer.Option(help="Registration time (ISO 8601 with offset).")] = None,
    notice_at: Annotated[str | None, typer.Option(help="When the debtor was notified (ISO 8601).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Finance an asset; a second financing is refused (exit 75) with the existing lien."""

    def when(text: str | None, name: str) -> datetime | None:
        return None if text is None else kit.aware_time(text, name, "2026-03-01T09:30:00+08:00")

    key = _asset_key(asset)
    ws = kit.workspace(data_dir, schema=True)
    lien = ws.financing.finance(key, ws.financing.tenant_id(tenant), ref, amount, registration_no=registration_no,
                                registered_at=when(registered_at, "registered-at"), notice_at=when(notice_at, "notice-at"))
    kit.emit(lien.to_json(), as_json, lambda d: kit.out.print(kit.kv_table("lien placed / 已登记质押", d)))


@financing_app.command("release")
def financing_release(lien: Annotated[int, typer.Argument(help="Lien id.")],
                      reason: Annotated[str, typer.Option(help="Why, e.g. repaid in full.")],
                      data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Release a lien (repayment, cancellation)."""
    released = kit.workspace(data_dir, schema=True).financing.release(lien, reason)
    kit.emit(released.to_json(), as_json, lambda d: kit.out.print(kit.kv_table("lien released / 已解除", d)))


@financing_app.command("status")
def financing_status(asset: AssetOpt, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """An asset's fingerprint, active lien, lien history and every financing attempt."""
    data = kit.workspace(data_dir, schema=True).financing.status(_asset_key(asset))
    kit.emit(data, as_json, lambda d: kit.out.print_json(data=d))
