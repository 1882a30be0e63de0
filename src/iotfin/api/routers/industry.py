"""HTTP adapter of the industry indices (产业分析, docs/industry.md).

Access: aggregates (`/indices`, `/cells`, `/resumption`) to anyone holding `risk:read` (the operator,
lenders' officers, enterprises): a cell is served only when at least `industry_min_firms` firms make
it, so no aggregate is one firm's data. A firm's activity relative to its peers: the enterprise
itself, the operator, or a lender with the enterprise's consent to `telemetry:energy` for the stated
purpose (checked and written to the access log by the consent service); refused with 403 otherwise.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from iotfin.api.auth import require
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import Forbidden
from iotfin.identity.model import Principal

Reader = Annotated[Principal, Depends(require("risk:read"))]
Dim = Annotated[str, Query(min_length=1, max_length=64)]


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1/industry", tags=["industry"])

    def service(request: Request) -> Any:
        return request.app.state.workspace.industry

    @r.get("/indices")
    def indices(who: Reader, request: Request, measure: str = "energy", sector: Dim = "*", region_code: Dim = "*",
                chain_id: Dim = "*", since: date | None = None, until: date | None = None) -> dict[str, Any]:
        """One cell's daily index rows (base period = 100, calendar-adjusted, year-on-year, 7/30-day trends)."""
        return service(request).indices(measure, sector, region_code, chain_id, since, until)

    @r.get("/period")
    def period(who: Reader, request: Request, start: date, end: date, measure: str = "energy", sector: Dim = "*",
               region_code: Dim = "*", chain_id: Dim = "*") -> dict[str, Any]:
        """A period's index on daily averages (leap-day adjusted) and its year-on-year change."""
        return service(request).period(measure, start, end, sector, region_code, chain_id)

    @r.get("/cells")
    def cells(who: Reader, request: Request, measure: str = "energy", on: date | None = None) -> dict[str, Any]:
        """Every servable cell of one day (the latest by default)."""
        return service(request).cells(measure, on)

    @r.get("/resumption")
    def resumption(who: Reader, request: Request, shock: date, sector: Dim = "*", region_code: Dim = "*",
                   until: date | None = None) -> dict[str, Any]:
        """Share of a cell's firms back at work on each day after a shock (30 %-of-baseline rule)."""
        return service(request).resumption(shock, sector, region_code, until)

    @r.get("/relative/{enterprise_id}")
    def relative(who: Reader, request: Request, enterprise_id: int, on: date,
                 purpose: Annotated[str, Query(max_length=64)] = "credit_assessment",
                 window: Annotated[int, Query(ge=1, le=90)] = 7) -> dict[str, Any]:
        """A firm's energy activity against its sector-and-region peers' (1.0 = in step)."""
        if who.platform or who.enterprise_id == enterprise_id:
            recipient = None
        elif who.enterprise_id is None and who.tenant_code is not None:
            recipient = who.tenant_code
        else:
            raise Forbidden("only the enterprise, a lender with its consent, or the operator may read this")
        return service(request).relative(enterprise_id, on, recipient=recipient, purpose=purpose, window=window)

    return r
