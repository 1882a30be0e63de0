"""HTTP adapter of monitoring: the alert lifecycle for officers, and the checks partners run before
handing the platform rules, prices or geofences (refused with problem+json and the reason).

Access (docs/api.md#tenant-isolation): the operator sees every alert; an enterprise its own (with
the notices addressed to it); a lender the alerts on its customers (enterprises it has a loan or an
application with), each read checked against the enterprise's consent to `alerts` for
`post_loan_monitoring` and written to the access log. Another's alert is a 404. Rule and geofence
checks are for lenders and the operator; importing prices is the operator's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import consented, consented_many, require
from iotfin.api.pagination import Page
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import NotFound
from iotfin.identity.access import customers_of, is_customer
from iotfin.identity.model import Principal
from iotfin.monitor.model import polygon_from_coords
from iotfin.monitor.prices import PriceBook, read_csv
from iotfin.monitor.rules import RuleSet
from iotfin.monitor.store import AlertStore

SCOPE, PURPOSE = "alerts", "post_loan_monitoring"
Reader = Annotated[Principal, Depends(require("alerts:read"))]
Handler = Annotated[Principal, Depends(require("alerts:handle"))]
Configurer = Annotated[Principal, Depends(require("monitor:configure"))]
PriceKeeper = Annotated[Principal, Depends(require("monitor:prices"))]


class Actor(BaseModel):
    by: str = Field(min_length=1, max_length=128, description="officer id, for the audit trail")


class Resolve(Actor):
    reason: str = Field(min_length=1, max_length=2000, description="mandatory resolution reason")


class Assign(Actor):
    officer: str = Field(min_length=1, max_length=128)


class Polygon(BaseModel):
    coordinates: list[list[float]] = Field(description="[[lon, lat], ...], at least three points")


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1/monitor", tags=["monitor"])

    def store(request: Request) -> AlertStore:
        return AlertStore(request.app.state.workspace.engine)

    def visible(request: Request, who: Principal, alert_id: int) -> dict[str, Any]:
        """The alert, if the caller may see it (404 otherwise); a lender's read is consent-checked."""
        alert = store(request).get(alert_id)
        eid = alert["enterprise_id"]
        if who.platform or who.enterprise_id == eid:
            return alert
        if who.enterprise_id is not None or who.tenant_id is None \
                or not is_customer(request.app.state.workspace.engine, who.tenant_id, eid):
            raise NotFound(f"no alert {alert_id}")
        consented(request, who, eid, SCOPE, PURPOSE, f"alert {alert_id}")
        return alert

    def by(who: Principal, named: str) -> str:
        return named if who.platform else who.subject

    @r.get("/alerts")
    def list_alerts(who: Reader, request: Request, page: Page, status: str | None = None,
                    enterprise_id: int | None = None,
                    assigned_to: Annotated[str | None, Query(max_length=128)] = None) -> dict[str, Any]:
        """Newest first: every alert for the operator, an enterprise's own, a lender's customers'
        alerts for which the enterprise consented; `assigned_to` keeps those assigned to one officer
        (an officer's inbox). For a lender, the enterprises on the page are
        consent-checked together (each read logged) and the alerts of any that refuse are left out,
        so a page may hold fewer than `limit` items: follow `next_cursor` until it is null."""
        only = None if enterprise_id is None else {enterprise_id}
        if who.platform:
            items, cursor = store(request).page(page, status, only, assigned_to=assigned_to)
        elif who.enterprise_id is not None:
            if enterprise_id not in (None, who.enterprise_id):
                return {"items": [], "next_cursor": None}
            items, cursor = store(request).page(page, status, {who.enterprise_id}, assigned_to=assigned_to)
        elif who.tenant_id is not None:
            items, cursor = store(request).page(page, status, only, among=customers_of(who.tenant_id),
                                                assigned_to=assigned_to)
            allowed = consented_many(request, who, {a["enterprise_id"] for a in items}, SCOPE, PURPOSE, "alert list")
            items = [a for a in items if a["enterprise_id"] in allowed]
        else:
            items, cursor = [], None
        return {"items": items, "next_cursor": cursor}

    @r.get("/alerts/{alert_id}")
    def get_alert(alert_id: int, who: Reader, request: Request) -> dict[str, Any]:
        """One alert with its audit trail and the notices prepared for the lender and the enterprise
        (an enterprise sees only those addressed to it)."""
        alert = visible(request, who, alert_id)
        notices = store(request).notifications(alert_id)
        if who.enterprise_id is not None:
            notices = [n for n in notices if n.get("audience") == "enterprise"]
        return alert | {"notifications": notices}

    @r.post("/alerts/{alert_id}/acknowledge")
    def acknowledge(alert_id: int, body: Actor, who: Handler, request: Request) -> dict[str, Any]:
        visible(request, who, alert_id)
        return store(request).transition(alert_id, "acknowledged", by(who, body.by))

    @r.post("/alerts/{alert_id}/assign")
    def assign(alert_id: int, body: Assign, who: Handler, request: Request) -> dict[str, Any]:
        visible(request, who, alert_id)
        return store(request).assign(alert_id, body.officer, by(who, body.by))

    @r.post("/alerts/{alert_id}/resolve")
    def resolve(alert_id: int, body: Resolve, who: Handler, request: Request) -> dict[str, Any]:
        visible(request, who, alert_id)
        return store(request).transition(alert_id, "resolved", by(who, body.by), body.reason)

    @r.post("/rules/check")
    async def rules_check(who: Configurer, request: Request) -> dict[str, Any]:
        """Compile a JDM warning-rule model (the request body); 422 with the reason if it does not."""
        rules = RuleSet.load(await request.body())
        return {"version": rules.version, "sha256": rules.digest, "ok": True}

    @r.post("/geofences/check")
    def geofence_check(body: Polygon, who: Configurer) -> dict[str, Any]:
        polygon = polygon_from_coords(body.coordinates)
        return {"ok": True, "area_deg2": polygon.area, "bounds": list(polygon.bounds)}

    @r.post("/prices")
    async def import_prices(who: PriceKeeper, request: Request) -> dict[str, Any]:
        """Import daily prices as CSV (day,commodity,price[,unit]); gaps and non-positive prices: 422."""
        points = read_csv((await request.body()).decode("utf-8-sig"), "request body")
        s = store(request)
        book = PriceBook()
        book.add(s.load_prices())
        days = book.add(points)
        s.save_prices(points)
        return {"imported": len(points), "days_by_commodity": days}

    return r
