"""HTTP adapter of webhooks: `/api/v1/webhooks/...` (scope webhooks:manage, the caller's own only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from iotfin.api.auth import require
from iotfin.api.fields import Text
from iotfin.api.pagination import Page
from iotfin.api.routing import ApiRouter
from iotfin.identity.model import Principal

Manager = Annotated[Principal, Depends(require("webhooks:manage"))]


class SubscriptionIn(BaseModel):
    url: str = Field(min_length=8, max_length=500, examples=["https://partner.example/hooks/iotfin"])
    event_types: list[str] = Field(min_length=1, max_length=20, examples=[["decision.made", "alert.raised"]])
    description: Text(200, min_length=0) = ""


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

    def svc(request: Request):  # noqa: ANN202
        return request.app.state.workspace.webhooks

    @r.post("/subscriptions", status_code=201)
    def subscribe(body: SubscriptionIn, who: Manager, request: Request) -> dict[str, Any]:
        """Subscribe a URL to event types. The signing secret is in this response only: keep it."""
        return svc(request).subscribe(who, body.url, body.event_types, body.description)

    @r.get("/subscriptions")
    def subscriptions(who: Manager, request: Request, page: Page) -> dict[str, Any]:
        items, cursor = svc(request).subscriptions(who, page)
        return {"items": items, "next_cursor": cursor}

    @r.delete("/subscriptions/{subscription_id}", status_code=204)
    def unsubscribe(subscription_id: int, who: Manager, request: Request) -> Response:
        svc(request).unsubscribe(who, subscription_id)
        return Response(status_code=204)

    @r.post("/subscriptions/{subscription_id}/ping", status_code=202)
    def ping(subscription_id: int, who: Manager, request: Request) -> dict[str, Any]:
        """Queue a `ping` event to this subscription (to test the receiver and its signature check)."""
        return {"event_id": svc(request).ping(who, subscription_id)}

    @r.get("/deliveries")
    def deliveries(who: Manager, request: Request, page: Page,
                   status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
                   event_type: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        """The delivery log: one row per event and subscription, newest attempts last."""
        items, cursor = svc(request).deliveries(who, page, status, event_type)
        return {"items": items, "next_cursor": cursor}

    @r.get("/deliveries/{delivery_id}")
    def delivery(delivery_id: int, who: Manager, request: Request) -> dict[str, Any]:
        """One delivery with every attempt (time, HTTP status or error, duration)."""
        return svc(request).delivery(who, delivery_id)

    return r
