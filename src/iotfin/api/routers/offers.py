"""HTTP adapter of loan offers: `/api/v1/offers`.

An approved credit decision makes an offer (`POST /credit-applications` returns it). The enterprise
reads it with its key-facts statement (zh/en) and accepts it by sending back the statement's digest;
its lender then books it (`POST /lending/loans {offer_id}`).

Access: a lender sees the offers of its own applications, an enterprise its own, the operator all;
another's offer is a 404. Only the enterprise (`offers:accept`) accepts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import require
from iotfin.api.pagination import Page
from iotfin.api.responses import DecimalJSONResponse
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import Forbidden, NotFound
from iotfin.identity.model import Principal
from iotfin.lending.offers import OfferService


class AcceptanceIn(BaseModel):
    key_facts_digest: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-fA-F]{64}$",
                                  description="SHA-256 of the key-facts statement read (the offer's key_facts.digest)")


Reader = Annotated[Principal, Depends(require("offers:read"))]
Acceptor = Annotated[Principal, Depends(require("offers:accept"))]


def _json(data: Any, status: int = 200) -> Any:
    return DecimalJSONResponse(data, status_code=status)


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["offers"])

    def svc(request: Request) -> OfferService:
        return request.app.state.workspace.offers

    def visible(who: Principal, offer: dict[str, Any]) -> dict[str, Any]:
        if who.platform:
            return offer
        if who.enterprise_id is not None and offer["enterprise_id"] == who.enterprise_id:
            return offer
        if who.enterprise_id is None and who.tenant_id is not None and offer["lender"] == who.tenant_code:
            return offer
        raise NotFound(f"no offer {offer['id']}")

    @r.get("/offers")
    def offers(who: Reader, request: Request, page: Page, status: str | None = None,
               enterprise_id: int | None = None) -> Any:
        """Offers, newest first, by status (open, accepted, booked, expired) and enterprise."""
        if who.platform:
            items, cursor = svc(request).page(page, status=status, enterprise_id=enterprise_id)
        elif who.enterprise_id is not None:
            items, cursor = ([], None) if enterprise_id not in (None, who.enterprise_id) else svc(request).page(
                page, status=status, enterprise_id=who.enterprise_id)
        elif who.tenant_id is not None:
            items, cursor = svc(request).page(page, status=status, enterprise_id=enterprise_id,
                                              lender_tenant_id=who.tenant_id)
        else:
            items, cursor = [], None
        return _json({"items": items, "next_cursor": cursor})

    @r.get("/offers/{offer_id}")
    def offer(offer_id: int, who: Reader, request: Request) -> Any:
        """An offer with its key-facts statement (zh, en) and the statement's digest."""
        return _json(visible(who, svc(request).get(offer_id)))

    @r.post("/offers/{offer_id}/acceptance")
    def accept(offer_id: int, body: AcceptanceIn, who: Acceptor, request: Request) -> Any:
        """The enterprise accepts the offer after reading its key facts (409 twice or expired, 422 when
        the digest is not the statement's)."""
        if who.enterprise_id is None:
            raise Forbidden("only the enterprise the offer is made to accepts it")
        visible(who, svc(request).get(offer_id))
        return _json(svc(request).accept(offer_id, body.key_facts_digest, actor=who.subject))

    return r
