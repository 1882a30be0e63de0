"""Risk's ports (`iotfin.risk.ports`) filled from the contexts that own what it reads.

`RiskConsent` puts the features' reads to the consent service, which decides and logs each one.
`RecordSources` reads the device and supply-chain rows the feature SQL needs, in the connection the
risk engine hands it. Risk imports neither context; this adapter is the only place that knows both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from iotfin.consent.model import TELEMETRY_SCOPE_OF_DEVICE, validate_purpose, validate_recipient
from iotfin.consent.service import ConsentService, ReadRequest
from iotfin.devices.tables import Device, DeviceProfile
from iotfin.risk.ports import ConsentDecision, ConsentRead, DeviceRow, DocumentRow, RelationshipRow
from iotfin.supplychain.tables import Relationship, TradeDocument


class RiskConsent:
    """Risk's `Consent` port over the consent service."""

    def __init__(self, consent: ConsentService):
        self.service = consent
        self.telemetry_scope_of_device: Mapping[str, str] = TELEMETRY_SCOPE_OF_DEVICE

    def validate(self, recipient: str, purpose: str) -> None:
        validate_recipient(recipient)
        validate_purpose(purpose)

    def check_many(self, recipient: str, enterprise_ids: Iterable[int], reads: Mapping[int, Sequence[ConsentRead]],
                   *, detail: str) -> Mapping[int, Sequence[ConsentDecision]]:
        asked = {eid: [ReadRequest(r.scope, r.purpose, r.start, r.end) for r in rs] for eid, rs in reads.items()}
        return self.service.check_many(recipient, enterprise_ids, asked, detail=detail)


class RecordSources:
    """Risk's `FeatureSources` port: device rows (devices context) and trade rows (supply chain)."""

    def devices(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[DeviceRow]:
        d, p = Device.__table__, DeviceProfile.__table__
        q = (select(d.c.id, d.c.enterprise_id, d.c.device_type, d.c.commodity, d.c.installed_on, d.c.created_at,
                    p.c.interval_s).join(p, p.c.id == d.c.profile_id).where(d.c.status != "revoked"))
        return _rows(conn, q if enterprise_ids is None else q.where(d.c.enterprise_id.in_(enterprise_ids)))

    def device_types(self, conn: Connection, enterprise_ids: Sequence[int]) -> Iterable[tuple[int, str]]:
        d = Device.__table__
        return [(eid, t) for eid, t in conn.execute(
            select(d.c.enterprise_id, d.c.device_type)
            .where(d.c.enterprise_id.in_(enterprise_ids), d.c.status != "revoked").distinct())]

    def trade_documents(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[DocumentRow]:
        t = TradeDocument.__table__
        q = select(t.c.id, t.c.doc_type, t.c.seller_id, t.c.buyer_id, t.c.order_id, t.c.issued_on, t.c.due_on,
                   t.c.amount, t.c.vehicle_device_id)
        ids = enterprise_ids
        return _rows(conn, q if ids is None else q.where(t.c.seller_id.in_(ids) | t.c.buyer_id.in_(ids)))

    def relationships(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[RelationshipRow]:
        r = Relationship.__table__
        q = select(r.c.supplier_id, r.c.buyer_id, r.c.core_enterprise_id, r.c.since)
        ids = enterprise_ids
        return _rows(conn, q if ids is None else q.where(r.c.supplier_id.in_(ids) | r.c.buyer_id.in_(ids)))


def _rows(conn: Connection, query: Any) -> Any:
    # SQLAlchemy rows are named tuples with the port's fields in its order: passed on as they are, since
    # a feature computation reads every device and document, and copying each would cost for nothing.
    return conn.execute(query).all()
