"""HTTP adapter of monitoring: the alert lifecycle for officers, and the checks partners run before
handing the platform rules, prices or geofences (refused with problem+json and the reason).

Alerts are lender-side records about enterprises; until partner identity and consent land (see
docs/api.md) these routes are for the platform operator's officers only, like the CLI.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from iotfin.monitor.model import polygon_from_coords
from iotfin.monitor.prices import PriceBook, read_csv
from iotfin.monitor.rules import RuleSet
from iotfin.monitor.store import AlertStore


class Actor(BaseModel):
    by: str = Field(min_length=1, max_length=128, description="officer id, for the audit trail")


class Resolve(Actor):
    reason: str = Field(min_length=1, max_length=2000, description="mandatory resolution reason")


class Assign(Actor):
    officer: str = Field(min_length=1, max_length=128)


class Polygon(BaseModel):
    coordinates: list[list[float]] = Field(description="[[lon, lat], ...], at least three points")


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/monitor", tags=["monitor"])

    def store(request: Request) -> AlertStore:
        return AlertStore(request.app.state.workspace.engine)

    @r.get("/alerts")
    def list_alerts(request: Request, status: str | None = None, enterprise_id: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        return store(request).list(status, enterprise_id, min(max(limit, 1), 1000))

    @r.get("/alerts/{alert_id}")
    def get_alert(alert_id: int, request: Request) -> dict[str, Any]:
        """One alert with its audit trail and the notices prepared for the lender and the enterprise."""
        s = store(request)
        return s.get(alert_id) | {"notifications": s.notifications(alert_id)}

    @r.post("/alerts/{alert_id}/acknowledge")
    def acknowledge(alert_id: int, body: Actor, request: Request) -> dict[str, Any]:
        return store(request).transition(alert_id, "acknowledged", body.by)

    @r.post("/alerts/{alert_id}/assign")
    def assign(alert_id: int, body: Assign, request: Request) -> dict[str, Any]:
        return store(request).assign(alert_id, body.officer, body.by)

    @r.post("/alerts/{alert_id}/resolve")
    def resolve(alert_id: int, body: Resolve, request: Request) -> dict[str, Any]:
        return store(request).transition(alert_id, "resolved", body.by, body.reason)

    @r.post("/rules/check")
    async def rules_check(request: Request) -> dict[str, Any]:
        """Compile a JDM warning-rule model (the request body); 422 with the reason if it does not."""
        rules = RuleSet.load(await request.body())
        return {"version": rules.version, "sha256": rules.digest, "ok": True}

    @r.post("/geofences/check")
    def geofence_check(body: Polygon) -> dict[str, Any]:
        polygon = polygon_from_coords(body.coordinates)
        return {"ok": True, "area_deg2": polygon.area, "bounds": list(polygon.bounds)}

    @r.post("/prices")
    async def import_prices(request: Request) -> dict[str, Any]:
        """Import daily prices as CSV (day,commodity,price[,unit]); gaps and non-positive prices: 422."""
        points = read_csv((await request.body()).decode("utf-8-sig"), "request body")
        s = store(request)
        book = PriceBook()
        book.add(s.load_prices())
        days = book.add(points)
        s.save_prices(points)
        return {"imported": len(points), "days_by_commodity": days}

    return r
