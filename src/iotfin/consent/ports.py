"""What consent needs from other contexts, as Protocols; the composition root plugs them in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Connection


class Events(Protocol):
    def __call__(self, conn: Connection, event_type: str, payload: Mapping[str, Any], *,
                 enterprise_id: int | None = None, tenant_id: int | None = None) -> None:
        """Publish a business event (a webhook: consent.granted, consent.withdrawn) inside the caller's
        transaction: it goes out exactly when that commits. With no `tenant_id`, the composition root
        addresses the tenant whose code is the payload's `recipient`."""
        ...
