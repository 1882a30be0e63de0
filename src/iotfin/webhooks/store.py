"""Queries of webhooks (its tables are in `iotfin.webhooks.tables`): subscriptions, the outbox of
events and deliveries, delivery attempts and the delivery log, read and written on the caller's
connection (the service holds the transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, insert, or_, select, update

from iotfin.db import prepared
from iotfin.db.bulk import copy_rows, draw_ids
from iotfin.db.pagination import PageParams, paginate
from iotfin.identity.access import owned_by
from iotfin.identity.model import Principal
from iotfin.webhooks.tables import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookSubscription

# --- subscriptions -----------------------------------------------------------------------------


def insert_subscription(conn: Connection, **values: Any) -> int:
    """Store a new subscription; its id."""
    return conn.execute(insert(WebhookSubscription).values(**values).returning(WebhookSubscription.id)).scalar_one()


def subscriptions_page(conn: Connection, who: Principal, page: PageParams) -> tuple[Sequence[Row], str | None]:
    """A page of the subscriptions `who` owns (id, url, event_types, description, active)."""
    s = WebhookSubscription
    stmt = owned_by(select(s.id, s.url, s.event_types, s.description, s.active), who, s.tenant_id, s.enterprise_id)
    return paginate(conn, stmt, s.id, page)


def subscription(conn: Connection, sub_id: int) -> Row | None:
    """The subscription's stored row (None: no such subscription)."""
    return conn.execute(select(WebhookSubscription).where(WebhookSubscription.id == sub_id)).first()


def deactivate_subscription(conn: Connection, sub_id: int) -> None:
    conn.execute(update(WebhookSubscription).where(WebhookSubscription.id == sub_id).values(active=False))


def fail_pending_deliveries(conn: Connection, sub_id: int, error: str) -> None:
    """Mark the subscription's pending deliveries failed, with this error."""
    conn.execute(update(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id,
                                               WebhookDelivery.status == "pending")
                 .values(status="failed", last_error=error))


# --- the outbox --------------------------------------------------------------------------------


# Built once with bound parameters: every event of every context is emitted through these two, and
# building a statement and its cache key per call cost more than running it (py-spy,
# bench/receivables_ops.py).
_INSERT_EVENT = insert(WebhookEvent.__table__)


def insert_event(conn: Connection, **values: Any) -> int:
    """Store an event; its row id."""
    return prepared.insert_id(conn, _INSERT_EVENT, values)


@lru_cache(maxsize=8)
def _matching(by_tenant: bool, by_enterprise: bool, only: bool) -> Select:
    s = WebhookSubscription
    owners = [c for c in (s.tenant_id == bindparam("tenant_id") if by_tenant else None,
                          s.enterprise_id == bindparam("enterprise_id") if by_enterprise else None) if c is not None]
    stmt = select(s.id, s.event_types).where(s.active.is_(True), or_(*owners))
    return stmt.where(s.id == bindparam("only")) if only else stmt


def matching_subscriptions(conn: Connection, *, tenant_id: int | None, enterprise_id: int | None,
                           only_subscription: int | None) -> list[prepared.Record] | None:
    """(id, event_types) of the active subscriptions of this tenant or enterprise (just
    `only_subscription` if given); None when neither owner is given."""
    if tenant_id is None and enterprise_id is None:
        return None
    stmt = _matching(tenant_id is not None, enterprise_id is not None, only_subscription is not None)
    return prepared.fetch(conn, stmt, {"tenant_id": tenant_id, "enterprise_id": enterprise_id,
                                       "only": only_subscription})


_EVENT_COLUMNS = ("id", "event_id", "event_type", "tenant_id", "enterprise_id", "payload", "created_at")
# binary COPY sends the json column as its text (json's wire format), serialised here as SQLAlchemy's
# JSON type does (json.dumps)
_EVENT_PG_TYPES = ("int8", "varchar", "varchar", "int8", "int8", "text", "timestamptz")
COPY_EVENTS_FROM = 200  # fewer events: the batched INSERT (one statement either way)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Store many events in one batched INSERT; their row ids, in the order of `rows`.

    On PostgreSQL, from COPY_EVENTS_FROM events on (the close's notices: tens of thousands a day on a
    large book), the ids are drawn from the table's sequence in one query and the rows go by binary
    COPY: the batched INSERT ... RETURNING spent ~40 % of a 1,000,000-loan close's Python time
    (py-spy, issue 21)."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_EVENTS_FROM:
        ids = draw_ids(conn, "webhook_events", len(rows))
        dumps = json.dumps
        copy_rows(conn, "webhook_events", _EVENT_COLUMNS, _EVENT_PG_TYPES,
                  ((pk, r["event_id"], r["event_type"], r["tenant_id"], r["enterprise_id"], dumps(r["payload"]),
                    r["created_at"]) for pk, r in zip(ids, rows, strict=True)))
        return ids
    stmt = insert(WebhookEvent).returning(WebhookEvent.id, sort_by_parameter_order=True)
    return list(conn.execute(stmt, rows).scalars())


def active_subscriptions(conn: Connection) -> list[Row]:
    """(id, tenant_id, enterprise_id, event_types) of every active subscription (a batch of events
    matches them in memory instead of one query per event)."""
    s = WebhookSubscription
    return list(conn.execute(select(s.id, s.tenant_id, s.enterprise_id, s.event_types).where(s.active.is_(True))))


def insert_deliveries(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(WebhookDelivery), rows)


# --- the worker's side -------------------------------------------------------------------------


def lock_due_deliveries(conn: Connection, now: datetime, limit: int) -> Sequence[Row]:
    """Up to `limit` pending deliveries due by `now`, oldest due first, locked (SKIP LOCKED on
    PostgreSQL), with their subscription's url and secret and their event."""
    d, e, s = WebhookDelivery, WebhookEvent, WebhookSubscription
    return conn.execute(
        select(d.id, d.attempts, s.url, s.secret_enc, e.event_id, e.event_type, e.payload, e.created_at)
        .join(e, e.id == d.event_id).join(s, s.id == d.subscription_id)
        .where(d.status == "pending", d.next_attempt_at <= now)
        .order_by(d.next_attempt_at).limit(limit).with_for_update(skip_locked=True, of=d)
    ).all()


def postpone_deliveries(conn: Connection, ids: Iterable[int], next_attempt_at: datetime) -> None:
    d = WebhookDelivery
    conn.execute(update(d).where(d.id.in_(list(ids))).values(next_attempt_at=next_attempt_at))


def insert_attempt(conn: Connection, **values: Any) -> None:
    conn.execute(insert(WebhookAttempt).values(**values))


def update_pending_delivery(conn: Connection, delivery_id: int, **values: Any) -> None:
    """Update a delivery that is still pending (no-op otherwise)."""
    conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
                 .values(**values))


# --- the delivery log --------------------------------------------------------------------------


def _log_select() -> Select:
    d, e, s = WebhookDelivery, WebhookEvent, WebhookSubscription
    return (select(d.id, d.subscription_id, d.status, d.attempts, d.next_attempt_at, d.last_status_code,
                   d.last_error, d.delivered_at, e.event_id, e.event_type, s.url)
            .join(e, e.id == d.event_id).join(s, s.id == d.subscription_id))


def deliveries_page(conn: Connection, who: Principal, page: PageParams, *, status: str | None,
                    event_type: str | None) -> tuple[Sequence[Row], str | None]:
    """A page of the delivery log of the subscriptions `who` owns."""
    stmt = owned_by(_log_select(), who, WebhookSubscription.tenant_id, WebhookSubscription.enterprise_id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if event_type:
        stmt = stmt.where(WebhookEvent.event_type == event_type)
    return paginate(conn, stmt, WebhookDelivery.id, page)


def delivery(conn: Connection, delivery_id: int) -> Row | None:
    """One delivery's log row, with its subscription's tenant_id and enterprise_id (None: no such delivery)."""
    return conn.execute(_log_select().add_columns(WebhookSubscription.tenant_id, WebhookSubscription.enterprise_id)
                        .where(WebhookDelivery.id == delivery_id)).first()


def attempts(conn: Connection, delivery_id: int) -> Sequence[Row]:
    """A delivery's attempts, in order."""
    return conn.execute(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
                        .order_by(WebhookAttempt.attempt)).all()
