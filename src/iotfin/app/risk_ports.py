"""Risk's ports (`iotfin.risk.ports`) filled from the contexts that own what it reads.

`RiskConsent` puts the features' reads to the consent service, which decides and logs each one.
`RecordSources` reads the device and supply-chain rows the feature SQL needs, through the owning
contexts' stores, in the connection the risk engine hands it. Risk imports neither context; this
adapter is the only place that knows both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection

from iotfin.consent.model import TELEMETRY_SCOPE_OF_DEVICE, validate_purpose, validate_recipient
from iotfin.consent.service import ConsentService, ReadRequest
from iotfin.devices import store as device_store
from iotfin.risk.ports import ConsentDecision, ConsentRead, DeviceRow, DocumentRow, RelationshipRow
from iotfin.supplychain import store as supplychain_store


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
    """Risk's `FeatureSources` port: device rows (devices context) and trade rows (supply chain).

    SQLAlchemy rows are named tuples with the port's fields in its order: passed on as they are, since
    a feature computation reads every device and document, and copying each would cost for nothing."""

    def devices(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[DeviceRow]:
        return device_store.feature_devices(conn, enterprise_ids)

    def device_types(self, conn: Connection, enterprise_ids: Sequence[int]) -> Iterable[tuple[int, str]]:
        return device_store.device_types(conn, enterprise_ids)

    def trade_documents(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[DocumentRow]:
        return supplychain_store.trade_documents_of(conn, enterprise_ids)

    def relationships(self, conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[RelationshipRow]:
        return supplychain_store.relationships_of(conn, enterprise_ids)
