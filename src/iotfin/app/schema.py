"""The complete schema: every bounded context's tables on one metadata.

Contexts declare their tables on `iotfin.db.models.Base` in their own modules; importing this module
registers all of them, which is what Alembic (autogenerate, migration checks) needs.
"""

from __future__ import annotations

import iotfin.api.idempotency  # noqa: F401  idempotency keys
import iotfin.consent.tables  # noqa: F401  consent grants, access log
import iotfin.decision.tables  # noqa: F401  credit decisioning
import iotfin.devices.tables  # noqa: F401  provenance, device events and state, claims
import iotfin.financing.tables  # noqa: F401  financing registry
import iotfin.identity.tables  # noqa: F401  partner clients, console users
import iotfin.ledger.tables  # noqa: F401  transparency log  # noqa: F401  transparency log
import iotfin.lending.tables  # noqa: F401  loan servicing and general ledger
import iotfin.monitor.tables  # noqa: F401  monitoring alerts, notifications, commodity prices
import iotfin.protection.tables  # noqa: F401  complaints, hardship requests
import iotfin.receivables.tables  # noqa: F401  digital debt vouchers: issues, fen-range parts, offers, events
import iotfin.risk.tables  # noqa: F401  credit ratings (three-dimension profiles)
import iotfin.supplychain.tables  # noqa: F401  supply chains, members, trading links, trade documents
import iotfin.webhooks.tables  # noqa: F401  webhook subscriptions, outbox, deliveries
from iotfin.db.base import Base

metadata = Base.metadata
