"""HTTP adapter of the digital debt vouchers (数字债权凭证): `/api/v1/vouchers`, `/api/v1/voucher-parts`,
`/api/v1/voucher-offers`.

Money crosses the API as decimal strings ("125000.00"). Access: an enterprise's principal (scope
`vouchers:write`) issues vouchers as the core enterprise, and splits, transfers and offers the parts
it holds; a lender's principal (`vouchers:finance`) decides the offers made to its tenant; reads
(`vouchers:read`) show a voucher to its issuer, its supplier, and whoever holds or held one of its
parts; the operator sees all. Every refusal is problem+json with a reason (Chinese and English);
a lost race (409) names the winner.

Business dates default to today (Asia/Shanghai); a workspace in simulation mode accepts `on`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import require
from iotfin.api.pagination import Page
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import Forbidden, NotFound, ValidationError
from iotfin.core.time import business_date, utc_now
from iotfin.identity.model import Principal
from iotfin.receivables.model import Holder
from iotfin.receivables.service import ReceivablesService

Amount = Field(pattern=r"^\d{1,14}(\.\d{1,8})?$", examples=["125000.00"])


class IssueIn(BaseModel):
    supplier_id: int = Field(gt=0)
    amount: str = Amount
    matures_on: date
    document_ids: list[int] = Field(min_length=1, max_length=50, description="purchase order, delivery note, invoice")
    issuer_id: int | None = Field(default=None, gt=0, description="the operator only: the core enterprise")
    on: date | None = Field(default=None, description="issue date (simulation mode only; default today)")


class SplitIn(BaseModel):
    amounts: list[str] = Field(min_length=1, max_length=100)
    on: date | None = None


class TransferIn(BaseModel):
    to_enterprise_id: int = Field(gt=0)
    on: date | None = None


class DayIn(BaseModel):
    on: date | None = Field(default=None, description="business date (simulation mode only; default today)")


class OfferIn(BaseModel):
    lender: str = Field(min_length=1, max_length=64, description="code of the lender tenant")
    on: date | None = None


class DecisionIn(BaseModel):
    accept: bool
    on: date | None = None


class PaymentIn(BaseModel):
    amount: str = Amount
    on: date | None = None


Reader = Annotated[Principal, Depends(require("vouchers:read"))]
Writer = Annotated[Principal, Depends(require("vouchers:write"))]
Financer = Annotated[Principal, Depends(require("vouchers:finance"))]


def holder_of(who: Principal) -> Holder:
    if who.enterprise_id is not None:
        return Holder("enterprise", who.enterprise_id)
    if who.tenant_id is not None and not who.platform:
        return Holder("lender", who.tenant_id)
    raise Forbidden("only an enterprise or a lender holds voucher parts")


def router() -> APIRouter:
    r = ApiRouter(tags=["digital debt vouchers"])

    def svc(request: Request) -> ReceivablesService:
        return request.app.state.workspace.receivables

    def today(request: Request, on: date | None) -> date:
        if on is not None:
            if not request.app.state.workspace.settings.simulation:
                raise ValidationError("`on` is accepted in simulation mode only", field="on")
            return on
        return business_date(utc_now())

    def enterprise(who: Principal) -> int:
        if who.enterprise_id is None:
            raise Forbidden("this action is the enterprise's own (an enterprise principal)")
        return who.enterprise_id

    def visible(request: Request, who: Principal, voucher_id: int) -> dict[str, Any]:
        v = svc(request).voucher(voucher_id)
        if who.platform:
            return v
        me = None if who.platform else (f"enterprise:{who.enterprise_id}" if who.enterprise_id is not None
                                         else f"lender:{who.tenant_id}")
        if who.enterprise_id in (v["issuer_id"], v["supplier_id"]):
            return v
        chain = svc(request).chain_of_title(voucher_id)
        if any(me in (e["actor"], e["detail"].get("to"), e["detail"].get("from")) for e in chain):
            return v
        if who.tenant_id is not None and any(e["kind"] == "offer" and e["detail"].get("lender_tenant_id") == who.tenant_id
                                             for e in chain):
            return v  # a lender sees a voucher whose part was offered to it, to decide
        raise NotFound(f"no voucher {voucher_id}")

    @r.post("/api/v1/vouchers", status_code=201)
    def issue(body: IssueIn, request: Request, who: Writer) -> dict[str, Any]:
        """The core enterprise issues a voucher to its supplier against matched trade documents."""
        if who.platform:
            if body.issuer_id is None:
                raise ValidationError("the operator names the issuing core enterprise", field="issuer_id")
            issuer = body.issuer_id
        else:
            issuer = enterprise(who)
            if body.issuer_id not in (None, issuer):
                raise Forbidden("an enterprise issues vouchers in its own name only")
        on = today(request, body.on)
        return svc(request).issue(issuer, body.supplier_id, body.amount, on, body.matures_on, body.document_ids,
                                  actor=who.subject[:60])

    @r.get("/api/v1/vouchers")
    def issued(request: Request, who: Reader, page: Page,
               issuer_id: Annotated[int | None, Query(gt=0)] = None) -> dict[str, Any]:
        """Vouchers the caller's enterprise issued (the operator: any issuer's)."""
        eid = issuer_id if who.platform and issuer_id else enterprise(who)
        items, cursor = svc(request).issued(eid, page)
        return {"items": items, "next_cursor": cursor}

    @r.get("/api/v1/vouchers/at-risk")
    def at_risk(request: Request, who: Reader, horizon_days: Annotated[int, Query(ge=0, le=366)] = 30,
                on: date | None = None) -> dict[str, Any]:
        """Maturity at risk: vouchers past due, or maturing within the horizon whose core enterprise paid
        late before or rates poorly — those the caller issued, holds or financed (the operator: all)."""
        items = []
        for item in svc(request).at_risk(today(request, on), horizon_days):
            try:
                visible(request, who, item["voucher_id"])
            except NotFound:
                continue
            items.append(item)
        return {"items": items}

    @r.get("/api/v1/vouchers/{voucher_id}")
    def voucher(voucher_id: int, request: Request, who: Reader) -> dict[str, Any]:
        return visible(request, who, voucher_id)

    @r.get("/api/v1/vouchers/{voucher_id}/chain")
    def chain(voucher_id: int, request: Request, who: Reader) -> dict[str, Any]:
        """The chain of title: issue, splits, transfers, offers, financing, payments — in order."""
        visible(request, who, voucher_id)
        return {"voucher_id": voucher_id, "events": svc(request).chain_of_title(voucher_id)}

    @r.get("/api/v1/vouchers/{voucher_id}/evidence")
    def evidence(voucher_id: int, request: Request, who: Reader) -> dict[str, Any]:
        """The chain of title as an evidence bundle: every event's ledger inclusion proof under one
        signed checkpoint; `iotfin vouchers verify` checks it offline."""
        visible(request, who, voucher_id)
        return request.app.state.workspace.voucher_evidence(voucher_id)

    @r.post("/api/v1/vouchers/{voucher_id}/payments")
    def pay(voucher_id: int, body: PaymentIn, request: Request, who: Writer) -> dict[str, Any]:
        """The core enterprise pays; every holder and financier gets its pro-rata share to the fen."""
        return svc(request).pay(enterprise(who), voucher_id, body.amount, today(request, body.on))

    @r.post("/api/v1/vouchers/{voucher_id}/cancel")
    def cancel(voucher_id: int, request: Request, who: Writer) -> dict[str, Any]:
        """Only the issuer, before any part left the first holder."""
        return svc(request).cancel(enterprise(who), voucher_id)

    @r.get("/api/v1/voucher-parts")
    def holdings(request: Request, who: Reader, page: Page, status: str | None = None,
                 holder_kind: str | None = None, holder_id: Annotated[int | None, Query(gt=0)] = None,
                 incoming: bool = False) -> dict[str, Any]:
        """The parts the caller holds (an enterprise's, or a lender's financed parts), newest first; the
        operator names the holder. `incoming=true`: the transfers sent to the caller awaiting its acceptance."""
        if who.platform:
            if holder_kind not in ("enterprise", "lender") or holder_id is None:
                raise ValidationError("the operator names holder_kind (enterprise|lender) and holder_id",
                                      field="holder_kind")
            holder = Holder(holder_kind, holder_id)
        else:
            holder = holder_of(who)
        items, cursor = svc(request).holdings(holder, page, status, incoming)
        return {"items": items, "next_cursor": cursor}

    @r.get("/api/v1/voucher-parts/{part_id}")
    def part(part_id: int, request: Request, who: Reader) -> dict[str, Any]:
        p = svc(request).part(part_id)
        visible(request, who, p["voucher_id"])
        return p

    @r.post("/api/v1/voucher-parts/{part_id}/split", status_code=201)
    def split(part_id: int, body: SplitIn, request: Request, who: Writer) -> dict[str, Any]:
        parts = svc(request).split(holder_of(who), part_id, body.amounts, today(request, body.on))
        return {"parts": parts}

    @r.post("/api/v1/voucher-parts/{part_id}/transfer")
    def transfer(part_id: int, body: TransferIn, request: Request, who: Writer) -> dict[str, Any]:
        """Send a held part to an enterprise in the holder's supply chain; title passes when the receiver
        accepts. Until then the part is frozen (`pending_to_id` names the receiver)."""
        return svc(request).transfer(holder_of(who), part_id, body.to_enterprise_id, today(request, body.on))

    @r.post("/api/v1/voucher-parts/{part_id}/accept")
    def accept(part_id: int, request: Request, who: Writer, body: DayIn | None = None) -> dict[str, Any]:
        """The receiver accepts a transfer sent to it, before maturity: the part becomes its own."""
        return svc(request).accept(holder_of(who), part_id, today(request, body.on if body else None))

    @r.post("/api/v1/voucher-parts/{part_id}/reject")
    def reject(part_id: int, request: Request, who: Writer) -> dict[str, Any]:
        """The receiver declines a transfer sent to it, or the holder recalls it."""
        return svc(request).reject(holder_of(who), part_id)

    @r.post("/api/v1/voucher-parts/{part_id}/offers", status_code=201)
    def offer(part_id: int, body: OfferIn, request: Request, who: Writer) -> dict[str, Any]:
        """Offer a held part to a lender for financing (one lender at a time)."""
        lender = request.app.state.workspace.financing.tenant_id(body.lender)
        return svc(request).offer(holder_of(who), part_id, lender, today(request, body.on))

    @r.post("/api/v1/voucher-offers/{offer_id}/withdraw")
    def withdraw(offer_id: int, request: Request, who: Writer) -> dict[str, Any]:
        return svc(request).withdraw(holder_of(who), offer_id)

    @r.get("/api/v1/voucher-offers")
    def offers(request: Request, who: Reader, page: Page, status: str | None = None) -> dict[str, Any]:
        """Offers made to the caller's tenant (the operator: all)."""
        if who.enterprise_id is not None:
            raise Forbidden("offers are listed for lenders; an enterprise sees its parts' status")
        items, cursor = svc(request).offers(None if who.platform else who.tenant_id, page, status)
        return {"items": items, "next_cursor": cursor}

    @r.post("/api/v1/voucher-offers/{offer_id}/decision")
    def decide(offer_id: int, body: DecisionIn, request: Request, who: Financer) -> dict[str, Any]:
        """The lender's decision; accepting books the discount loan and the lien, and takes the part."""
        if who.tenant_id is None or who.platform:
            raise Forbidden("a lender decides the offers made to it")
        return svc(request).decide(who.tenant_id, offer_id, body.accept, today(request, body.on))

    return r
