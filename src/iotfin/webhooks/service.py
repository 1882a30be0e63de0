"""Webhook use cases: subscriptions, the outbox write (`emit`), claiming due deliveries for the
worker, recording attempts, and the delivery log."""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, Row

from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.jsonout import dumps
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.identity.crypto import FieldCipher
from iotfin.identity.model import Principal
from iotfin.webhooks import store
from iotfin.webhooks.model import (
    MAX_ATTEMPTS,
    Allowlist,
    backoff_s,
    check_addresses,
    check_event_types,
    check_url,
    ip_of,
)

SECRET_CONTEXT = "webhook_subscriptions.secret"


@dataclass(frozen=True)
class Job:
    """One delivery attempt the worker is to make."""

    delivery_id: int
    attempt: int
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: the URL with the vetted address in place of the host name (so the
    connection cannot be re-pointed between the check and the connect: DNS rebinding), and the Host
    header and TLS server name that keep the original name for virtual hosting and certificates."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


class WebhookService:
    def __init__(self, engine: Engine, cipher: FieldCipher, allow: Allowlist = Allowlist(),
                 resolver: Callable[[str, int], list[str]] = resolve):
        self.engine = engine
        self.cipher = cipher
        self.allow = allow
        self.resolver = resolver

    # --- SSRF protection (docs/api.md#webhooks) ---------------------------------------------------

    def _vet(self, url: str, *, must_resolve: bool) -> list[str]:
        """Check the URL and the addresses its host resolves to now; [] for an IP-literal host or
        (at subscription only) a name that does not resolve yet."""
        parts = httpx.URL(check_url(url, self.allow))
        if ip_of(parts.host) is not None:
            return [parts.host]
        try:
            addresses = self.resolver(parts.host, parts.port or (443 if parts.scheme == "https" else 80))
        except (OSError, UnicodeError):
            if must_resolve:
                raise ValidationError(f"webhook host {parts.host} does not resolve") from None
            return []
        check_addresses(parts.host, addresses, self.allow)
        return addresses

    def target(self, url: str) -> Target:
        """Re-resolve and re-check a subscription's URL just before a delivery; ValidationError if it
        now points at a non-public address."""
        parts = httpx.URL(url)
        address = self._vet(url, must_resolve=True)[0]
        if address == parts.host:
            return Target(url, {}, {})
        headers = {"Host": parts.netloc.decode("ascii")}
        extensions = {"sni_hostname": parts.host} if parts.scheme == "https" else {}
        return Target(str(parts.copy_with(host=address)), headers, extensions)

    # --- subscriptions ------------------------------------------------------------------------

    def subscribe(self, who: Principal, url: str, event_types: list[str], description: str = "") -> dict[str, Any]:
        tenant_id, enterprise_id = who.owner()
        if tenant_id is None and enterprise_id is None:
            raise ValidationError("a subscription belongs to a tenant or an enterprise; this caller has neither")
        types = check_event_types(event_types)
        self._vet(url, must_resolve=False)
        secret = "whsec_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            sub_id = store.insert_subscription(
                conn, tenant_id=tenant_id, enterprise_id=enterprise_id, url=url, event_types=types,
                description=description, secret_enc=self.cipher.encrypt(secret, SECRET_CONTEXT), active=True,
            )
        return self._subscription_json(sub_id, url, types, description, True) | {"secret": secret}

    def subscriptions(self, who: Principal, page: PageParams) -> tuple[list[dict[str, Any]], str | None]:
        with self.engine.connect() as conn:
            rows, cursor = store.subscriptions_page(conn, who, page)
        return [self._subscription_json(r.id, r.url, r.event_types, r.description, r.active) for r in rows], cursor

    def unsubscribe(self, who: Principal, sub_id: int) -> None:
        with self.engine.begin() as conn:
            self._visible_subscription(conn, who, sub_id)
            store.deactivate_subscription(conn, sub_id)
            # Nothing more goes out to a cancelled subscription.
            store.fail_pending_deliveries(conn, sub_id, "subscription cancelled")

    def ping(self, who: Principal, sub_id: int) -> str:
        with self.engine.begin() as conn:
            sub = self._visible_subscription(conn, who, sub_id)
            return self.emit(conn, "ping", {"subscription_id": sub_id}, tenant_id=sub.tenant_id,
                             enterprise_id=sub.enterprise_id, only_subscription=sub_id)

    # --- the outbox ---------------------------------------------------------------------------

    def emit(self, conn: Connection, event_type: str, payload: dict[str, Any], *, tenant_id: int | None = None,
             enterprise_id: int | None = None, only_subscription: int | None = None) -> str:
        """Record an event and one pending delivery per matching subscription, on the caller's
        connection: the event exists exactly when the caller's transaction commits."""
        check_event_types([event_type])
        event_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        pk = store.insert_event(conn, event_id=event_id, event_type=event_type, tenant_id=tenant_id,
                                enterprise_id=enterprise_id, payload=payload, created_at=now)
        subscriptions = store.matching_subscriptions(conn, tenant_id=tenant_id, enterprise_id=enterprise_id,
                                                     only_subscription=only_subscription)
        if subscriptions is None:
            return event_id
        # A ping (`only_subscription`) reaches the subscription pinged whatever event types it chose.
        targets = [r.id for r in subscriptions if only_subscription is not None or event_type in r.event_types]
        if targets:
            store.insert_deliveries(conn, [
                {"event_id": pk, "subscription_id": t, "status": "pending", "attempts": 0, "next_attempt_at": now}
                for t in targets])
        return event_id

    def emit_many(self, conn: Connection, event_type: str,
                  items: list[tuple[dict[str, Any], int | None, int | None]]) -> list[str]:
        """`emit` for many events of one type, (payload, tenant_id, enterprise_id) each, in a few
        statements instead of three per event (the close's repayment notices: thousands a day)."""
        check_event_types([event_type])
        if not items:
            return []
        now = datetime.now(UTC)
        ids = [str(uuid.uuid4()) for _ in items]
        pks = store.insert_events(conn, [
            {"event_id": eid, "event_type": event_type, "tenant_id": tenant, "enterprise_id": enterprise,
             "payload": payload, "created_at": now}
            for eid, (payload, tenant, enterprise) in zip(ids, items, strict=True)])
        subscriptions = [r for r in store.active_subscriptions(conn) if event_type in r.event_types]
        deliveries = [{"event_id": pk, "subscription_id": r.id, "status": "pending", "attempts": 0,
                       "next_attempt_at": now}
                      for pk, (_, tenant, enterprise) in zip(pks, items, strict=True)
                      for r in subscriptions
                      if (tenant is not None and r.tenant_id == tenant)
                      or (enterprise is not None and r.enterprise_id == enterprise)]
        if deliveries:
            store.insert_deliveries(conn, deliveries)
        return ids

    # --- the worker's side --------------------------------------------------------------------

    def claim_due(self, limit: int = 20, lease_s: float = 60.0, now: datetime | None = None) -> list[Job]:
        """Take up to `limit` due deliveries, pushing their next attempt `lease_s` ahead so another
        worker does not take them too (on PostgreSQL, SKIP LOCKED keeps workers apart meanwhile)."""
        now = now or datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            rows = store.lock_due_deliveries(conn, now, limit)
            if rows:
                store.postpone_deliveries(conn, [r.id for r in rows], now + timedelta(seconds=lease_s))
        return [Job(r.id, r.attempts + 1, r.url, self.cipher.decrypt(r.secret_enc, SECRET_CONTEXT), r.event_id,
                    r.event_type, dumps({"id": r.event_id, "type": r.event_type,
                                         "created_at": r.created_at.isoformat(), "data": r.payload}).encode())
                for r in rows]

    def record_attempt(self, job: Job, status_code: int | None, error: str | None, duration_ms: int,
                       max_attempts: int = MAX_ATTEMPTS, base_backoff_s: float = 2.0,
                       backoff: Callable[[int], float] | None = None) -> str:
        """Log one attempt and move the delivery on: delivered on a 2xx, else retried later or,
        after `max_attempts`, failed. Returns the delivery's new status."""
        now = datetime.now(UTC)
        ok = status_code is not None and 200 <= status_code < 300
        if ok:
            values: dict[str, Any] = {"status": "delivered", "delivered_at": now}
        elif job.attempt >= max_attempts:
            values = {"status": "failed"}
        else:
            delay = backoff(job.attempt) if backoff else backoff_s(job.attempt, base_backoff_s)
            values = {"status": "pending", "next_attempt_at": now + timedelta(seconds=delay)}
        error = error[:300] if error else None
        with write_transaction(self.engine) as conn:
            store.insert_attempt(conn, delivery_id=job.delivery_id, attempt=job.attempt, at=now,
                                 status_code=status_code, error=error, duration_ms=duration_ms)
            store.update_pending_delivery(conn, job.delivery_id, attempts=job.attempt, last_status_code=status_code,
                                          last_error=error, **values)
        return values["status"]

    # --- the delivery log ---------------------------------------------------------------------

    def deliveries(self, who: Principal, page: PageParams, status: str | None = None,
                   event_type: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        with self.engine.connect() as conn:
            rows, cursor = store.deliveries_page(conn, who, page, status=status, event_type=event_type)
        return [self._delivery_json(r) for r in rows], cursor

    def delivery(self, who: Principal, delivery_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = store.delivery(conn, delivery_id)
            if row is None or not who.can_see(row.tenant_id, row.enterprise_id):
                raise NotFound(f"no delivery {delivery_id}")
            attempts = store.attempts(conn, delivery_id)
        return self._delivery_json(row) | {"attempt_log": [
            {"attempt": a.attempt, "at": a.at.isoformat(), "status_code": a.status_code, "error": a.error,
             "duration_ms": a.duration_ms} for a in attempts]}

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _delivery_json(r: Any) -> dict[str, Any]:
        return {"id": r.id, "subscription_id": r.subscription_id, "event_id": r.event_id, "event_type": r.event_type,
                "url": r.url, "status": r.status, "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at.isoformat() if r.status == "pending" else None,
                "last_status_code": r.last_status_code, "last_error": r.last_error,
                "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None}

    @staticmethod
    def _subscription_json(sub_id: int, url: str, types: list[str], description: str, active: bool) -> dict[str, Any]:
        return {"id": sub_id, "url": url, "event_types": types, "description": description, "active": active}

    @staticmethod
    def _visible_subscription(conn: Connection, who: Principal, sub_id: int) -> Row:
        row = store.subscription(conn, sub_id)
        if row is None or not who.can_see(row.tenant_id, row.enterprise_id):
            raise NotFound(f"no subscription {sub_id}")
        return row

