"""HTTP adapter of consent: `/api/v1/consents/...`.

Access (docs/api.md#tenant-isolation): the enterprise grants, withdraws and reconfirms its own
consents (`consents:manage`) and reads them and its access log (`consents:read`); a lender reads
only the grants naming it as recipient and the log of its own reads, and checks reads in its own
name only (`consents:check`); the operator may act for any enterprise. Another enterprise's grant is
a 404. The `enterprise_id` and `recipient` fields must name the caller unless it is the operator.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import principal, require
from iotfin.api.pagination import Page
from iotfin.api.routing import ApiRouter
from iotfin.consent.model import MAX_RECONFIRM_DAYS, PURPOSES, REASONS, SCOPES, GrantRequest
from iotfin.consent.service import ConsentService, grant_json
from iotfin.core.errors import Forbidden, NotFound
from iotfin.db.pagination import ID_MAX  # ids beyond the database's integers are a 422, not a driver overflow
from iotfin.identity.model import Principal


class GrantIn(BaseModel):
    enterprise_id: int = Field(gt=0)
    recipient: str = Field(min_length=1, max_length=64, examples=["bank-a"])
    purpose: str = Field(examples=["credit_assessment"])
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES), examples=[["telemetry:energy", "trade_documents"]])
    window_start: date
    window_end: date | None = Field(default=None, description="defaults to the expiry date")
    expires_at: datetime | None = Field(default=None, description="at most 12 months ahead; defaults to 12 months")
    reconfirm_days: int = Field(default=MAX_RECONFIRM_DAYS, ge=1, le=MAX_RECONFIRM_DAYS)
    onward_recipients: list[str] = Field(default_factory=list, max_length=20)


class EnterpriseIn(BaseModel):
    enterprise_id: int = Field(gt=0, description="the enterprise the consent belongs to")


class CheckIn(BaseModel):
    recipient: str = Field(min_length=1, max_length=64)
    enterprise_id: int = Field(gt=0)
    scope: str
    purpose: str
    data_start: date
    data_end: date
    onward_to: str | None = Field(default=None, max_length=64)


Manager = Annotated[Principal, Depends(require("consents:manage"))]
Reader = Annotated[Principal, Depends(require("consents:read"))]
Checker = Annotated[Principal, Depends(require("consents:check"))]


def _own_enterprise(who: Principal, enterprise_id: int) -> None:
    """An enterprise acts on its own consents only (the operator on any)."""
    if not who.platform and who.enterprise_id != enterprise_id:
        raise Forbidden("an enterprise manages and reads only its own consents")


def _as_recipient(who: Principal, recipient: str | None) -> str | None:
    """The recipient a lender may ask about: itself, whatever it named."""
    if who.platform or who.enterprise_id is not None:
        return recipient
    if who.tenant_code is None or recipient not in (None, who.tenant_code):
        raise Forbidden("a lender reads and checks consents in its own name only")
    return who.tenant_code


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1/consents", tags=["consent"])

    def service(request: Request) -> ConsentService:
        return request.app.state.workspace.consent

    @r.get("/vocabulary")
    def vocabulary(who: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        """Scopes, purposes and decision reasons, with their zh-CN and en labels."""
        return {"scopes": {k: {"zh": v[0], "en": v[1], "covers": v[2]} for k, v in SCOPES.items()},
                "purposes": {k: {"zh": v[0], "en": v[1]} for k, v in PURPOSES.items()},
                "reasons": {k: {"zh": v[0], "en": v[1]} for k, v in REASONS.items()}}

    @r.post("", status_code=201)
    def grant(body: GrantIn, who: Manager, request: Request) -> dict[str, Any]:
        """The enterprise grants a recipient scopes for a purpose, a data window and an expiry; anchored in the ledger."""
        _own_enterprise(who, body.enterprise_id)
        svc = service(request)
        now = svc.clock()
        expires = body.expires_at or now + timedelta(days=365)
        req = GrantRequest(enterprise_id=body.enterprise_id, recipient=body.recipient, purpose=body.purpose,
                           scopes=tuple(body.scopes), window_start=body.window_start,
                           window_end=body.window_end or expires.date(), expires_at=expires,
                           reconfirm_days=body.reconfirm_days, onward_recipients=tuple(body.onward_recipients))
        return grant_json(svc.grant(req, now), now)

    @r.get("")
    def list_grants(who: Reader, request: Request, enterprise_id: int = Query(gt=0, le=ID_MAX),
                    recipient: str | None = Query(None, max_length=64)) -> dict[str, Any]:
        """The enterprise's grants (a lender: those naming it)."""
        if who.enterprise_id is not None:
            _own_enterprise(who, enterprise_id)
        recipient = _as_recipient(who, recipient)
        svc = service(request)
        now = svc.clock()
        return {"items": [grant_json(g, now) for g in svc.grants(enterprise_id, recipient)]}

    @r.get("/access-log")
    def access_log(who: Reader, request: Request, page: Page, enterprise_id: int = Query(gt=0, le=ID_MAX),
                   recipient: str | None = Query(None, max_length=64)) -> dict[str, Any]:
        """Every read of the enterprise's data by others, allowed or refused, oldest first. A lender
        sees only its own reads."""
        if who.enterprise_id is not None:
            _own_enterprise(who, enterprise_id)
        recipient = _as_recipient(who, recipient)
        items, cursor = service(request).access_log_page(enterprise_id, page, recipient)
        return {"items": items, "next_cursor": cursor}

    @r.post("/check")
    def check(body: CheckIn, who: Checker, request: Request) -> dict[str, Any]:
        """Decide (and log) one read by a recipient; 200 with `allowed` false when refused."""
        if who.enterprise_id is not None:
            raise Forbidden("an enterprise reads its own data without a consent check")
        _as_recipient(who, body.recipient)
        decision = service(request).check(body.recipient, body.enterprise_id, body.scope, body.purpose,
                                          (body.data_start, body.data_end), onward_to=body.onward_to)
        return decision.to_json()

    @r.get("/{grant_id}")
    def get(grant_id: int, who: Reader, request: Request) -> dict[str, Any]:
        svc = service(request)
        g = svc.get(grant_id)
        if not (who.platform or who.enterprise_id == g.enterprise_id
                or (who.enterprise_id is None and who.tenant_code is not None and who.tenant_code == g.recipient)):
            raise NotFound(f"no consent grant {grant_id}")
        return grant_json(g, svc.clock())

    @r.post("/{grant_id}/withdraw")
    def withdraw(grant_id: int, body: EnterpriseIn, who: Manager, request: Request) -> dict[str, Any]:
        """Withdraw: refused from the next request on. Withdrawing twice is refused (422)."""
        _own_enterprise(who, body.enterprise_id)
        svc = service(request)
        return grant_json(svc.withdraw(grant_id, body.enterprise_id), svc.clock())

    @r.post("/{grant_id}/reconfirm")
    def reconfirm(grant_id: int, body: EnterpriseIn, who: Manager, request: Request) -> dict[str, Any]:
        _own_enterprise(who, body.enterprise_id)
        svc = service(request)
        return grant_json(svc.reconfirm(grant_id, body.enterprise_id), svc.clock())

    return r
