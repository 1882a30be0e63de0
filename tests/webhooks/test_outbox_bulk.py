"""The outbox's bulk write (the close's notices): on PostgreSQL from COPY_EVENTS_FROM events on, ids
drawn from the sequence and the rows by binary COPY; on SQLite the batched INSERT. Same rows back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from iotfin.db import migrate
from iotfin.db.engine import make_engine, write_transaction
from iotfin.webhooks import store
from iotfin.webhooks.tables import WebhookEvent


def _rows(n: int, start: int) -> list[dict]:
    now = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    return [{"event_id": str(uuid.uuid4()), "event_type": "repayment.due", "tenant_id": None, "enterprise_id": None,
             "payload": {"loan_id": start + k, "amount": f"{k}.05", "note": "到期 \"due\"\n", "none": None},
             "created_at": now} for k in range(n)]


def test_bulk_and_single_events_get_distinct_ids_and_read_back(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    try:
        bulk, single, more = _rows(store.COPY_EVENTS_FROM + 50, 0), _rows(1, 10_000), _rows(3, 20_000)
        with write_transaction(engine) as conn:
            bulk_ids = store.insert_events(conn, bulk)
        with write_transaction(engine) as conn:  # a single insert after the bulk one draws a fresh id
            single_ids = store.insert_events(conn, single) + store.insert_events(conn, more)
        ids = bulk_ids + single_ids
        assert len(set(ids)) == len(ids) == len(bulk) + 4
        assert bulk_ids == sorted(bulk_ids)
        with engine.connect() as conn:
            stored = {r.id: r for r in conn.execute(select(WebhookEvent))}
        for pk, row in zip(ids, bulk + single + more, strict=True):
            got = stored[pk]
            assert (got.event_id, got.event_type, got.payload, got.created_at) == (
                row["event_id"], row["event_type"], row["payload"], row["created_at"])
    finally:
        engine.dispose()
