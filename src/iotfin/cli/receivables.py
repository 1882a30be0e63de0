"""`iotfin vouchers ...`: digital debt vouchers (数字债权凭证) on the local workspace — issue, split,
transfer (sent, then accepted or rejected by the receiver), offer, decide, pay, cancel, list, chain of title, evidence export and offline verification.

The command line is the operator's: each action names who acts (`--by` enterprise id, or `--lender`
code). Business dates default to today (Asia/Shanghai); `--on` is accepted on a simulation workspace.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import ValidationError
from iotfin.core.jsonout import dumps
from iotfin.core.time import business_date, utc_now
from iotfin.db.pagination import PageParams
from iotfin.ledger.evidence import EvidenceInvalid, verify_bundle
from iotfin.receivables.model import Holder, replay_title

TITLE_FORMAT = "iotfin-voucher-title/1"  # as iotfin.app.receivables_evidence writes it

vouchers_app = typer.Typer(help="Digital debt vouchers (数字债权凭证): issue, split, transfer, finance, pay.",
                           no_args_is_help=True)

ByOpt = Annotated[int, typer.Option("--by", help="Enterprise id acting (issuer, holder or payer).")]
OnOpt = Annotated[str | None, typer.Option("--on", help="Business date YYYY-MM-DD (simulation workspaces only).")]


def _day(ws: Any, on: str | None) -> date:
    if on is None:
        return business_date(utc_now())
    if not ws.settings.simulation:
        raise ValidationError("--on is accepted on a simulation workspace only (IOTFIN_SIMULATION=1)")
    try:
        return date.fromisoformat(on)
    except ValueError:
        raise ValidationError(f"--on: not an ISO date (YYYY-MM-DD): {on!r}") from None


def _run(data_dir: Path | None, as_json: bool, title: str, fn: Any) -> None:
    ws = kit.workspace(data_dir, schema=True)
    try:
        data = fn(ws)
    finally:
        ws.close()
    kit.emit(data, as_json, lambda d: kit.out.print(kit.kv_table(title, d) if isinstance(d, dict) else dumps(d)))


@vouchers_app.command()
def issue(by: ByOpt, supplier: Annotated[int, typer.Option("--supplier", help="Supplier enterprise id.")],
          amount: Annotated[str, typer.Option("--amount", help="Yuan, e.g. 100000.00.")],
          matures: Annotated[str, typer.Option("--matures", help="Maturity date YYYY-MM-DD.")],
          documents: Annotated[str, typer.Option("--documents", help="Trade document ids: PO, delivery note, invoice (comma-separated).")],
          on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The core enterprise (--by) issues a voucher to its supplier against matched trade documents."""
    try:
        ids = [int(x) for x in documents.split(",") if x.strip()]
        maturity = date.fromisoformat(matures)
    except ValueError as exc:
        raise ValidationError(f"--documents/--matures: {exc}") from None
    _run(data_dir, as_json, "voucher", lambda ws: ws.receivables.issue(by, supplier, amount, _day(ws, on), maturity, ids,
                                                                        actor="cli"))


@vouchers_app.command()
def split(part: Annotated[int, typer.Argument(help="Part id.")], by: ByOpt,
          amounts: Annotated[str, typer.Option("--amounts", help="Yuan per new part, comma-separated; the rest stays.")],
          on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Split a held part into parts (each at least the minimum)."""
    _run(data_dir, as_json, "parts", lambda ws: {"parts": ws.receivables.split(
        Holder("enterprise", by), part, [a.strip() for a in amounts.split(",")], _day(ws, on))})


@vouchers_app.command()
def transfer(part: Annotated[int, typer.Argument(help="Part id.")], by: ByOpt,
             to: Annotated[int, typer.Option("--to", help="Receiving enterprise id (in the holder's chain).")],
             on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Send a held part to an enterprise in the holder's supply chain (title passes when it accepts)."""
    _run(data_dir, as_json, "part", lambda ws: ws.receivables.transfer(Holder("enterprise", by), part, to, _day(ws, on)))


@vouchers_app.command()
def accept(part: Annotated[int, typer.Argument(help="Part id.")],
           by: Annotated[int, typer.Option("--by", help="Receiving enterprise id.")],
           on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The receiver (--by) accepts a transfer sent to it, before maturity: the part becomes its own."""
    _run(data_dir, as_json, "part", lambda ws: ws.receivables.accept(Holder("enterprise", by), part, _day(ws, on)))


@vouchers_app.command()
def reject(part: Annotated[int, typer.Argument(help="Part id.")],
           by: Annotated[int, typer.Option("--by", help="Receiving enterprise id (declines) or holder (recalls).")],
           data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The receiver declines a transfer sent to it, or the holder recalls it."""
    _run(data_dir, as_json, "part", lambda ws: ws.receivables.reject(Holder("enterprise", by), part))


@vouchers_app.command()
def offer(part: Annotated[int, typer.Argument(help="Part id.")], by: ByOpt,
          lender: Annotated[str, typer.Option("--lender", help="Lender tenant code.")],
          on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Offer a held part to a lender for financing."""
    _run(data_dir, as_json, "offer", lambda ws: ws.receivables.offer(
        Holder("enterprise", by), part, ws.financing.tenant_id(lender), _day(ws, on)))


@vouchers_app.command()
def decide(offer_id: Annotated[int, typer.Argument(help="Offer id.")],
           lender: Annotated[str, typer.Option("--lender", help="Lender tenant code.")],
           accept: Annotated[bool, typer.Option("--accept/--decline")] = True,
           on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The lender's decision: accepting books the discount loan and the lien and takes the part."""
    _run(data_dir, as_json, "decision", lambda ws: ws.receivables.decide(
        ws.financing.tenant_id(lender), offer_id, accept, _day(ws, on)))


@vouchers_app.command()
def pay(voucher: Annotated[int, typer.Argument(help="Voucher id.")], by: ByOpt,
        amount: Annotated[str, typer.Option("--amount", help="Yuan paid.")],
        on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The core enterprise pays; every holder gets its pro-rata share to the fen (through the GL)."""
    _run(data_dir, as_json, "payment", lambda ws: ws.receivables.pay(by, voucher, amount, _day(ws, on))["payment"])


@vouchers_app.command()
def cancel(voucher: Annotated[int, typer.Argument(help="Voucher id.")], by: ByOpt,
           data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a voucher: only its issuer, before any part was transferred or financed."""
    _run(data_dir, as_json, "voucher", lambda ws: ws.receivables.cancel(by, voucher))


@vouchers_app.command()
def show(voucher: Annotated[int, typer.Argument(help="Voucher id.")], data_dir: DataDirOpt = None,
         as_json: JsonOpt = False) -> None:
    """A voucher and its live parts."""
    _run(data_dir, as_json, "voucher", lambda ws: ws.receivables.voucher(voucher))


@vouchers_app.command()
def chain(voucher: Annotated[int, typer.Argument(help="Voucher id.")], data_dir: DataDirOpt = None,
          as_json: JsonOpt = False) -> None:
    """The chain of title: every event in order."""
    _run(data_dir, as_json, "chain", lambda ws: {"events": ws.receivables.chain_of_title(voucher)})


@vouchers_app.command()
def holdings(enterprise: Annotated[int | None, typer.Option("--enterprise", help="Holder enterprise id.")] = None,
             lender: Annotated[str | None, typer.Option("--lender", help="Holder lender code.")] = None,
             status: Annotated[str | None, typer.Option("--status")] = None,
             incoming: Annotated[bool, typer.Option("--incoming", help="Transfers sent to --enterprise, awaiting its acceptance.")] = False,
             data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The parts one holder holds (give --enterprise or --lender); --incoming: transfers awaiting acceptance."""
    if (enterprise is None) == (lender is None):
        raise ValidationError("give exactly one of --enterprise or --lender")

    def run(ws: Any) -> dict[str, Any]:
        holder = Holder("enterprise", enterprise) if enterprise is not None else \
            Holder("lender", ws.financing.tenant_id(lender))
        items, _ = ws.receivables.holdings(holder, PageParams(500, None), status, incoming)
        return {"items": items}
    _run(data_dir, as_json, "holdings", run)


@vouchers_app.command()
def late(on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Flag vouchers past maturity and unpaid (event, webhook voucher.late)."""
    _run(data_dir, as_json, "late", lambda ws: {"late": ws.receivables.flag_late(_day(ws, on))})


@vouchers_app.command("at-risk")
def at_risk(horizon: Annotated[int, typer.Option("--horizon", min=0, max=366, help="Days ahead of maturity.")] = 30,
            on: OnOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Maturity at risk: past due, or maturing within the horizon with a core that paid late before or rates poorly."""
    _run(data_dir, as_json, "at risk", lambda ws: {"at_risk": ws.receivables.at_risk(_day(ws, on), horizon)})


@vouchers_app.command()
def evidence(voucher: Annotated[int, typer.Argument(help="Voucher id.")],
             out: Annotated[Path, typer.Option("--out", help="Write the bundle here (JSON).")],
             data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Export the chain of title as an evidence bundle, verifiable offline with `iotfin vouchers verify`."""
    def run(ws: Any) -> dict[str, Any]:
        bundle = ws.voucher_evidence(voucher)
        out.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
        return {"written": str(out), "events": len(bundle["events"]), "verifier_key": bundle["verifier_key"]}
    _run(data_dir, as_json, "evidence", run)


@vouchers_app.command()
def verify(bundle: Annotated[Path, typer.Argument(help="Bundle written by `iotfin vouchers evidence`.")],
           key: Annotated[str, typer.Option("--key", help="The log's verifier key (obtained out of band).")],
           as_json: JsonOpt = False) -> None:
    """Verify a chain-of-title bundle offline: no workspace, no network."""
    data = json.loads(bundle.read_text(encoding="utf-8"))
    if data.get("format") != TITLE_FORMAT:
        raise EvidenceInvalid(f"not an {TITLE_FORMAT} bundle")
    for item in data["events"]:
        verify_bundle(item, key)
    try:
        proved = replay_title(int(data["voucher_id"]), [item["record"]["body"] for item in data["events"]])
    except ValidationError as exc:
        raise EvidenceInvalid(str(exc)) from None
    kit.emit(proved, as_json, lambda d: kit.out.print(kit.kv_table("verified / 验证通过", d)))
