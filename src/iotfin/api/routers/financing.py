"""HTTP adapter of the financing registry: `/api/v1/financing/...`.

Money crosses the API as decimal strings ("125000.00"); a JSON number is refused, since a float
cannot carry a fen exactly.

Access: reads need `financing:read`, and show every lender's liens — the registry is a public
register (like the PBoC's movable-property financing registry), which is what lets a lender see
that an asset is already financed. Placing and releasing need `financing:write` and act only for
the caller's own tenant (the operator may act for any). Placing a lien takes an Idempotency-Key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import require
from iotfin.api.idempotency import IdempotentRoute
from iotfin.api.pagination import Page
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import Forbidden, NotFound, ValidationError
from iotfin.financing.model import (
    AssetKey,
    equipment_key,
    inventory_lot_key,
    receivable_key,
    vehicle_key,
    warehouse_receipt_key,
)
from iotfin.financing.service import FinancingRegistry
from iotfin.identity.model import Principal

DecimalString = Field(pattern=r"^-?\d{1,16}(\.\d{1,8})?$", examples=["125000.00"])


class AssetIn(BaseModel):
    """The identifying fields of one asset; which ones are needed depends on `kind`."""

    kind: Literal["receivable", "warehouse_receipt", "inventory_lot", "vehicle", "equipment"]
    invoice_code: str | None = None
    invoice_number: str | None = None
    seller_uscc: str | None = None
    buyer_uscc: str | None = None
    amount: str | None = Field(default=None, pattern=r"^-?\d{1,16}(\.\d{1,8})?$")
    issuer_uscc: str | None = None
    receipt_number: str | None = None
    holder_uscc: str | None = None
    site_id: int | None = None
    lot_code: str | None = None
    vin: str | None = None
    manufacturer: str | None = None
    serial: str | None = None

    def key(self) -> AssetKey:
        def need(*names: str) -> list[Any]:
            missing = [n for n in names if getattr(self, n) is None]
            if missing:
                raise ValidationError(f"asset of kind {self.kind} needs {', '.join(missing)}")
            return [getattr(self, n) for n in names]

        if self.kind == "receivable":
            return receivable_key(*need("invoice_code", "invoice_number", "seller_uscc", "buyer_uscc", "amount"))
        if self.kind == "warehouse_receipt":
            return warehouse_receipt_key(*need("issuer_uscc", "receipt_number"))
        if self.kind == "inventory_lot":
            return inventory_lot_key(*need("holder_uscc", "site_id", "lot_code"))
        if self.kind == "vehicle":
            return vehicle_key(*need("vin"))
        return equipment_key(*need("manufacturer", "serial"))


class LienIn(BaseModel):
    asset: AssetIn
    tenant: str = Field(description="code of the lender placing the lien", examples=["bank-a"])
    financing_ref: str = Field(min_length=1, max_length=100)
    amount: str = DecimalString
    registration_no: str | None = Field(default=None, max_length=64)
    registered_at: datetime | None = None
    notice_at: datetime | None = None


class ReleaseIn(BaseModel):
    reason: str = Field(min_length=1)


Reader = Annotated[Principal, Depends(require("financing:read"))]
Writer = Annotated[Principal, Depends(require("financing:write"))]


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1/financing", tags=["financing registry"], route_class=IdempotentRoute)

    def registry(request: Request) -> FinancingRegistry:
        return request.app.state.workspace.financing

    @r.post("/fingerprints")
    def fingerprint(asset: AssetIn, who: Reader) -> dict[str, Any]:
        """The canonical identity and fingerprint of an asset, without registering anything."""
        key = asset.key()
        return {"kind": key.kind, "fingerprint": key.fingerprint, "identity": key.as_dict()}

    @r.post("/liens", status_code=201, responses={409: {"description": "already financed; the body names the lien"}})
    def place_lien(body: LienIn, request: Request, who: Writer) -> dict[str, Any]:
        """Finance an asset. A second financing of the same asset is refused (409) with the existing lien.
        A lender places liens in its own name only (`tenant` = its code)."""
        if not who.platform and body.tenant != who.tenant_code:
            raise Forbidden("a lender places liens in its own name only")
        reg = registry(request)
        lien = reg.finance(body.asset.key(), reg.tenant_id(body.tenant), body.financing_ref, body.amount,
                           registration_no=body.registration_no, registered_at=body.registered_at,
                           notice_at=body.notice_at)
        return lien.to_json()

    @r.post("/liens/{lien_id}/release")
    def release_lien(lien_id: int, body: ReleaseIn, request: Request, who: Writer) -> dict[str, Any]:
        reg = registry(request)
        if not who.platform and reg.lien(lien_id).tenant_code != who.tenant_code:
            raise NotFound(f"no lien {lien_id} of {who.tenant_code}")
        return reg.release(lien_id, body.reason).to_json()

    @r.get("/liens")
    def liens(request: Request, who: Reader, page: Page, enterprise_id: Annotated[int, Query(gt=0)],
              status: Literal["active", "released"] | None = None) -> dict[str, Any]:
        """The liens on an enterprise's assets, every holder's (a search of the register by debtor),
        newest first: for an enterprise the caller may see (a lender's customer; all for the operator),
        another's is a 404 as on `/enterprises/{id}`."""
        request.app.state.workspace.onboarding.enterprise(who, enterprise_id)  # 404 unless visible
        items, cursor = registry(request).liens_page(enterprise_id, page, status)
        return {"items": items, "next_cursor": cursor}

    @r.get("/assets/{fingerprint}")
    def asset_status(fingerprint: str, request: Request, who: Reader) -> dict[str, Any]:
        return registry(request).status(fingerprint)

    @r.get("/assets/{fingerprint}/claims")
    def claims(fingerprint: str, request: Request, who: Reader) -> dict[str, Any]:
        """Competing claims in Civil Code art. 768 order; claims in one group share pro rata."""
        groups = registry(request).competing_claims(fingerprint)
        return {"groups": [[{"claimant": c.claimant, "amount": str(c.amount), "ref": c.ref,
                             "registration_no": c.registration_no,
                             "registered_at": c.registered_at.isoformat() if c.registered_at else None,
                             "notice_at": c.notice_at.isoformat() if c.notice_at else None} for c in g]
                           for g in groups]}

    return r
