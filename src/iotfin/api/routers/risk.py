"""HTTP adapter of the risk engine: `GET /api/v1/enterprises/{id}/credit-profile` — an enterprise's
latest three-dimension rating (sub-scores, combined PD and grade, reasons in zh-CN and en, model,
as-of date), under tenant isolation and, for lenders, a consent re-check logged in the access log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from iotfin.api.auth import require
from iotfin.api.routing import ApiRouter
from iotfin.identity.model import Principal

Reader = Annotated[Principal, Depends(require("risk:read"))]


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["credit risk"])

    @r.get("/enterprises/{enterprise_id}/credit-profile",
           responses={403: {"description": "the consent the rating rests on no longer holds"},
                      404: {"description": "no rating the caller may see"}})
    def profile(enterprise_id: Annotated[int, Path(gt=0)], who: Reader, request: Request,
                lender: Annotated[str | None, Query(max_length=64, description="only ratings made for this lender code")] = None,
                ) -> dict[str, Any]:
        """The latest credit rating of an enterprise the caller may see: a lender only the ratings it
        asked for (each read re-checks the enterprise's consent and is logged), an enterprise its own,
        the operator all."""
        return request.app.state.workspace.ratings.credit_profile(who, enterprise_id, lender)

    return r
