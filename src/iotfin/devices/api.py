"""HTTP adapter of the devices context for operators: device status, device events (tamper signals
for monitoring), and enterprises claiming devices.

Operator endpoints, like the ledger's evidence endpoint: until partner identity and consent land
(docs/api.md) they are for the platform operator's network, not for partners.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from iotfin.devices import claims
from iotfin.devices.state import device_status
from iotfin.workspace import Workspace


class ClaimBody(BaseModel):
    secretKey: str = Field(default="", max_length=200)  # noqa: N815 - ThingsBoard's field name


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["devices"])

    @r.get("/devices/{device_id}/status")
    async def status(device_id: int, request: Request) -> dict[str, Any]:
        """Online/offline (the profile's inactivity timeout), last activity, connect and disconnect."""
        ws: Workspace = request.app.state.workspace
        tracker = ws.device_runtime.state if "device_runtime" in ws.__dict__ else None
        return await run_in_threadpool(device_status, ws.engine, ws.registry, device_id, tracker)

    @r.get("/devices/{device_id}/events")
    async def events(device_id: int, request: Request, kind: Annotated[list[str] | None, Query()] = None,
                     tamper: bool = False, since_ms: int | None = None, limit: int = 100) -> dict[str, Any]:
        """The device's events, newest first; `tamper=true` for tamper signals only."""
        ws: Workspace = request.app.state.workspace
        runtime = ws.device_runtime
        await run_in_threadpool(runtime.events.flush)  # include what this process still buffers
        rows = await run_in_threadpool(runtime.events.query, device_id, kind, tamper, since_ms, limit)
        return {"device_id": device_id, "events": rows}

    @r.post("/enterprises/{enterprise_id}/devices/{device_name}/claim")
    async def claim(enterprise_id: int, device_name: str, body: ClaimBody, request: Request) -> dict[str, Any]:
        """Claim a device that announced a claim secret (ThingsBoard's customer claim); 404 without
        an open claim with that secret."""
        ws: Workspace = request.app.state.workspace
        return await run_in_threadpool(claims.claim, ws.engine, ws.device_runtime.events, device_name,
                                       body.secretKey, enterprise_id)

    return r
