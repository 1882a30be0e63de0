"""The contexts' `Events` ports (decision, lending, consent; `ports.py` of each), wired to the webhook
outbox (`WebhookService.emit`) in the caller's transaction.

A context names the enterprise an event is about and, when it knows it, the lender tenant. When it
does not, the recipient tenant is found here, in the same transaction: the lender owning the payload's
loan or application (`record_owners`), or the tenant whose code is the payload's consent `recipient`.
One event goes to the subscriptions of both (the enterprise's and the tenant's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from iotfin.identity.access import record_owner_in, record_owners_in
from iotfin.identity.store import tenant_by_code
from iotfin.webhooks.service import WebhookService

# payload key -> record_owners kind, in the order they are looked for
OWNED = (("loan_id", "loan"), ("application_id", "application"), ("credit_line_id", "credit_line"))


class WebhookEvents:
    """An `Events` port of any context over one workspace's webhook service."""

    def __init__(self, webhooks: WebhookService):
        self.webhooks = webhooks

    def __call__(self, conn: Connection, event_type: str, payload: Mapping[str, Any], *,
                 enterprise_id: int | None = None, tenant_id: int | None = None) -> None:
        if tenant_id is None:
            tenant_id = recipient_tenant(conn, payload)
        self.webhooks.emit(conn, event_type, dict(payload), tenant_id=tenant_id, enterprise_id=enterprise_id)


    def many(self, conn: Connection, event_type: str, items: Sequence[tuple[Mapping[str, Any], int | None]]) -> None:
        """Many events of one type, (payload, enterprise_id) each, recipients found as `__call__`
        finds them but the loans' owners in one query (the close's repayment notices)."""
        loan_ids = sorted({int(p["loan_id"]) for p, _ in items if p.get("loan_id") is not None})
        owners = record_owners_in(conn, "loan", loan_ids) if loan_ids else {}
        batch = []
        for payload, enterprise_id in items:
            loan_id = payload.get("loan_id")
            tenant_id = owners.get(int(loan_id)) if loan_id is not None else None
            if tenant_id is None:
                # the loan's owner was looked up above (none: a loan booked without a lender): the
                # other keys only, not one more query per event for the loan (the close's notices
                # spent most of a 200,000-loan close here, py-spy)
                tenant_id = recipient_tenant(conn, payload, skip=("loan_id",) if loan_id is not None else ())
            batch.append((dict(payload), tenant_id, enterprise_id))
        self.webhooks.emit_many(conn, event_type, batch)


def recipient_tenant(conn: Connection, payload: Mapping[str, Any], skip: Sequence[str] = ()) -> int | None:
    for key, kind in OWNED:
        if key not in skip and payload.get(key) is not None:
            owner = record_owner_in(conn, kind, int(payload[key]))
            if owner is not None:
                return owner
    code = payload.get("recipient")
    if isinstance(code, str):
        row = tenant_by_code(conn, code)
        return None if row is None else int(row.id)
    return None
