"""Risk's ports (`iotfin.risk.ports`) filled from the contexts that own what it reads.

`RiskConsent` puts the features' reads to the consent service, which decides and logs each one.
`RecordSources` reads the device and supply-chain rows the feature SQL needs, through the owning
contexts' stores, in the connection the risk engine hands it. Risk imports neither context; this
adapter is the only place that knows both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from sqlalchemy import Connection, select

from iotfin.consent.model import TELEMETRY_SCOPE_OF_DEVICE, validate_purpose, validate_recipient
from iotfin.consent.service import ConsentService, ReadRequest
from iotfin.core.time import business_date
from iotfin.devices import store as device_store
from iotfin.receivables.tables import Voucher, VoucherEvent
from iotfin.risk.ports import (
    ConsentDecision,
    ConsentRead,
    DeviceRow,
    DocumentRow,
    RelationshipRow,
    VoucherReceiptRow,
    VoucherRow,
)
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

    def vouchers(self, conn: Connection, enterprise_ids: Sequence[int] | None
                 ) -> tuple[Sequence[VoucherRow], Sequence[VoucherReceiptRow]]:
        return voucher_history(conn, enterprise_ids)


def voucher_history(conn: Connection, enterprise_ids: Sequence[int] | None
                    ) -> tuple[list[VoucherRow], list[VoucherReceiptRow]]:
    """Vouchers and their takings, dated by business date, from the receivables context's tables (its
    journal is append-only, so each date is the one the event recorded). Read here rather than through a
    receivables store function: two plain reads, kept beside the port they fill.

    A taking: the issue (tier 1, on the issue date) and every accepted transfer (`transfer` events; tier 2
    from the voucher's supplier, 3 from a later holder), on the event's business date (`on` in its
    detail where recorded, else the local date of the event). A cancellation is dated the same way.
    Vouchers are all those touching the enterprises (issued, issued to, or passed to one of them)."""
    v, e = Voucher.__table__, VoucherEvent.__table__
    events = conn.execute(select(e.c.voucher_id, e.c.kind, e.c.detail, e.c.at)
                          .where(e.c.kind.in_(("transfer", "cancel"))).order_by(e.c.id)).all()
    wanted = None if enterprise_ids is None else set(enterprise_ids)

    def enterprise(who: object) -> int | None:
        kind, _, ident = str(who).partition(":")
        return int(ident) if kind == "enterprise" and ident.isdigit() else None

    def on(detail: dict, at: object) -> date:
        return date.fromisoformat(detail["on"]) if detail.get("on") else business_date(at)  # type: ignore[arg-type]

    passed_to = {ev.voucher_id for ev in events if ev.kind == "transfer" and (wanted is None or enterprise(ev.detail.get("to")) in wanted)}
    q = select(v.c.id, v.c.issuer_id, v.c.supplier_id, v.c.total_fen, v.c.issued_on, v.c.matures_on, v.c.status,
               v.c.paid_on)
    if wanted is not None:
        q = q.where(v.c.issuer_id.in_(wanted) | v.c.supplier_id.in_(wanted) | v.c.id.in_(passed_to))
    cancelled = {ev.voucher_id: on(ev.detail, ev.at) for ev in events if ev.kind == "cancel"}
    vouchers = [VoucherRow(int(r.id), int(r.issuer_id), int(r.supplier_id), int(r.total_fen), r.issued_on, r.matures_on,
                           r.paid_on if r.status == "paid" else None, cancelled.get(r.id))
                for r in conn.execute(q).all()]
    supplier = {x.voucher_id: x.supplier_id for x in vouchers}
    receipts = [VoucherReceiptRow(x.voucher_id, x.supplier_id, x.total_fen, x.issued_on, 1) for x in vouchers]
    for ev in events:
        to = enterprise(ev.detail.get("to"))
        if ev.kind == "transfer" and ev.voucher_id in supplier and to is not None:
            tier = 2 if enterprise(ev.detail.get("from")) == supplier[ev.voucher_id] else 3
            receipts.append(VoucherReceiptRow(ev.voucher_id, to, int(ev.detail["end"]) - int(ev.detail["start"]),
                                              on(ev.detail, ev.at), tier))
    return vouchers, receipts
