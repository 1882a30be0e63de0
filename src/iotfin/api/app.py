"""The platform's HTTP application.

Until partner identity and consent land (see docs/api.md), the API exposes only platform-wide
aggregates and health: no enterprise-level data is readable without a consent check.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

import iotfin
from iotfin.api import problems
from iotfin.consent import api as consent_api
from iotfin.core.errors import ServiceUnavailable
from iotfin.core.jsonout import dumps
from iotfin.devices import api as devices_api
from iotfin.decision import api as decision_api
from iotfin.ingest import http as device_http
from iotfin.ledger import api as ledger_api
from iotfin.ledger.financing import api as financing_api
from iotfin.lending import api as lending_api
from iotfin.monitor import api as monitor_api
from iotfin.platform_summary import platform_summary
from iotfin.workspace import Workspace


def create_app(ws: Workspace) -> FastAPI:
    app = FastAPI(
        title="iotfin",
        version=iotfin.__version__,
        summary="IoT-backed lending to small and micro enterprises",
    )
    app.state.workspace = ws
    problems.install(app)
    app.include_router(_platform_router())
    app.include_router(financing_api.router())
    app.include_router(devices_api.router())
    app.include_router(device_http.router())
    app.include_router(ledger_api.router())
    app.include_router(lending_api.router())
    app.include_router(consent_api.router())
    app.include_router(decision_api.router())
    app.include_router(monitor_api.router())

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app


def _platform_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["platform"])
    def healthz(request: Request) -> dict[str, Any]:
        ws: Workspace = request.app.state.workspace
        try:
            with ws.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:  # a health check reports the outage instead of failing with it
            raise ServiceUnavailable(f"database unreachable ({type(exc).__name__})") from exc
        return {"status": "ok", "version": iotfin.__version__}

    @router.get("/api/v1/summary", tags=["platform"], response_class=DecimalJSONResponse)
    def summary(request: Request) -> DecimalJSONResponse:
        """Platform-wide counts: enterprises by sector, devices by type, documents, telemetry stored."""
        return DecimalJSONResponse(platform_summary(request.app.state.workspace))

    return router


class DecimalJSONResponse(Response):
    """JSON with money as decimal strings. FastAPI's default encoder would turn Decimal into float."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode()
