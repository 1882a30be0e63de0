"""HTTP adapter of the devices context for operators: device status, device events (tamper signals
for monitoring), and enterprises claiming devices.

Access (docs/api.md#tenant-isolation): the operator sees every device; an enterprise reads and
claims its own devices only (`devices:read`, `devices:claim`); lenders read an enterprise's device
data through consent-checked endpoints, never here. Another enterprise's device is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from iotfin.api.auth import require
from iotfin.api.platform import Platform
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import Forbidden, NotFound
from iotfin.core.time import ms_to_datetime, now_ms
from iotfin.devices import claims
from iotfin.devices.state import device_status
from iotfin.devices.store import fleet_counts
from iotfin.devices.tables import Device
from iotfin.identity.model import Principal


class ClaimBody(BaseModel):
    secretKey: str = Field(default="", max_length=200)  # noqa: N815 - ThingsBoard's field name


Reader = Annotated[Principal, Depends(require("devices:read"))]
Claimer = Annotated[Principal, Depends(require("devices:claim"))]


def _visible(ws: Platform, who: Principal, device_id: int) -> None:
    if who.platform:
        return
    with ws.engine.connect() as conn:
        owner = conn.execute(select(Device.enterprise_id).where(Device.id == device_id)).scalar()
    if who.enterprise_id is None or owner != who.enterprise_id:
        raise NotFound(f"no device {device_id}")


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["devices"])

    @r.get("/fleet", responses={403: {"description": "not the platform operator"}})
    async def fleet(who: Annotated[Principal, Depends(require("enterprises:read"))], request: Request) -> dict[str, Any]:
        """The whole fleet at a glance (the platform operator's): devices online / offline / never seen
        and by registry status, latest activity, devices active in the last 15 minutes and hour, stored
        readings (ingest volume), and rejected readings by reason and the devices they came from."""
        if not who.platform:
            raise Forbidden("the fleet summary is the platform operator's")
        ws: Platform = request.app.state.workspace

        def gather() -> dict[str, Any]:
            now = now_ms()
            if ws.device_runtime_started():
                ws.device_runtime.state.persist()  # this process's latest activity, not the last write's
            with ws.engine.connect() as conn:
                counts = fleet_counts(conn, now)
            rejected = ws.quarantine.counts("reason")
            by_device = ws.quarantine.counts("device_id")
            telemetry = ws.telemetry.stats()
            days = int(telemetry.get("days") or 0)
            points = int(telemetry.get("data_points") or 0)
            return counts | {
                "last_activity": None if counts["last_activity_ms"] is None
                else ms_to_datetime(counts["last_activity_ms"]).isoformat(),
                "quarantined_devices": sum(1 for k in by_device if k not in ("None", "")),
                "rejected_by_reason": rejected, "rejected": sum(rejected.values()),
                "ingest": {"data_points": points, "days": days,
                           "readings_per_day": round(points / days) if days else 0},
                "at_ms": now}

        return await run_in_threadpool(gather)

    @r.get("/devices/{device_id}/status")
    async def status(device_id: int, who: Reader, request: Request) -> dict[str, Any]:
        """Online/offline (the profile's inactivity timeout), last activity, connect and disconnect."""
        ws: Platform = request.app.state.workspace
        await run_in_threadpool(_visible, ws, who, device_id)
        tracker = ws.device_runtime.state if ws.device_runtime_started() else None
        return await run_in_threadpool(device_status, ws.engine, ws.registry, device_id, tracker)

    @r.get("/devices/{device_id}/events")
    async def events(device_id: int, who: Reader, request: Request, kind: Annotated[list[str] | None, Query()] = None,
                     tamper: bool = False, since_ms: int | None = None, limit: int = 100) -> dict[str, Any]:
        """The device's events, newest first; `tamper=true` for tamper signals only."""
        ws: Platform = request.app.state.workspace
        await run_in_threadpool(_visible, ws, who, device_id)
        runtime = ws.device_runtime
        await run_in_threadpool(runtime.events.flush)  # include what this process still buffers
        rows = await run_in_threadpool(runtime.events.query, device_id, kind, tamper, since_ms, limit)
        return {"device_id": device_id, "events": rows}

    @r.post("/enterprises/{enterprise_id}/devices/{device_name}/claim")
    async def claim(enterprise_id: int, device_name: str, body: ClaimBody, who: Claimer,
                    request: Request) -> dict[str, Any]:
        """Claim a device that announced a claim secret (ThingsBoard's customer claim) for the
        caller's own enterprise; 404 without an open claim with that secret."""
        if not who.platform and who.enterprise_id != enterprise_id:
            raise Forbidden("an enterprise claims devices for itself only")
        ws: Platform = request.app.state.workspace
        return await run_in_threadpool(claims.claim, ws.engine, ws.device_runtime.events, device_name,
                                       body.secretKey, enterprise_id)

    return r
