"""The platform's HTTP application.

Partner systems and console users authenticate with bearer tokens from `POST /oauth/token`
(docs/api.md); every router filters by the caller's tenant or enterprise. Enterprise-level data
stays behind the consent check (consent context) as it lands.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

import iotfin
from iotfin.api import auth, problems
from iotfin.api.fields import refuse_nul
from iotfin.api.metrics import BodyLimitMiddleware, MetricsMiddleware, metrics_text
from iotfin.api.ratelimit import TokenBuckets
from iotfin.api.responses import DecimalJSONResponse
from iotfin.api.routers import consent as consent_api
from iotfin.api.routers import decision as decision_api
from iotfin.api.routers import devices as devices_api
from iotfin.api.routers import financing as financing_api
from iotfin.api.routers import identity as identity_api
from iotfin.api.routers import industry as industry_api
from iotfin.api.routers import ledger as ledger_api
from iotfin.api.routers import lending as lending_api
from iotfin.api.routers import monitor as monitor_api
from iotfin.api.routers import offers as offers_api
from iotfin.api.routers import protection as protection_api
from iotfin.api.routers import receivables as receivables_api
from iotfin.api.routers import risk as risk_api
from iotfin.api.routers import webhooks as webhooks_api
from iotfin.api.routing import ApiRouter
from iotfin.app.monitor_runtime import MonitorRuntime
from iotfin.app.summary import platform_summary
from iotfin.app.workers import run_blocking_inline
from iotfin.app.workspace import Workspace
from iotfin.console import routes as console
from iotfin.core.errors import ServiceUnavailable
from iotfin.core.settings import Settings
from iotfin.protection.redact import install as redact_logs
from iotfin.transports import http as device_http
from iotfin.webhooks.worker import DeliveryWorker


def create_app(ws: Workspace, background: bool = True, device_transport: bool = True) -> FastAPI:
    """The API. With `background`, its lifespan runs the webhook delivery worker and the monitor (as
    `iotfin serve` does); without `device_transport`, the device endpoints (telemetry over HTTP) are
    left out — the open-API worker processes of `iotfin serve-api`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_logs()
        # Starlette runs sync endpoints on anyio's default thread limiter (40 threads). Measured on 2
        # cores (bench/api_read.py): 40 threads reading SQLite convoy on the GIL — 1.9 ms of CPU per
        # one-row read against 0.17 ms single-threaded; a few threads per core serve the same load.
        anyio.to_thread.current_default_thread_limiter().total_tokens = ws.settings.api_threads
        stop = asyncio.Event()
        task = asyncio.create_task(DeliveryWorker(ws.webhooks).run(stop)) if background else None
        monitor = MonitorRuntime(ws).attach() if background else None  # subscribed to ingest, with its timer
        monitor_task = asyncio.create_task(monitor.run(stop)) if monitor is not None else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            if monitor is not None and monitor_task is not None:
                await monitor_task
                monitor.detach()

    app = FastAPI(
        title="iotfin",
        version=iotfin.__version__,
        summary="IoT-backed lending to small and micro enterprises",
        lifespan=lifespan,
        docs_url=None,   # served by the console from vendored assets (offline by construction)
        redoc_url=None,
    )
    app.state.workspace = ws
    app.state.rate_limits = TokenBuckets(ws.settings.rate_limit_per_s, ws.settings.rate_limit_burst)
    app.state.login_limits = TokenBuckets(10.0, 30)  # token requests per client address
    problems.install(app)
    problems.document(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=ws.settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    devices = device_http.router()  # the device transport keeps its own rule: bad payloads are quarantined
    routers = [_platform_router(), auth.router(), identity_api.router(), financing_api.router(),
               devices_api.router(), *([devices] if device_transport else []), ledger_api.router(), lending_api.router(),
               consent_api.router(), decision_api.router(), monitor_api.router(), webhooks_api.router(),
               protection_api.router(), risk_api.router(), offers_api.router(),
               receivables_api.router(), industry_api.router()]
    for router in routers:
        # no NUL character in any request text (src/iotfin/api/fields.py)
        app.include_router(router, dependencies=[] if router is devices else [Depends(refuse_nul)])

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = metrics_text()
        return Response(body, media_type=content_type)

    console.install(app)  # the console at /, its assets at /static, the API docs at /docs and /redoc
    return app


def _platform_router() -> APIRouter:
    router = ApiRouter()

    @router.get("/healthz", tags=["platform"])
    def healthz(request: Request) -> dict[str, Any]:
        ws: Workspace = request.app.state.workspace
        try:
            with ws.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:  # a health check reports the outage instead of failing with it
            raise ServiceUnavailable(f"database unreachable ({type(exc).__name__})") from exc
        return {"status": "ok", "version": iotfin.__version__}

    @router.get("/api/v1/summary", tags=["platform"], response_class=DecimalJSONResponse, response_model=None,
                responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}})
    def summary(request: Request) -> DecimalJSONResponse:
        """Platform-wide counts: enterprises by sector, devices by type, documents, telemetry stored."""
        return DecimalJSONResponse(platform_summary(request.app.state.workspace))

    return router


def open_api_app() -> FastAPI:
    """The open API without the device endpoints and without background work, for the worker
    processes of `iotfin serve-api` (a uvicorn app factory: the workspace comes from the IOTFIN_*
    environment). Webhook deliveries, the monitor and device traffic stay with `iotfin serve`. A
    worker runs its blocking work on its event loop (`run_blocking_inline`): concurrency comes from
    the processes."""

    run_blocking_inline()
    return create_app(Workspace(Settings()), background=False, device_transport=False)
