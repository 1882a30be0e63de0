"""HTTP adapter of loan servicing: `/api/v1/lending/...`.

Money and rates cross the API as decimal strings; a JSON number is refused (a float cannot carry a
fen exactly).

Access (docs/api.md#tenant-isolation): a lender books loans for itself and sees and services only the
loans it booked (`record_owners`); an enterprise reads its own loans; the operator sees the whole
book and alone runs the daily close, the trial balance and the portfolio (`lending:books`). Another
tenant's loan is a 404, not a 403. The audit actor is the caller; only the operator's tools may name
another actor in the body.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from iotfin.api.auth import principal, require
from iotfin.api.pagination import Page
from iotfin.api.responses import DecimalJSONResponse
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import Forbidden, NotFound
from iotfin.identity.access import can_see_record, owned_by_tenant, set_owner
from iotfin.identity.model import Principal
from iotfin.lending import disclosure
from iotfin.lending import model as m
from iotfin.lending.service import LendingService, Offer
from iotfin.lending.tables import CreditLine, Loan

MoneyStr = Field(pattern=r"^\d{1,16}(\.\d{1,2})?$", examples=["125000.00"])
RateStr = Field(pattern=r"^0(\.\d{1,6})?$|^1(\.0{1,6})?$", examples=["0.0435"])


class TermsIn(BaseModel):
    principal: str = MoneyStr
    annual_rate: str = RateStr
    term: int = Field(ge=1, le=360)
    start: date
    product: str | None = Field(default=None, description="sets method, day count, fees and penalty")
    method: m.Method = m.Method.EQUAL_INSTALMENT
    day_count: m.DayCount = m.DayCount.D30_360
    grace_principal: int = Field(default=0, ge=0)
    grace_interest: int = Field(default=0, ge=0)
    subsidy_rate: str = Field(default="0", pattern=r"^0(\.\d{1,6})?$")


MANUAL_FIELDS = ("enterprise_id", "product", "principal", "annual_rate", "term", "start", "reason")


class BookIn(BaseModel):
    """Book an accepted offer (`offer_id`, optionally `start` and `contract_ref`), or — with the scope
    lending:manual — a loan outside an offer: every manual field and a reason."""

    offer_id: int | None = Field(default=None, ge=1, description="the accepted offer to book")
    start: date | None = Field(default=None, description="value date (an offer: default its value date)")
    contract_ref: str | None = Field(default=None, max_length=64)
    enterprise_id: int | None = Field(default=None, ge=1, description="manual booking only")
    product: str | None = Field(default=None, max_length=32, description="manual booking only")
    principal: str | None = Field(default=None, pattern=r"^\d{1,16}(\.\d{1,2})?$",
                                  description="manual booking only")
    annual_rate: str | None = Field(default=None, pattern=r"^0(\.\d{1,6})?$|^1(\.0{1,6})?$",
                                    description="manual booking only")
    term: int | None = Field(default=None, ge=1, le=360, description="manual booking only")
    subsidy_rate: str = Field(default="0", pattern=r"^0(\.\d{1,6})?$")
    credit_line_id: int | None = None
    reason: str | None = Field(default=None, max_length=500, description="manual booking only: why outside an offer")

    @model_validator(mode="after")
    def _offer_or_manual(self) -> BookIn:
        manual = [f for f in MANUAL_FIELDS if f != "start" and getattr(self, f) not in (None, "")]
        if self.offer_id is not None:
            if manual or self.credit_line_id is not None or self.subsidy_rate != "0":
                raise ValueError(f"an offer is booked as offered: do not send {', '.join(manual) or 'terms'} "
                                 "with offer_id")
            return self
        missing = [f for f in MANUAL_FIELDS if getattr(self, f) in (None, "") or
                   (f == "reason" and not str(self.reason).strip())]
        if missing:
            raise ValueError(f"give offer_id, or for a manual booking (scope lending:manual) {', '.join(missing)}")
        return self


class CreditLineIn(BaseModel):
    enterprise_id: int = Field(ge=1)
    limit: str = MoneyStr
    annual_rate: str = RateStr
    expires_on: date
    product: str = Field(default="iot-line", max_length=32)


class RepaymentIn(BaseModel):
    amount: str = MoneyStr
    date: date
    prepay: bool = False


class ActionIn(BaseModel):
    date: date
    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field(default="monitor", max_length=64)


class RecoveryIn(BaseModel):
    date: date
    amount: str = MoneyStr
    actor: str = Field(default="collections", max_length=64)


class MarginCallIn(ActionIn):
    amount: str = MoneyStr
    deadline: date


class RestructureIn(ActionIn):
    term: int = Field(ge=1, le=360)
    grace_principal: int = Field(default=0, ge=0)


class CloseIn(BaseModel):
    date: date


Caller = Annotated[Principal, Depends(principal)]
Reader = Annotated[Principal, Depends(require("lending:read"))]
Writer = Annotated[Principal, Depends(require("lending:write"))]
Servicer = Annotated[Principal, Depends(require("lending:service"))]
Books = Annotated[Principal, Depends(require("lending:books"))]


def _json(data: Any, status: int = 200) -> Any:
    return DecimalJSONResponse(data, status_code=status)


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1/lending", tags=["lending"])

    def svc(request: Request) -> LendingService:
        return request.app.state.workspace.lending

    def visible(request: Request, who: Principal, model: Any, kind: str, record_id: int) -> None:
        """404 unless the record exists and the caller may see it (its owner, its enterprise, the operator)."""
        engine = request.app.state.workspace.engine
        with engine.connect() as conn:
            enterprise_id = conn.execute(select(model.enterprise_id).where(model.id == record_id)).scalar()
        if enterprise_id is None or not can_see_record(engine, who, kind, record_id, enterprise_id):
            raise NotFound(f"no {kind.replace('_', ' ')} {record_id}")

    def visible_loan(request: Request, who: Principal, loan_id: int) -> None:
        visible(request, who, Loan, "loan", loan_id)

    def visible_line(request: Request, who: Principal, line_id: int) -> None:
        visible(request, who, CreditLine, "credit_line", line_id)

    def scope_of(who: Principal, kind: str, enterprise_id: int | None) -> dict[str, Any] | None:
        """The list filter of a caller (None: nothing to see)."""
        if who.platform:
            return {"enterprise_id": enterprise_id}
        if who.enterprise_id is not None:
            return None if enterprise_id not in (None, who.enterprise_id) else {"enterprise_id": who.enterprise_id}
        if who.tenant_id is not None:
            return {"enterprise_id": enterprise_id, "among": owned_by_tenant(kind, who.tenant_id)}
        return None

    def actor(who: Principal, named: str) -> str:
        return named if who.platform else who.subject

    @r.post("/schedules")
    def preview_schedule(body: TermsIn, who: Caller) -> Any:
        """A cent-exact schedule for these terms (nothing is stored)."""
        terms = _terms(body)
        return _json({"instalments": [{"seq": i.seq, "due": i.due, "principal": i.principal, "interest": i.interest,
                                       "fee": i.fee, "subsidy": i.subsidy} for i in m.schedule(terms)]})

    @r.post("/key-facts")
    def key_facts(body: TermsIn, who: Caller) -> Any:
        """The key-facts statement (zh-CN and en): APR by IRR, gross and net of subsidy, total cost, rights."""

        if body.product:
            facts = disclosure.product_key_facts(body.product, Decimal(body.principal), Decimal(body.annual_rate), body.term,
                                      body.start, Decimal(body.subsidy_rate))
        else:
            facts = disclosure.key_facts(_terms(body))
        return _json(facts.to_json())

    @r.post("/loans", status_code=201)
    def book(body: BookIn, who: Writer, request: Request) -> Any:
        """Book an accepted offer exactly as offered (its lender only; once), or — scope lending:manual —
        a loan outside an offer, with a reason, inside the product's ranges and the rate ceiling."""
        if who.enterprise_id is not None or (not who.platform and who.tenant_id is None):
            raise Forbidden("only a lender or the operator books loans")
        ws = request.app.state.workspace
        if body.offer_id is not None:
            booked = ws.offers.book(body.offer_id, lender_tenant_id=who.tenant_id, operator=who.platform,
                                    actor=who.subject, start=body.start, contract_ref=body.contract_ref)
            return _json(booked, 201)
        who.require("lending:manual")
        assert body.enterprise_id is not None and body.product and body.principal and body.annual_rate
        assert body.term is not None and body.start is not None and body.reason
        if body.credit_line_id is not None:
            visible_line(request, who, body.credit_line_id)
        offer = Offer(body.enterprise_id, body.product, Decimal(body.principal), Decimal(body.annual_rate), body.term,
                      Decimal(body.subsidy_rate), body.credit_line_id)
        svc(request).check_manual(offer)
        loan_id = svc(request).book(offer, body.start, actor=who.subject, contract_ref=body.contract_ref,
                                    signed={"manual": True, "reason": body.reason.strip()},
                                    lender_tenant_id=None if who.platform else who.tenant_id)
        if not who.platform:
            set_owner(ws.engine, "loan", loan_id, who.tenant_id, body.enterprise_id)
        facts = disclosure.product_key_facts(body.product, Decimal(body.principal), Decimal(body.annual_rate),
                                             body.term, body.start, Decimal(body.subsidy_rate))
        return _json({"loan_id": loan_id, "credit_line_id": body.credit_line_id, "manual": True,
                      "apr": facts.apr_net, "upfront_fee": facts.upfront_fee,
                      "net_proceeds": Decimal(body.principal) - facts.upfront_fee}, 201)

    @r.get("/loans")
    def loans(who: Reader, request: Request, page: Page, enterprise_id: int | None = None,
              status: str | None = None) -> Any:
        """Loans, newest first: a lender's own, an enterprise's own, or all for the operator."""
        kw = scope_of(who, "loan", enterprise_id)
        items, cursor = ([], None) if kw is None else svc(request).loans_page(page, status=status, **kw)
        return _json({"items": items, "next_cursor": cursor})

    @r.get("/credit-lines")
    def credit_lines(who: Reader, request: Request, page: Page, enterprise_id: int | None = None,
                     status: str | None = None) -> Any:
        """Credit lines, newest first, with what is drawn and available under each."""
        kw = scope_of(who, "credit_line", enterprise_id)
        items, cursor = ([], None) if kw is None else svc(request).lines_page(page, status=status, **kw)
        return _json({"items": items, "next_cursor": cursor})

    @r.get("/credit-lines/{line_id}")
    def credit_line(line_id: int, who: Reader, request: Request) -> Any:
        """A credit line: limit, rate, expiry, status, what is drawn and available."""
        visible_line(request, who, line_id)
        return _json(svc(request).credit_line(line_id))

    @r.post("/credit-lines", status_code=201)
    def open_line(body: CreditLineIn, who: Writer, request: Request) -> Any:
        """Open a credit line for an enterprise, owned by the caller's tenant (the operator's own)."""
        if who.enterprise_id is not None or (not who.platform and who.tenant_id is None):
            raise Forbidden("only a lender or the operator opens credit lines")
        ws = request.app.state.workspace
        line_id = svc(request).open_line(body.enterprise_id, Decimal(body.limit), Decimal(body.annual_rate),
                                         body.expires_on, body.product, actor=who.subject)
        if not who.platform:
            set_owner(ws.engine, "credit_line", line_id, who.tenant_id, body.enterprise_id)
        return _json({"credit_line_id": line_id, "enterprise_id": body.enterprise_id, "product": body.product,
                      "limit": Decimal(body.limit), "annual_rate": Decimal(body.annual_rate),
                      "expires_on": body.expires_on, "status": "active"}, 201)

    @r.get("/loans/{loan_id}/repayments")
    def repayments(loan_id: int, who: Reader, request: Request, page: Page) -> Any:
        """A loan's repayments, oldest first, with how each was applied."""
        visible_loan(request, who, loan_id)
        items, cursor = svc(request).repayments_page(loan_id, page)
        return _json({"items": items, "next_cursor": cursor})

    @r.get("/loans/{loan_id}")
    def show(loan_id: int, who: Reader, request: Request) -> Any:
        visible_loan(request, who, loan_id)
        return _json(svc(request).loan(loan_id))

    @r.post("/loans/{loan_id}/repayments")
    def repay(loan_id: int, body: RepaymentIn, who: Writer, request: Request) -> Any:
        visible_loan(request, who, loan_id)
        return _json(svc(request).repay(loan_id, Decimal(body.amount), body.date, body.prepay, actor=who.subject))

    @r.post("/loans/{loan_id}/acceleration")
    def accelerate(loan_id: int, body: ActionIn, who: Servicer, request: Request) -> Any:
        visible_loan(request, who, loan_id)
        return _json(svc(request).accelerate(loan_id, body.date, body.reason, actor=actor(who, body.actor)))

    @r.post("/loans/{loan_id}/write-off")
    def write_off(loan_id: int, body: ActionIn, who: Servicer, request: Request) -> Any:
        visible_loan(request, who, loan_id)
        return _json(svc(request).write_off(loan_id, body.date, body.reason, actor=actor(who, body.actor)))

    @r.post("/loans/{loan_id}/recoveries")
    def recover(loan_id: int, body: RecoveryIn, who: Servicer, request: Request) -> Any:
        visible_loan(request, who, loan_id)
        return _json(svc(request).recover(loan_id, Decimal(body.amount), body.date, actor=actor(who, body.actor)))

    @r.post("/loans/{loan_id}/margin-calls")
    def margin_call(loan_id: int, body: MarginCallIn, who: Servicer, request: Request) -> Any:
        visible_loan(request, who, loan_id)
        return _json(svc(request).margin_call(loan_id, Decimal(body.amount), body.deadline, body.reason, body.date,
                                              actor=actor(who, body.actor)))

    @r.post("/loans/{loan_id}/restructurings")
    def restructure(loan_id: int, body: RestructureIn, who: Servicer, request: Request) -> Any:
        visible_loan(request, who, loan_id)
        return _json(svc(request).restructure(loan_id, body.date, body.term, body.grace_principal, body.reason,
                                              actor=actor(who, body.actor)))

    @r.post("/credit-lines/{line_id}/freeze")
    def freeze(line_id: int, body: ActionIn, who: Servicer, request: Request) -> Any:
        visible_line(request, who, line_id)
        return _json(svc(request).set_line_status(line_id, "frozen", body.reason, body.date, actor=actor(who, body.actor)))

    @r.post("/credit-lines/{line_id}/unfreeze")
    def unfreeze(line_id: int, body: ActionIn, who: Servicer, request: Request) -> Any:
        visible_line(request, who, line_id)
        return _json(svc(request).set_line_status(line_id, "active", body.reason, body.date, actor=actor(who, body.actor)))

    @r.post("/close")
    def close(body: CloseIn, who: Books, request: Request) -> Any:
        """Close of business through `date` (idempotent); 422 for a date after today (Asia/Shanghai)
        unless the platform runs in simulation mode; 409 while another close runs."""
        run = request.app.state.workspace.scheduled_close.run(body.date, "manual")
        return _json({"days": run["days"], "run_id": run["run_id"], "through": run["through"]})

    @r.get("/close")
    def close_status(who: Caller, request: Request) -> Any:
        """The close's status: closed through, the last run, the next scheduled run, simulation mode."""
        if not (who.has("lending:books") or who.has("lending:read")):
            who.require("lending:read")  # the 403 names the scope
        return _json(request.app.state.workspace.scheduled_close.status())

    @r.get("/trial-balance")
    def trial_balance(who: Books, request: Request) -> Any:
        s = svc(request)
        return _json(s.trial_balance() | {"reconciliation": s.reconcile()})

    @r.get("/portfolio")
    def portfolio(who: Caller, request: Request, vintages: bool = False) -> Any:
        """The book by five-tier class (五级分类), DPD bucket, NPL ratio and provisions, and with
        `vintages=true` the vintage curves: the whole book for the operator (`lending:books`), a lender's
        own loans for its risk manager (`portfolio:read`)."""
        if who.platform and (who.has("lending:books") or who.has("portfolio:read")):
            return _json(svc(request).portfolio(vintages=vintages))
        who.require("portfolio:read")
        if who.tenant_id is None or who.enterprise_id is not None:
            raise Forbidden("the portfolio is a lender's own book")
        return _json(svc(request).portfolio(among=owned_by_tenant("loan", who.tenant_id), vintages=vintages))

    return r


def _terms(body: TermsIn) -> m.Terms:
    if body.product:
        prod = m.product(body.product)
        method, day_count, fee = prod.method, prod.day_count, prod.periodic_fee
    else:
        method, day_count, fee = body.method, body.day_count, Decimal("0.00")
    return m.Terms(Decimal(body.principal), Decimal(body.annual_rate), body.term, body.start, method, day_count,
                   body.grace_principal, body.grace_interest, fee, Decimal(body.subsidy_rate))

