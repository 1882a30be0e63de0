"""Customer-protection use cases: the complaint lifecycle with deadlines, hardship requests feeding
the lending relief path (through `ReliefPort`), and re-encryption of personal fields after a key
rotation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row

from iotfin.core.errors import IotfinError, NotFound, ValidationError
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.identity.access import visibility
from iotfin.identity.crypto import PREFIX, FieldCipher
from iotfin.identity.model import Principal
from iotfin.identity.tables import Enterprise
from iotfin.protection import model as m
from iotfin.protection import store
from iotfin.protection.tables import Complaint, HardshipRequest

# Which encrypted columns exist: (table class, column attribute) -> AES-GCM associated data.
ENCRYPTED_FIELDS = {
    (Complaint, "contact_name_enc"): "complaints.contact_name",
    (Complaint, "contact_phone_enc"): "complaints.contact_phone",
    (HardshipRequest, "contact_phone_enc"): "hardship_requests.contact_phone",
    (Enterprise, "legal_rep_name"): "enterprises.legal_rep_name",
    (Enterprise, "legal_rep_id_number"): "enterprises.legal_rep_id_number",
    (Enterprise, "legal_rep_phone"): "enterprises.legal_rep_phone",
}
#: The legal representative's personal data on the enterprise row, and its AES-GCM associated data.
ENTERPRISE_PII = {attr: context for (table, attr), context in ENCRYPTED_FIELDS.items() if table is Enterprise}


def seal_enterprise(cipher: FieldCipher, row: dict[str, Any]) -> dict[str, Any]:
    """An enterprise row with the legal representative's fields encrypted (what every writer stores)."""
    return row | {attr: cipher.encrypt(row[attr], ctx) for attr, ctx in ENTERPRISE_PII.items()
                  if attr in row and row[attr] is not None and not str(row[attr]).startswith(PREFIX)}


@dataclass(frozen=True)
class ApprovedRelief:
    """What lending needs to apply an approved hardship request."""

    request_id: int
    tenant_id: int
    enterprise_id: int
    loan_ref: str
    relief: str
    reason_code: str


class ReliefPort(Protocol):
    """Lending's relief path. The integrator wires `iotfin.lending` here; it returns lending's
    reference for the relief it put in place (a deferral, a new schedule), or None when the kind of
    relief needs an officer (the request stays `awaiting_lending`). Wired to lending by
    `iotfin.app.lending_relief.LendingRelief`."""

    def apply(self, relief: ApprovedRelief) -> str | None: ...


Emit = Callable[..., str]


class ProtectionService:
    def __init__(self, engine: Engine, cipher: FieldCipher, *, ack_hours: int = 24, resolve_days: int = 15,
                 events: Emit | None = None, relief: ReliefPort | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.engine = engine
        self.cipher = cipher
        self.ack_hours = ack_hours
        self.resolve_days = resolve_days
        self.events = events
        self.relief = relief
        self.clock = clock

    # --- complaints ---------------------------------------------------------------------------

    def submit_complaint(self, who: Principal, *, category: str, subject: str, description: str,
                         tenant: str | None = None, enterprise_id: int | None = None,
                         contact_name: str | None = None, contact_phone: str | None = None) -> dict[str, Any]:
        m.check_choice(category, m.COMPLAINT_CATEGORIES, "category")
        now = self.clock()
        due = m.deadlines(now, self.ack_hours, self.resolve_days)
        with write_transaction(self.engine) as conn:
            tenant_id = self._tenant_id(conn, tenant) if tenant else None
            if who.enterprise_id is not None:
                if enterprise_id not in (None, who.enterprise_id):
                    raise ValidationError("an enterprise files complaints in its own name only")
                enterprise_id = who.enterprise_id
            elif not who.platform:
                raise ValidationError("complaints are filed by the enterprise, or by the platform on its behalf")
            if enterprise_id is not None and not store.enterprise_exists(conn, enterprise_id):
                raise NotFound(f"no enterprise {enterprise_id}")
            cid = store.insert_complaint(
                conn, tenant_id=tenant_id, enterprise_id=enterprise_id, category=category, subject=subject,
                description=description, submitted_by=who.subject, status="submitted", submitted_at=now,
                ack_due_at=due.acknowledge_by, resolve_due_at=due.resolve_by,
                contact_name_enc=self.cipher.encrypt(contact_name, "complaints.contact_name"),
                contact_phone_enc=self.cipher.encrypt(contact_phone, "complaints.contact_phone"),
            )
            self._emit(conn, "complaint.updated", {"complaint_id": cid, "status": "submitted"}, tenant_id, enterprise_id)
        return self.complaint(who, cid)

    def complaint(self, who: Principal, complaint_id: int) -> dict[str, Any]:
        kind, owner = visibility(who)
        with self.engine.connect() as conn:
            row = store.complaint_row(conn, kind, owner, complaint_id, self.clock())
        if row is None:
            raise NotFound(f"no complaint {complaint_id}")
        return self._complaint_json(row, personal=True)

    def complaints(self, who: Principal, page: PageParams, status: str | None = None,
                   overdue_only: bool = False) -> tuple[list[dict[str, Any]], str | None]:
        kind, owner = visibility(who)
        with self.engine.connect() as conn:
            rows, cursor = store.complaints_page(conn, kind, owner, page, status=status, overdue_only=overdue_only,
                                                 now=self.clock())
        return [self._complaint_json(r, personal=False) for r in rows], cursor

    def acknowledge(self, who: Principal, complaint_id: int) -> dict[str, Any]:
        return self._move(who, complaint_id, "acknowledge", {"acknowledged_at": self.clock()})

    def assign(self, who: Principal, complaint_id: int, assignee: str) -> dict[str, Any]:
        return self._move(who, complaint_id, "assign", {"assignee": assignee})

    def escalate(self, who: Principal, complaint_id: int, reason: str) -> dict[str, Any]:
        return self._move(who, complaint_id, "escalate", {"escalated_at": self.clock(), "escalation_reason": reason})

    def resolve(self, who: Principal, complaint_id: int, resolution_code: str, text: str) -> dict[str, Any]:
        m.check_choice(resolution_code, m.RESOLUTIONS, "resolution")
        return self._move(who, complaint_id, "resolve", {"resolved_at": self.clock(), "resolution_code": resolution_code,
                                                         "resolution_text": text})

    def _move(self, who: Principal, complaint_id: int, action: str, values: dict[str, Any]) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            row = store.complaint(conn, complaint_id)
            if row is None or not self._handles(who, row.tenant_id):
                raise NotFound(f"no complaint {complaint_id}")
            status = m.complaint_transition(row.status, action)
            store.update_complaint(conn, complaint_id, status=status, **values)
            self._emit(conn, "complaint.updated", {"complaint_id": complaint_id, "status": status},
                       row.tenant_id, row.enterprise_id)
        return self.complaint(who, complaint_id)

    # --- hardship requests --------------------------------------------------------------------

    def submit_hardship(self, who: Principal, *, tenant: str, loan_ref: str, reason_code: str, relief: str,
                        description: str, contact_phone: str | None = None,
                        enterprise_id: int | None = None) -> dict[str, Any]:
        m.check_choice(reason_code, m.HARDSHIP_REASONS, "reason_code")
        m.check_choice(relief, m.RELIEF_KINDS, "relief")
        with write_transaction(self.engine) as conn:
            tenant_id = self._tenant_id(conn, tenant)
            if who.enterprise_id is not None:
                enterprise_id = who.enterprise_id
            elif not who.platform or enterprise_id is None:
                raise ValidationError("hardship requests are filed by the enterprise, or by the platform naming it")
            hid = store.insert_hardship(
                conn, tenant_id=tenant_id, enterprise_id=enterprise_id, loan_ref=loan_ref, reason_code=reason_code,
                relief=relief, description=description, submitted_by=who.subject, status="submitted",
                submitted_at=self.clock(), relief_status="not_applicable",
                contact_phone_enc=self.cipher.encrypt(contact_phone, "hardship_requests.contact_phone"),
            )
        return self.hardship(who, hid)

    def hardship(self, who: Principal, request_id: int) -> dict[str, Any]:
        kind, owner = visibility(who)
        with self.engine.connect() as conn:
            row = store.hardship_row(conn, kind, owner, request_id)
        if row is None:
            raise NotFound(f"no hardship request {request_id}")
        return self._hardship_json(row, personal=True)

    def hardship_requests(self, who: Principal, page: PageParams,
                          status: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        kind, owner = visibility(who)
        with self.engine.connect() as conn:
            rows, cursor = store.hardship_page(conn, kind, owner, page, status=status)
        return [self._hardship_json(r, personal=False) for r in rows], cursor

    def review_hardship(self, who: Principal, request_id: int, note: str) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            row = self._lender_hardship(conn, who, request_id)
            status = m.hardship_transition(row.status, "review")
            store.update_hardship(conn, request_id, status=status, reviewer=who.subject, review_note=note)
        return self.hardship(who, request_id)

    def decide_hardship(self, who: Principal, request_id: int, approve: bool, reason: str) -> dict[str, Any]:
        """Approve or decline (with a reason the enterprise reads). An approval goes to lending's
        relief path when one is wired; until then it waits there as `awaiting_lending`."""
        with write_transaction(self.engine) as conn:
            row = self._lender_hardship(conn, who, request_id)
            status = m.hardship_transition(row.status, "approve" if approve else "decline")
            relief_status = "awaiting_lending" if approve else "not_applicable"
            store.update_hardship(conn, request_id, status=status, decided_by=who.subject, decided_at=self.clock(),
                                  decision_reason=reason, relief_status=relief_status)
            self._emit(conn, "hardship.decided", {"hardship_request_id": request_id, "status": status,
                                                  "loan_ref": row.loan_ref}, row.tenant_id, row.enterprise_id)
            approved = ApprovedRelief(request_id, row.tenant_id, row.enterprise_id, row.loan_ref, row.relief,
                                      row.reason_code)
        if approve and self.relief is not None:
            try:
                ref = self.relief.apply(approved)
            except IotfinError as exc:
                # The approval stands; the relief waits for an officer, with lending's refusal on record.
                with self.engine.begin() as conn:
                    store.update_hardship(conn, request_id, relief_ref=f"refused: {exc}"[:100])
            else:
                if ref is not None:
                    with self.engine.begin() as conn:
                        store.update_hardship(conn, request_id, relief_status="applied", relief_ref=ref[:100])
        return self.hardship(who, request_id)

    def _lender_hardship(self, conn: Connection, who: Principal, request_id: int) -> Row:
        row = store.hardship(conn, request_id)
        if row is None or not self._handles(who, row.tenant_id):
            raise NotFound(f"no hardship request {request_id}")
        return row

    # --- personal data ------------------------------------------------------------------------

    def legal_representative(self, enterprise_id: int) -> dict[str, Any]:
        """The enterprise's legal representative in plaintext (the caller's right to it is checked at the edge)."""
        with self.engine.connect() as conn:
            row = store.enterprise_fields(conn, enterprise_id, tuple(ENTERPRISE_PII))
        if row is None:
            raise NotFound(f"no enterprise {enterprise_id}")
        return {"enterprise_id": enterprise_id} | {
            attr.removeprefix("legal_rep_"): self.cipher.decrypt(value, ctx) if value.startswith(PREFIX) else value
            for (attr, ctx), value in zip(ENTERPRISE_PII.items(), row, strict=True)}

    def plaintext_left(self) -> int:
        """Enterprise rows whose personal fields are not yet encrypted (written before 0013)."""
        with self.engine.connect() as conn:
            return store.count_plaintext_enterprises(conn, tuple(ENTERPRISE_PII))

    def reencrypt(self, batch: int = 500) -> dict[str, int]:
        """Rewrite every personal field not under the active key, and encrypt any still in plaintext
        (the legal representative's fields of rows written before migration 0013); counts per column."""
        counts: dict[str, int] = {}
        for (table, attr), context in ENCRYPTED_FIELDS.items():
            done = 0
            last = 0
            while True:
                with write_transaction(self.engine) as conn:
                    rows = store.encrypted_values(conn, table, attr, after=last, limit=batch)
                    for row_id, value in rows:
                        if not value.startswith(PREFIX):  # plaintext written before encryption (0013): seal it
                            store.set_encrypted_value(conn, table, attr, row_id, self.cipher.encrypt(value, context))
                            done += 1
                        elif self.cipher.needs_reencrypt(value):
                            store.set_encrypted_value(conn, table, attr, row_id, self.cipher.reencrypt(value, context))
                            done += 1
                if len(rows) < batch:
                    break
                last = rows[-1][0]
            counts[context] = done
        return counts

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _handles(who: Principal, tenant_id: int | None) -> bool:
        """Complaints and hardship requests are handled by the lender concerned or the operator."""
        return who.platform or (who.enterprise_id is None and who.tenant_id is not None and who.tenant_id == tenant_id)

    @staticmethod
    def _tenant_id(conn: Connection, code: str) -> int:
        found = store.tenant_id(conn, code)
        if found is None:
            raise NotFound(f"no tenant with code {code!r}")
        return int(found)

    def _emit(self, conn: Connection, event_type: str, payload: dict[str, Any], tenant_id: int | None,
              enterprise_id: int | None) -> None:
        if self.events is not None:
            self.events(conn, event_type, payload, tenant_id=tenant_id, enterprise_id=enterprise_id)

    def _complaint_json(self, row: Any, personal: bool) -> dict[str, Any]:
        data = dict(zip(store.COMPLAINT_KEYS, row, strict=False))  # the personal fields last, in reads by id only
        data["overdue"] = [deadline for deadline in store.DEADLINES if data.pop(f"late_{deadline}")]
        data["category_text"] = m.texts(data["category"], m.COMPLAINT_CATEGORIES)
        data["status_text"] = m.texts(data["status"], m.COMPLAINT_STATUSES)
        data["resolution_text"] = m.texts(data["resolution_code"], m.RESOLUTIONS)
        if personal:
            data["contact_name"] = self.cipher.decrypt(data.pop("contact_name_enc"), "complaints.contact_name")
            data["contact_phone"] = self.cipher.decrypt(data.pop("contact_phone_enc"), "complaints.contact_phone")
        return data

    def _hardship_json(self, row: Any, personal: bool) -> dict[str, Any]:
        data = dict(zip(store.HARDSHIP_KEYS, row, strict=False))  # the personal field last, in reads by id only
        data["reason_text"] = m.texts(data["reason_code"], m.HARDSHIP_REASONS)
        data["relief_text"] = m.texts(data["relief"], m.RELIEF_KINDS)
        data["status_text"] = m.texts(data["status"], m.HARDSHIP_STATUSES)
        if personal:
            data["contact_phone"] = self.cipher.decrypt(data.pop("contact_phone_enc"), "hardship_requests.contact_phone")
        return data

