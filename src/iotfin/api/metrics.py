"""Prometheus metrics: request counts and latency per route template, and a body-size guard.

Labels use the route *template* (`/api/v1/complaints/{complaint_id}`), never the raw path, so the
series stay few and device tokens in ThingsBoard paths never reach the metrics. Both middlewares
are plain ASGI (Starlette's BaseHTTPMiddleware costs far more per request).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iotfin.core.jsonout import dumps
from iotfin.core.metrics import REGISTRY

REQUESTS = Counter("iotfin_http_requests_total", "HTTP requests by route, method and status",
                   ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("iotfin_http_request_duration_seconds", "HTTP request latency by route",
                    ["method", "route"], registry=REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class MetricsMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], template, str(status[0])).inc()
            LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)


def metrics_text() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413 problem+json, by Content-Length up front and
    by counting when the body is streamed (chunked) — before a handler parses any of it."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body: dict[str, Any] = {"type": "https://iotfin.dev/problems/payload-too-large", "title": "PayloadTooLarge",
                                "status": 413, "detail": f"request body exceeds {self.max_bytes} bytes",
                                "instance": scope.get("path", "")}
        raw = dumps(body).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})


class _BodyTooLarge(BaseException):  # noqa: N818
    """Not an Exception on purpose: FastAPI turns any Exception raised while reading a body into a
    400, and the app's handlers would answer 500; this one must reach BodyLimitMiddleware."""
