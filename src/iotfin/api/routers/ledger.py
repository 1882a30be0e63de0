"""HTTP adapter of the ledger: checkpoints, verifier key, evidence bundles, and a C2SP tlog-witness
endpoint (`POST /add-checkpoint`) so partner institutions' logs can be cosigned by this platform."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from iotfin.api.auth import require
from iotfin.api.platform import Platform
from iotfin.api.routing import ApiRouter
from iotfin.identity.model import Principal
from iotfin.ledger.checkpoint import COSIGNATURE_V1, VerifierKey
from iotfin.ledger.service import load_or_create_signer
from iotfin.ledger.witness import (
    SIZE_CONTENT_TYPE,
    SizeConflict,
    Witness,
    WitnessError,
    format_add_checkpoint_request,
    parse_cosignature_response,
)


def make_witness(ws: Platform) -> Witness:
    """The platform's witness: it cosigns its own log and the logs listed, one `origin verifier-key`
    per line, in `<data dir>/witness_logs.txt`."""
    logs: dict[str, list[VerifierKey]] = {ws.ledger.origin: [ws.ledger.signer.verifier()]}
    listing = Path(ws.data_dir) / "witness_logs.txt"
    if listing.exists():
        for line in listing.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                origin, vkey = line.rsplit(maxsplit=1)
                logs.setdefault(origin, []).append(VerifierKey.parse(vkey))
    key = load_or_create_signer(Path(ws.data_dir) / "witness.key", "iotfin-witness", COSIGNATURE_V1)
    return Witness([key], logs)


Evidence = Annotated[Principal, Depends(require("ledger:evidence"))]


def _own_cosignature(request: Request, note: str, size: int) -> list[str]:
    """This platform's witness cosigning the latest checkpoint, by the protocol's own request (from the
    size it last cosigned, with a consistency proof), so the page shows what a partner would get."""
    state = request.app.state
    if getattr(state, "witness", None) is None:
        state.witness = make_witness(state.workspace)
    ledger = state.workspace.ledger
    old = 0
    for _ in range(2):
        proof = ledger.store.consistency_proof(old, size) if 0 < old < size else []
        try:
            lines = parse_cosignature_response(state.witness.add_checkpoint(format_add_checkpoint_request(old, proof, note)))
            return [line.rstrip("\n") for line in lines]
        except SizeConflict as exc:  # the witness says where it stands; resend from there
            old = exc.latest_size
    raise WitnessError("the witness kept disagreeing about its latest size")


def router() -> APIRouter:
    r = ApiRouter(tags=["ledger"])

    def ws_of(request: Request) -> Platform:
        return request.app.state.workspace

    @r.get("/api/v1/ledger/checkpoint", response_class=PlainTextResponse)
    def checkpoint(request: Request) -> str:
        """The latest signed checkpoint (C2SP signed note), signing one if the head is unsigned."""
        return ws_of(request).ledger.checkpoint()

    @r.get("/api/v1/ledger/key", response_class=PlainTextResponse)
    def verifier_key(request: Request) -> str:
        return ws_of(request).ledger.verifier_key + "\n"

    @r.get("/api/v1/ledger/evidence/{record_type}/{record_id}")
    def evidence(record_type: str, record_id: str, request: Request,
                 who: Annotated[Principal, Depends(require("ledger:evidence"))]) -> dict[str, Any]:
        """An offline-verifiable evidence bundle for one anchored record (scope ledger:evidence:
        auditors and the operator; bundles can carry trade-document details)."""
        return ws_of(request).ledger.prove(record_type, record_id)

    @r.get("/api/v1/ledger/status")
    def status(request: Request, who: Evidence) -> dict[str, Any]:
        """The latest checkpoint with its signature lines, this platform's witness cosignature over it
        (the same C2SP tlog-witness as `POST /add-checkpoint`, asked in-process), anchors per record type
        and the latest anchored records (scope ledger:evidence: auditors and the operator)."""
        ws = ws_of(request)
        out = ws.ledger.status()
        try:
            out["witness_cosignatures"] = _own_cosignature(request, out["checkpoint"], out["size"])
        except WitnessError as exc:  # shown, not fatal: the log itself is readable without the witness
            out["witness_cosignatures"], out["witness_error"] = [], str(exc)
        return out

    @r.post("/api/v1/ledger/audit")
    async def audit(request: Request, who: Evidence) -> dict[str, Any]:
        """Re-derive the whole log from its leaves and check every signed checkpoint and every anchored
        record as it stands now (`ok`, leaves, records checked, the problems found)."""
        ws = ws_of(request)
        return await run_in_threadpool(ws.ledger.audit, 50_000, ws.settings.resolved_telemetry_dir)

    @r.post("/add-checkpoint", responses={409: {"description": "old size or root conflict"}})
    async def add_checkpoint(request: Request) -> Response:
        """C2SP tlog-witness: cosign a checkpoint that consistently extends the last one seen."""
        state = request.app.state
        if getattr(state, "witness", None) is None:
            state.witness = make_witness(state.workspace)
        body = await request.body()
        try:
            cosignatures = await run_in_threadpool(state.witness.add_checkpoint, body)
        except SizeConflict as exc:
            return Response(exc.body(), status_code=409, media_type=SIZE_CONTENT_TYPE)
        except WitnessError as exc:
            return PlainTextResponse(str(exc) + "\n", status_code=exc.http_status)
        return Response(cosignatures, media_type="text/plain; charset=utf-8")

    return r
