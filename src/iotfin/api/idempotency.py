"""Idempotency keys for POSTs that create money or obligations (liens, complaints, hardship requests;
lending's drawdowns and repayments use the same route class).

A client sends `Idempotency-Key: <unique string>`; the first request with that key runs and its 2xx
response is stored against (caller, key) together with a fingerprint of the method, path and body.
A retry with the same key and the same request gets the stored response back (header
`Idempotent-Replayed: true`) without running again; the same key with a different request is a 409;
a retry while the first is still running is a 409 too. A failed request (4xx/5xx) stores nothing,
so it can be retried with the same key. Keys expire after 24 hours.

Usage: `APIRouter(..., route_class=IdempotentRoute)` — GETs and POSTs without the header pass through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import Engine, Integer, LargeBinary, String, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from starlette.concurrency import run_in_threadpool

from iotfin.core.errors import Conflict, IotfinError, ValidationError
from iotfin.db.base import Base
from iotfin.db.base import utc_now_column as _now
from iotfin.db.engine import write_transaction
from iotfin.db.types import UTCDateTime

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(160), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    media_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class IdempotencyStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def begin(self, owner: str, key: str, fingerprint: str) -> tuple[int, str, bytes] | None:
        """Claim the key (None: go ahead and run) or return the stored (status, media type, body)."""
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)).first()
            if row is not None and row.created_at < now - TTL:
                conn.execute(delete(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key))
                row = None
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(IdempotencyKey).values(owner=owner, key=key, fingerprint=fingerprint, created_at=now))
                    return None
                except IntegrityError:  # a concurrent first request got there (PostgreSQL)
                    row = conn.execute(select(IdempotencyKey).where(IdempotencyKey.owner == owner,
                                                                    IdempotencyKey.key == key)).one()
        if row.fingerprint != fingerprint:
            raise Conflict(f"{HEADER} {key!r} was used for a different request")
        if row.status_code is None:
            raise Conflict(f"a request with {HEADER} {key!r} is still being processed")
        return row.status_code, row.media_type or "application/json", row.body or b""

    def complete(self, owner: str, key: str, status: int, media_type: str, body: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
                         .values(status_code=status, media_type=media_type, body=body))

    def abandon(self, owner: str, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key,
                                                      IdempotencyKey.status_code.is_(None)))


class IdempotentRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            key = request.headers.get(HEADER)
            if request.method != "POST" or key is None:
                return await original(request)
            if not 1 <= len(key) <= 200 or not key.isprintable():
                raise ValidationError(f"{HEADER}: 1 to 200 printable characters")
            owner = _owner(request)
            if owner is None:  # no valid token: the route answers 401 itself, nothing to remember
                return await original(request)
            body = await request.body()
            fingerprint = hashlib.sha256(request.method.encode() + b" " + request.url.path.encode() + b"\n" + body).hexdigest()
            store = IdempotencyStore(request.app.state.workspace.engine)
            stored = await run_in_threadpool(store.begin, owner, key, fingerprint)
            if stored is not None:
                status, media_type, content = stored
                return Response(content, status_code=status, media_type=media_type, headers={"Idempotent-Replayed": "true"})
            try:
                response = await original(request)
            except BaseException:
                await run_in_threadpool(store.abandon, owner, key)
                raise
            if 200 <= response.status_code < 300 and isinstance(getattr(response, "body", None), bytes):
                await run_in_threadpool(store.complete, owner, key, response.status_code,
                                        response.media_type or "application/json", response.body)
            else:
                await run_in_threadpool(store.abandon, owner, key)
            return response

        return handler


def _owner(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return request.app.state.workspace.tokens.verify(token.strip()).subject
    except IotfinError:
        return None
