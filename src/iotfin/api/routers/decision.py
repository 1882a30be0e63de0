"""HTTP adapter of credit decisioning: `/api/v1/credit-applications`, the review queue, strategies.

Money and rates cross the API as decimal strings ("500000.00", "0.0607"); a JSON number is refused.
The platform's risk engine assesses every application (`Workspace.risk_assessor`: features within
the lender's consent, scored by the champion enterprise model, or by the bootstrap scorecard before
one is promoted). An assessment in the body is always refused (422), so an applicant can never
assert its own grade; the operator names the lender it applies for (`lender`).

Access (docs/api.md#tenant-isolation): a lender submits applications for itself, only with the
enterprise's consent to `credit_report` for `credit_assessment` (checked and written to the access
log), and sees and reviews only its own applications; an enterprise reads its own; decision
strategies are the operator's (`strategies:manage`). Reviews are recorded under the caller; only the
operator's tools may name another officer in the body.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import consented, require
from iotfin.api.pagination import Page
from iotfin.api.responses import DecimalJSONResponse
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import Forbidden, NotFound, ValidationError
from iotfin.decision.applications import Application
from iotfin.decision.service import Applicant, DecisionService
from iotfin.identity.access import can_see_record, owned_by_tenant
from iotfin.identity.model import Principal

DECIMAL = r"^-?\d{1,16}(\.\d{1,8})?$"


JSONOut = DecimalJSONResponse  # Decimals as strings, datetimes in ISO 8601


class ApplicationIn(BaseModel):
    enterprise_id: int = Field(gt=0)
    product: str = Field(min_length=1, max_length=32, examples=["iot-working-capital"])
    amount: str = Field(pattern=DECIMAL, examples=["500000.00"])
    tenor_months: int = Field(gt=0, le=600)
    ref: str | None = Field(default=None, max_length=64, description="the applicant's own reference (unique)")
    core_enterprise_id: int | None = None
    subsidy_rate: str = Field(default="0", pattern=DECIMAL, description="third-party interest subsidy (贴息), annual")
    subsidy_provider: str | None = Field(default=None, max_length=200)
    strategy: str = Field(default="default", max_length=64)
    assessment: Any = Field(default=None, description="refused (422): the platform's risk engine assesses")
    lender: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
                               description="operator only: the lender whose consent the risk engine's features use")

    def application(self) -> Application:
        return Application.from_json(self.model_dump(exclude={"strategy", "assessment", "lender"}))


class ReviewIn(BaseModel):
    officer: str = Field(min_length=1, max_length=100)
    action: Literal["approve", "decline", "counter_offer"]
    reason: str = Field(min_length=1, description="mandatory: why")
    amount: str | None = Field(default=None, pattern=DECIMAL)
    tenor_months: int | None = Field(default=None, gt=0)
    rate: str | None = Field(default=None, pattern=DECIMAL)


class PublishIn(BaseModel):
    published_by: str = Field(min_length=1, max_length=100)
    note: str | None = None
    activate: bool = True
    content: dict[str, Any] = Field(description="the JDM graph (GoRules editor export)")


class DeployIn(BaseModel):
    deployed_by: str = Field(min_length=1, max_length=100)
    champion: int = Field(ge=1)
    challenger: int | None = Field(default=None, ge=1)
    challenger_bps: int = Field(default=0, ge=0, le=10_000)


class RollbackIn(BaseModel):
    rolled_back_by: str = Field(min_length=1, max_length=100)


def service(request: Request) -> DecisionService:
    state = request.app.state
    return getattr(state, "decision_service", None) or state.workspace.decision  # (tests set their own)


Submitter = Annotated[Principal, Depends(require("applications:write"))]
Reader = Annotated[Principal, Depends(require("applications:read"))]
Reviewer = Annotated[Principal, Depends(require("applications:review"))]
Strategist = Annotated[Principal, Depends(require("strategies:manage"))]
SCOPE, PURPOSE = "credit_report", "credit_assessment"


def _visible(request: Request, who: Principal, application_id: int) -> dict[str, Any]:
    """The application, if the caller may see it (404 otherwise); a lender's read is consent-checked."""
    app = service(request).application(application_id)
    if not can_see_record(request.app.state.workspace.engine, who, "application", application_id,
                          app["enterprise_id"]):
        raise NotFound(f"no credit application {application_id}")
    consented(request, who, app["enterprise_id"], SCOPE, PURPOSE, f"credit application {application_id}")
    return app


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["credit decisioning"])

    @r.post("/credit-applications", status_code=201, response_class=JSONOut,
            responses={404: {"description": "unknown enterprise"}, 422: {"description": "bad application"}})
    def apply(body: ApplicationIn, who: Submitter, request: Request) -> JSONOut:
        """Decide an application: approve, decline or refer, with limit, rate, tenor, APR disclosure,
        reasons (zh/en) and the rule trace. Stored and anchored in the ledger; an approval's `offer`
        (null otherwise) is created with it (see /offers). A lender needs the enterprise's consent to
        `credit_report` for `credit_assessment`."""
        if who.enterprise_id is not None or (not who.platform and who.tenant_id is None):
            raise Forbidden("only a lender or the operator submits credit applications")
        if body.lender is not None and not who.platform:
            raise ValidationError("lender: only the operator names a lender; a lender applies for itself")
        applicant = (Applicant(risk_lender=body.lender) if who.platform else
                     Applicant(consent_of=who.tenant_code, risk_lender=who.tenant_code, owner_tenant_id=who.tenant_id))
        if "assessment" in body.model_fields_set:
            raise ValidationError("assessment: the risk assessment is computed by the platform's risk engine; "
                                  "do not send one / 风险评估由平台风险引擎计算，请勿在申请中提交")
        return JSONOut(service(request).submit(body.application(), applicant,
                                               strategy=body.strategy), status_code=201)

    @r.get("/credit-applications", response_class=JSONOut)
    def applications(who: Reader, request: Request, page: Page, status: str | None = None,
                     enterprise_id: int | None = None) -> JSONOut:
        """Credit applications, newest first, filtered by status and enterprise: a lender's own, an
        enterprise's own, or all for the operator."""
        svc = service(request)
        if who.platform:
            items, cursor = svc.applications_page(page, status=status, enterprise_id=enterprise_id)
        elif who.enterprise_id is not None:
            if enterprise_id not in (None, who.enterprise_id):
                items, cursor = [], None
            else:
                items, cursor = svc.applications_page(page, status=status, enterprise_id=who.enterprise_id)
        elif who.tenant_id is not None:
            items, cursor = svc.applications_page(page, status=status, enterprise_id=enterprise_id,
                                                  among=owned_by_tenant("application", who.tenant_id))
        else:
            items, cursor = [], None
        return JSONOut({"items": items, "next_cursor": cursor})

    @r.get("/credit-applications/{application_id}", response_class=JSONOut)
    def application(application_id: int, who: Reader, request: Request) -> JSONOut:
        """An application with its evidence, decisions (with rule traces) and reviews, and the
        `four_eyes_amount` above which an approval needs a second, different officer."""
        return JSONOut(_visible(request, who, application_id)
                       | {"four_eyes_amount": service(request).policy.four_eyes_amount})

    @r.get("/credit-applications/{application_id}/decisions/{decision_id}/evidence", response_class=JSONOut,
           responses={404: {"description": "no such decision on an application the caller may see, or not anchored"}})
    def decision_evidence(application_id: int, decision_id: int, who: Reader, request: Request) -> JSONOut:
        """The offline-verifiable evidence bundle (docs/ledger.md) of one decision on an application the
        caller may see: the decision as it stands, its salt, its ledger leaf, the inclusion proof and a
        signed checkpoint. A lender proves its own decisions without the auditors' `ledger:evidence`."""
        app = _visible(request, who, application_id)
        if decision_id not in {d["id"] for d in app.get("decisions") or []}:
            raise NotFound(f"no decision {decision_id} on credit application {application_id}")
        return JSONOut(request.app.state.workspace.ledger.prove("credit_decision", str(decision_id)))

    @r.get("/review-queue", response_class=JSONOut)
    def queue(who: Reader, request: Request, page: Page) -> JSONOut:
        """Referred applications, and those awaiting a second officer (four-eyes), oldest first: the
        caller's own (a lender's, an enterprise's), or all for the operator."""
        svc = service(request)
        if who.platform:
            items, cursor = svc.queue_page(page)
        elif who.enterprise_id is not None:
            items, cursor = svc.queue_page(page, enterprise_id=who.enterprise_id)
        elif who.tenant_id is not None:
            items, cursor = svc.queue_page(page, among=owned_by_tenant("application", who.tenant_id))
        else:
            items, cursor = [], None
        return JSONOut({"items": items, "next_cursor": cursor})

    @r.post("/credit-applications/{application_id}/reviews", response_class=JSONOut)
    def review(application_id: int, body: ReviewIn, who: Reviewer, request: Request) -> JSONOut:
        """Approve, decline or counter-offer a referred application; the reason is mandatory. Above
        the four-eyes amount an approval needs a second, different officer."""
        if who.enterprise_id is not None:
            raise Forbidden("an enterprise does not review credit applications")
        _visible(request, who, application_id)
        officer = body.officer if who.platform else who.subject
        return JSONOut(service(request).review(application_id, officer=officer, action=body.action,
                                               reason=body.reason, amount=body.amount,
                                               tenor_months=body.tenor_months, rate=body.rate))

    @r.get("/decision-strategies/{name}", response_class=JSONOut)
    def versions(name: str, who: Strategist, request: Request) -> JSONOut:
        svc = service(request)
        return JSONOut({"name": name, "deployment": svc.deployment(name), "versions": svc.versions(name)})

    @r.get("/decision-strategies/{name}/versions/{version}")
    def content(name: str, version: int, who: Strategist, request: Request) -> dict[str, Any]:
        """The JDM graph of a version, ready to open in the GoRules editor."""
        return service(request).strategy_content(name, version)

    @r.post("/decision-strategies/{name}/versions", status_code=201, response_class=JSONOut)
    def publish(name: str, body: PublishIn, who: Strategist, request: Request) -> JSONOut:
        """Publish a new immutable version (validated first: a malformed graph is a 422 naming the
        node, rule row and column)."""
        return JSONOut(service(request).publish(body.content, by=body.published_by, name=name, note=body.note,
                                                activate=body.activate), status_code=201)

    @r.post("/decision-strategies/{name}/replay", response_class=JSONOut)
    def replay(name: str, who: Strategist, request: Request, content: dict[str, Any] = Body(...), limit: int | None = None) -> JSONOut:
        """What a draft (the body: a JDM graph) would have decided on past applications."""
        return JSONOut(service(request).replay(content, name=name, limit=limit))

    @r.post("/decision-strategies/{name}/deployments", response_class=JSONOut)
    def deploy(name: str, body: DeployIn, who: Strategist, request: Request) -> JSONOut:
        return JSONOut(service(request).deploy(name, body.champion, by=body.deployed_by, challenger=body.challenger,
                                               challenger_bps=body.challenger_bps))

    @r.post("/decision-strategies/{name}/rollback", response_class=JSONOut)
    def rollback(name: str, body: RollbackIn, who: Strategist, request: Request) -> JSONOut:
        return JSONOut(service(request).rollback(name, by=body.rolled_back_by))

    return r
