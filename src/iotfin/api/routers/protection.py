"""HTTP adapter of customer protection: `/api/v1/complaints`, `/api/v1/hardship-requests`, and the
legal representative's personal data (encrypted at rest; plaintext only to the enterprise, the
operator and a lender holding the enterprise's consent to `business_registration`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import consented, require
from iotfin.api.fields import Text
from iotfin.api.idempotency import IdempotentRoute
from iotfin.api.pagination import Page
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import NotFound
from iotfin.identity.model import Principal
from iotfin.protection.model import COMPLAINT_CATEGORIES, HARDSHIP_REASONS, RELIEF_KINDS, RESOLUTIONS

Long = Text(4000)
Short = Text(200)
Reason = Text(1000)
Phone = Annotated[str, Field(min_length=5, max_length=32, pattern=r"^\+?[0-9 -]{5,32}$")]


class ComplaintIn(BaseModel):
    category: Literal[tuple(COMPLAINT_CATEGORIES)]  # type: ignore[valid-type]
    subject: Short
    description: Long
    tenant: Text(64) | None = Field(default=None, description="code of the lender concerned")
    enterprise_id: int | None = Field(default=None, ge=1, description="only when the platform files on an enterprise's behalf")
    contact_name: Text(100) | None = None
    contact_phone: Phone | None = None


class AssignIn(BaseModel):
    assignee: Short


class ReasonIn(BaseModel):
    reason: Reason


class ResolveIn(BaseModel):
    resolution: Literal[tuple(RESOLUTIONS)]  # type: ignore[valid-type]
    note: Long


class HardshipIn(BaseModel):
    tenant: Text(64) = Field(description="code of the lender")
    loan_ref: Text(100)
    reason_code: Literal[tuple(HARDSHIP_REASONS)]  # type: ignore[valid-type]
    relief: Literal[tuple(RELIEF_KINDS)]  # type: ignore[valid-type]
    description: Long
    contact_phone: Phone | None = None
    enterprise_id: int | None = Field(default=None, ge=1)


class DecisionIn(BaseModel):
    approve: bool
    reason: Reason


Reader = Annotated[Principal, Depends(require("complaints:read"))]
Handler = Annotated[Principal, Depends(require("complaints:handle"))]


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["customer protection"], route_class=IdempotentRoute)

    def svc(request: Request):  # noqa: ANN202
        return request.app.state.workspace.protection

    @r.post("/complaints", status_code=201)
    def submit_complaint(body: ComplaintIn, who: Annotated[Principal, Depends(require("complaints:submit"))],
                         request: Request) -> dict[str, Any]:
        """File a complaint; it must be acknowledged and resolved by the deadlines in the response.
        Send an `Idempotency-Key` header to make retries safe."""
        return svc(request).submit_complaint(who, **body.model_dump())

    @r.get("/complaints")
    def complaints(who: Reader, request: Request, page: Page,
                   status: Annotated[Literal["submitted", "acknowledged", "assigned", "escalated", "resolved"] | None, Query()] = None,
                   overdue: Annotated[bool, Query(description="only complaints past a deadline")] = False) -> dict[str, Any]:
        items, cursor = svc(request).complaints(who, page, status, overdue)
        return {"items": items, "next_cursor": cursor}

    @r.get("/complaints/{complaint_id}")
    def complaint(complaint_id: int, who: Reader, request: Request) -> dict[str, Any]:
        return svc(request).complaint(who, complaint_id)

    @r.post("/complaints/{complaint_id}/acknowledge")
    def acknowledge(complaint_id: int, who: Handler, request: Request) -> dict[str, Any]:
        return svc(request).acknowledge(who, complaint_id)

    @r.post("/complaints/{complaint_id}/assign")
    def assign(complaint_id: int, body: AssignIn, who: Handler, request: Request) -> dict[str, Any]:
        return svc(request).assign(who, complaint_id, body.assignee)

    @r.post("/complaints/{complaint_id}/escalate")
    def escalate(complaint_id: int, body: ReasonIn, who: Handler, request: Request) -> dict[str, Any]:
        return svc(request).escalate(who, complaint_id, body.reason)

    @r.post("/complaints/{complaint_id}/resolve")
    def resolve(complaint_id: int, body: ResolveIn, who: Handler, request: Request) -> dict[str, Any]:
        """Close a complaint with a resolution code (its zh/en text goes to the complainant) and a note."""
        return svc(request).resolve(who, complaint_id, body.resolution, body.note)

    @r.get("/enterprises/{enterprise_id}/legal-representative")
    def legal_representative(enterprise_id: int, who: Annotated[Principal, Depends(require("pii:read"))],
                             request: Request) -> dict[str, Any]:
        """Name, ID number and phone of the enterprise's legal representative (decrypted). A lender's
        read needs the enterprise's consent to `business_registration` and is in its access log."""
        if who.enterprise_id is not None and who.enterprise_id != enterprise_id:
            raise NotFound(f"no enterprise {enterprise_id}")
        person = svc(request).legal_representative(enterprise_id)
        consented(request, who, enterprise_id, "business_registration", "credit_assessment",
                  "legal representative")
        return person

    @r.post("/hardship-requests", status_code=201)
    def submit_hardship(body: HardshipIn, who: Annotated[Principal, Depends(require("hardship:submit"))],
                        request: Request) -> dict[str, Any]:
        """Ask the lender for relief (deferral, new schedule, fee waiver, lower rate). Idempotency-Key supported."""
        return svc(request).submit_hardship(who, **body.model_dump())

    @r.get("/hardship-requests")
    def hardship_requests(who: Annotated[Principal, Depends(require("hardship:review"))], request: Request, page: Page,
                          status: Annotated[Literal["submitted", "under_review", "approved", "declined"] | None, Query()] = None
                          ) -> dict[str, Any]:
        items, cursor = svc(request).hardship_requests(who, page, status)
        return {"items": items, "next_cursor": cursor}

    @r.get("/hardship-requests/{request_id}")
    def hardship(request_id: int, who: Annotated[Principal, Depends(require("hardship:review"))],
                 request: Request) -> dict[str, Any]:
        return svc(request).hardship(who, request_id)

    @r.post("/hardship-requests/{request_id}/review")
    def review(request_id: int, body: ReasonIn, who: Annotated[Principal, Depends(require("hardship:review"))],
               request: Request) -> dict[str, Any]:
        return svc(request).review_hardship(who, request_id, body.reason)

    @r.post("/hardship-requests/{request_id}/decision")
    def decide(request_id: int, body: DecisionIn, who: Annotated[Principal, Depends(require("hardship:decide"))],
               request: Request) -> dict[str, Any]:
        return svc(request).decide_hardship(who, request_id, body.approve, body.reason)

    return r
