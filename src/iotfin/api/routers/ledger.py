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
from iotfin.ledger.witness import SIZE_CONTENT_TYPE, SizeConflict, Witness, WitnessError


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
