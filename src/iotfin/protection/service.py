"""Customer-protection use cases: the complaint lifecycle with deadlines, hardship requests feeding
the lending relief path (through `ReliefPort`), and re-encryption of personal fields after a key
rotation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Engine, Select, and_, bindparam, func, insert, or_, select, update

from iotfin.core.errors import IotfinError, NotFound, ValidationError
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams, fetch_page, keyset_page
from iotfin.db.types import UTCDateTime, utc_iso
from iotfin.identity.access import visibility, visible_rows
from iotfin.identity.crypto import PREFIX, FieldCipher
from iotfin.identity.model import Principal
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.protection import model as m
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
            if enterprise_id is not None and conn.execute(select(Enterprise.id).where(Enterprise.id == enterprise_id)).first() is None:
                raise NotFound(f"no enterprise {enterprise_id}")
            cid = conn.execute(insert(Complaint).values(
                tenant_id=tenant_id, enterprise_id=enterprise_id, category=category, subject=subject,
                description=description, submitted_by=who.subject, status="submitted", submitted_at=now,
                ack_due_at=due.acknowledge_by, resolve_due_at=due.resolve_by,
                contact_name_enc=self.cipher.encrypt(contact_name, "complaints.contact_name"),
                contact_phone_enc=self.cipher.encrypt(contact_phone, "complaints.contact_phone"),
            ).returning(Complaint.id)).scalar_one()
            self._emit(conn, "complaint.updated", {"complaint_id": cid, "status": "submitted"}, tenant_id, enterprise_id)
        return self.complaint(who, cid)

    def complaint(self, who: Principal, complaint_id: int) -> dict[str, Any]:
        kind, owner = visibility(who)
        with self.engine.connect() as conn:
            row = conn.execute(_complaints_query(kind, by_id=True),
                               {"id": complaint_id, "owner": owner, "now": self.clock()}).first()
        if row is None:
            raise NotFound(f"no complaint {complaint_id}")
        return self._complaint_json(row, personal=True)

    def complaints(self, who: Principal, page: PageParams, status: str | None = None,
                   overdue_only: bool = False) -> tuple[list[dict[str, Any]], str | None]:
        kind, owner = visibility(who)
        stmt = _complaints_query(kind, by_status=bool(status), overdue_only=overdue_only, after=page.after is not None)
        with self.engine.connect() as conn:
            rows, cursor = fetch_page(conn, stmt, {"owner": owner, "status": status, "now": self.clock()}, page)
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
            row = conn.execute(select(Complaint).where(Complaint.id == complaint_id)).first()
            if row is None or not self._handles(who, row.tenant_id):
                raise NotFound(f"no complaint {complaint_id}")
            status = m.complaint_transition(row.status, action)
            conn.execute(update(Complaint).where(Complaint.id == complaint_id).values(status=status, **values))
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
            hid = conn.execute(insert(HardshipRequest).values(
                tenant_id=tenant_id, enterprise_id=enterprise_id, loan_ref=loan_ref, reason_code=reason_code,
                relief=relief, description=description, submitted_by=who.subject, status="submitted",
                submitted_at=self.clock(), relief_status="not_applicable",
                contact_phone_enc=self.cipher.encrypt(contact_phone, "hardship_requests.contact_phone"),
            ).returning(HardshipRequest.id)).scalar_one()
        return self.hardship(who, hid)

    def hardship(self, who: Principal, request_id: int) -> dict[str, Any]:
        kind, owner = visibility(who)
        with self.engine.connect() as conn:
            row = conn.execute(_hardship_query(kind, by_id=True), {"id": request_id, "owner": owner}).first()
        if row is None:
            raise NotFound(f"no hardship request {request_id}")
        return self._hardship_json(row, personal=True)

    def hardship_requests(self, who: Principal, page: PageParams,
                          status: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        kind, owner = visibility(who)
        stmt = _hardship_query(kind, by_status=bool(status), after=page.after is not None)
        with self.engine.connect() as conn:
            rows, cursor = fetch_page(conn, stmt, {"owner": owner, "status": status}, page)
        return [self._hardship_json(r, personal=False) for r in rows], cursor

    def review_hardship(self, who: Principal, request_id: int, note: str) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            row = self._lender_hardship(conn, who, request_id)
            status = m.hardship_transition(row.status, "review")
            conn.execute(update(HardshipRequest).where(HardshipRequest.id == request_id)
                         .values(status=status, reviewer=who.subject, review_note=note))
        return self.hardship(who, request_id)

    def decide_hardship(self, who: Principal, request_id: int, approve: bool, reason: str) -> dict[str, Any]:
        """Approve or decline (with a reason the enterprise reads). An approval goes to lending's
        relief path when one is wired; until then it waits there as `awaiting_lending`."""
        with write_transaction(self.engine) as conn:
            row = self._lender_hardship(conn, who, request_id)
            status = m.hardship_transition(row.status, "approve" if approve else "decline")
            relief_status = "awaiting_lending" if approve else "not_applicable"
            conn.execute(update(HardshipRequest).where(HardshipRequest.id == request_id).values(
                status=status, decided_by=who.subject, decided_at=self.clock(), decision_reason=reason,
                relief_status=relief_status))
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
                    conn.execute(update(HardshipRequest).where(HardshipRequest.id == request_id)
                                 .values(relief_ref=f"refused: {exc}"[:100]))
            else:
                if ref is not None:
                    with self.engine.begin() as conn:
                        conn.execute(update(HardshipRequest).where(HardshipRequest.id == request_id)
                                     .values(relief_status="applied", relief_ref=ref[:100]))
        return self.hardship(who, request_id)

    def _lender_hardship(self, conn: Any, who: Principal, request_id: int) -> Any:
        row = conn.execute(select(HardshipRequest).where(HardshipRequest.id == request_id)).first()
        if row is None or not self._handles(who, row.tenant_id):
            raise NotFound(f"no hardship request {request_id}")
        return row

    # --- personal data ------------------------------------------------------------------------

    def legal_representative(self, enterprise_id: int) -> dict[str, Any]:
        """The enterprise's legal representative in plaintext (the caller's right to it is checked at the edge)."""
        columns = [getattr(Enterprise, attr) for attr in ENTERPRISE_PII]
        with self.engine.connect() as conn:
            row = conn.execute(select(*columns).where(Enterprise.id == enterprise_id)).first()
        if row is None:
            raise NotFound(f"no enterprise {enterprise_id}")
        return {"enterprise_id": enterprise_id} | {
            attr.removeprefix("legal_rep_"): self.cipher.decrypt(value, ctx) if value.startswith(PREFIX) else value
            for (attr, ctx), value in zip(ENTERPRISE_PII.items(), row, strict=True)}

    def plaintext_left(self) -> int:
        """Enterprise rows whose personal fields are not yet encrypted (written before 0013)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Enterprise).where(or_(
                *(getattr(Enterprise, a).not_like(f"{PREFIX}%") for a in ENTERPRISE_PII)))).scalar_one()

    def reencrypt(self, batch: int = 500) -> dict[str, int]:
        """Rewrite every personal field not under the active key, and encrypt any still in plaintext
        (the legal representative's fields of rows written before migration 0013); counts per column."""
        counts: dict[str, int] = {}
        for (table, attr), context in ENCRYPTED_FIELDS.items():
            column = getattr(table, attr)
            done = 0
            last = 0
            while True:
                with write_transaction(self.engine) as conn:
                    rows = conn.execute(select(table.id, column).where(table.id > last, column.is_not(None))
                                        .order_by(table.id).limit(batch)).all()
                    for row_id, value in rows:
                        if not value.startswith(PREFIX):  # plaintext written before encryption (0013): seal it
                            conn.execute(update(table).where(table.id == row_id)
                                         .values({attr: self.cipher.encrypt(value, context)}))
                            done += 1
                        elif self.cipher.needs_reencrypt(value):
                            conn.execute(update(table).where(table.id == row_id)
                                         .values({attr: self.cipher.reencrypt(value, context)}))
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
    def _tenant_id(conn: Any, code: str) -> int:
        found = conn.execute(select(Tenant.id).where(Tenant.code == code)).scalar()
        if found is None:
            raise NotFound(f"no tenant with code {code!r}")
        return int(found)

    def _emit(self, conn: Any, event_type: str, payload: dict[str, Any], tenant_id: int | None,
              enterprise_id: int | None) -> None:
        if self.events is not None:
            self.events(conn, event_type, payload, tenant_id=tenant_id, enterprise_id=enterprise_id)

    def _complaint_json(self, row: Any, personal: bool) -> dict[str, Any]:
        data = dict(zip(_COMPLAINT_KEYS, row, strict=False))  # the personal fields last, in reads by id only
        data["overdue"] = [deadline for deadline in _LATE if data.pop(f"late_{deadline}")]
        data["category_text"] = m.texts(data["category"], m.COMPLAINT_CATEGORIES)
        data["status_text"] = m.texts(data["status"], m.COMPLAINT_STATUSES)
        data["resolution_text"] = m.texts(data["resolution_code"], m.RESOLUTIONS)
        if personal:
            data["contact_name"] = self.cipher.decrypt(data.pop("contact_name_enc"), "complaints.contact_name")
            data["contact_phone"] = self.cipher.decrypt(data.pop("contact_phone_enc"), "complaints.contact_phone")
        return data

    def _hardship_json(self, row: Any, personal: bool) -> dict[str, Any]:
        data = dict(zip(_HARDSHIP_KEYS, row, strict=False))  # the personal field last, in reads by id only
        data["reason_text"] = m.texts(data["reason_code"], m.HARDSHIP_REASONS)
        data["relief_text"] = m.texts(data["relief"], m.RELIEF_KINDS)
        data["status_text"] = m.texts(data["status"], m.HARDSHIP_STATUSES)
        if personal:
            data["contact_phone"] = self.cipher.decrypt(data.pop("contact_phone_enc"), "hardship_requests.contact_phone")
        return data


# --- reads -------------------------------------------------------------------------------------
# A read is one statement per kind of caller and filter, built once (`functools.cache`) and run with
# the caller's values as bound parameters; the rows come back with the API's field names and the
# timestamps already in RFC 3339 (`utc_iso`). Measured on a 20-item complaints page: building the
# statement per request, SQLAlchemy's result map for ORM-annotated columns and a datetime parsed and
# formatted per cell were three quarters of the service's CPU (bench/api_read.py, docs/benchmarks.md).

_C = Complaint.__table__.c
_H = HardshipRequest.__table__.c
_OWNER = bindparam("owner")
_NOW = bindparam("now", type_=UTCDateTime())

#: A complaint's deadlines, as SQL so that a page both reports and filters on them: acknowledgement
#: is late while a submitted complaint is unacknowledged past its due time; resolution is late while
#: the complaint is unresolved past its due time.
_LATE = {
    "acknowledgement": and_(_C.status == "submitted", _C.acknowledged_at.is_(None), _C.ack_due_at < _NOW),
    "resolution": and_(_C.status != "resolved", _C.resolve_due_at < _NOW),
}
_COMPLAINT_FIELDS = (
    _C.id, _C.tenant_id, _C.enterprise_id, _C.category, _C.subject, _C.description, _C.status,
    utc_iso(_C.submitted_at).label("submitted_at"), utc_iso(_C.ack_due_at).label("acknowledge_by"),
    utc_iso(_C.resolve_due_at).label("resolve_by"), utc_iso(_C.acknowledged_at).label("acknowledged_at"),
    _C.assignee, utc_iso(_C.escalated_at).label("escalated_at"), _C.escalation_reason,
    utc_iso(_C.resolved_at).label("resolved_at"), _C.resolution_code, _C.resolution_text.label("resolution_note"),
    *(late.label(f"late_{deadline}") for deadline, late in _LATE.items()),
)
_HARDSHIP_FIELDS = (
    _H.id, _H.tenant_id, _H.enterprise_id, _H.loan_ref, _H.reason_code, _H.relief, _H.description, _H.status,
    utc_iso(_H.submitted_at).label("submitted_at"), _H.reviewer, _H.review_note, _H.decided_by,
    utc_iso(_H.decided_at).label("decided_at"), _H.decision_reason, _H.relief_status, _H.relief_ref,
)

_COMPLAINT_PERSONAL = (_C.contact_name_enc, _C.contact_phone_enc)
_HARDSHIP_PERSONAL = (_H.contact_phone_enc,)
# Row -> dict by position: SQLAlchemy's Row._asdict rebuilds its key list for every row.
_COMPLAINT_KEYS = tuple(column.key for column in (*_COMPLAINT_FIELDS, *_COMPLAINT_PERSONAL))
_HARDSHIP_KEYS = tuple(column.key for column in (*_HARDSHIP_FIELDS, *_HARDSHIP_PERSONAL))


@cache
def _complaints_query(kind: str, *, by_id: bool = False, by_status: bool = False, overdue_only: bool = False,
                      after: bool = False) -> Select:
    """Complaints a caller of this `visibility` kind sees: one by `id` (with the encrypted contact
    fields), or a page (`status`, overdue only)."""
    stmt = select(*_COMPLAINT_FIELDS, *_COMPLAINT_PERSONAL) if by_id else select(*_COMPLAINT_FIELDS)
    stmt = _visible(stmt, kind, _C, by_id, by_status)
    if overdue_only:
        stmt = stmt.where(or_(*_LATE.values()))
    return stmt if by_id else keyset_page(stmt, _C.id, after=after)


@cache
def _hardship_query(kind: str, *, by_id: bool = False, by_status: bool = False, after: bool = False) -> Select:
    """Hardship requests a caller of this `visibility` kind sees: one by `id` (with the encrypted
    phone), or a page (`status`)."""
    stmt = select(*_HARDSHIP_FIELDS, *_HARDSHIP_PERSONAL) if by_id else select(*_HARDSHIP_FIELDS)
    stmt = _visible(stmt, kind, _H, by_id, by_status)
    return stmt if by_id else keyset_page(stmt, _H.id, after=after)


def _visible(stmt: Select, kind: str, table: Any, by_id: bool, by_status: bool) -> Select:
    clause = visible_rows(kind, _OWNER, table.tenant_id, table.enterprise_id)
    if clause is not None:
        stmt = stmt.where(clause)
    if by_id:
        stmt = stmt.where(table.id == bindparam("id"))
    if by_status:
        stmt = stmt.where(table.status == bindparam("status"))
    return stmt
