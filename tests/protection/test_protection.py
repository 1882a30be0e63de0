"""Complaints (lifecycle, deadlines, overdue list, zh/en texts), hardship requests through the
relief port, personal fields encrypted at rest with key rotation, and log redaction."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from iotfin.client import ApiError
from iotfin.core.errors import ConfigError
from iotfin.identity.crypto import FieldCipher
from iotfin.identity.keyring import KeyRing
from iotfin.protection.redact import RedactingFilter, redact
from iotfin.protection.service import ApprovedRelief
from tests.openapi_world import World


def test_complaint_lifecycle_with_texts(world: World) -> None:
    firm, bank = world["ent_1"], world["a_officer"]
    c = firm.submit_complaint(category="collection", subject="calls at night", description="三次夜间催收电话",
                              tenant="bank-a", contact_name="王小明", contact_phone="13912345678")
    assert c["status"] == "submitted" and c["status_text"] == {"zh": "已提交，待受理", "en": "submitted, awaiting acknowledgement"}
    assert c["category_text"]["zh"] == "催收行为" and c["overdue"] == []
    submitted = datetime.fromisoformat(c["submitted_at"])
    assert datetime.fromisoformat(c["acknowledge_by"]) - submitted == timedelta(hours=24)
    assert datetime.fromisoformat(c["resolve_by"]) - submitted == timedelta(days=15)

    with pytest.raises(ApiError) as early:
        bank.resolve_complaint(c["id"], "not_upheld", "no")
    assert early.value.status == 409 and "投诉当前状态" in early.value.problem["detail"]
    assert bank.acknowledge_complaint(c["id"])["status"] == "acknowledged"
    assert bank.assign_complaint(c["id"], "consumer-protection desk")["assignee"] == "consumer-protection desk"
    assert bank.escalate_complaint(c["id"], "repeat complaint")["status"] == "escalated"
    done = bank.resolve_complaint(c["id"], "upheld_remedied", "collector retrained; fee refunded")
    assert done["status"] == "resolved" and done["resolution_text"]["zh"] == "投诉成立，已纠正并补救"
    assert firm.complaint(c["id"])["resolution_note"] == "collector retrained; fee refunded"
    with pytest.raises(ApiError) as twice:
        bank.resolve_complaint(c["id"], "withdrawn", "again")
    assert twice.value.status == 409
    with pytest.raises(ApiError) as bad_code:
        world["bank_a"].resolve_complaint(c["id"], "because", "x")
    assert bad_code.value.status == 422


def test_overdue_complaints_are_listed(world: World) -> None:
    ws = world.ws
    firm, bank = world["ent_1"], world["bank_a"]
    late_ack = firm.submit_complaint(category="pricing", subject="a", description="d", tenant="bank-a")
    acked = firm.submit_complaint(category="pricing", subject="b", description="d", tenant="bank-a")
    bank.acknowledge_complaint(acked["id"])
    resolved = firm.submit_complaint(category="pricing", subject="c", description="d", tenant="bank-a")
    bank.acknowledge_complaint(resolved["id"])
    bank.resolve_complaint(resolved["id"], "not_upheld", "fees as agreed")
    assert list(bank.complaints(overdue=True)) == []

    real_clock = ws.protection.clock
    ws.protection.clock = lambda: real_clock() + timedelta(days=2)
    overdue = {c["id"]: c["overdue"] for c in bank.complaints(overdue=True)}
    assert overdue == {late_ack["id"]: ["acknowledgement"]}
    ws.protection.clock = lambda: real_clock() + timedelta(days=16)
    overdue = {c["id"]: c["overdue"] for c in bank.complaints(overdue=True)}
    assert overdue == {late_ack["id"]: ["acknowledgement", "resolution"], acked["id"]: ["resolution"]}
    assert list(world["bank_b"].complaints(overdue=True)) == []  # another lender's overdue list is its own


def test_hardship_request_goes_to_the_relief_port(world: World) -> None:
    ws = world.ws
    firm, approver = world["ent_1"], world["a_approver"]
    h = firm.submit_hardship(tenant="bank-a", loan_ref="LN-2026-0042", reason_code="supply_chain", relief="deferral",
                             description="buyer paid 60 days late", contact_phone="+86 139 1234 5678")
    assert h["status"] == "submitted" and h["relief_status"] == "not_applicable"
    assert world["a_officer"].review_hardship(h["id"], "documents checked")["status"] == "under_review"
    approved = approver.decide_hardship(h["id"], True, "temporary cash-flow gap")
    assert approved["status"] == "approved" and approved["relief_status"] == "awaiting_lending"

    class LendingRelief:  # what the integrator wires: lending's relief path behind the port
        def __init__(self) -> None:
            self.applied: list[ApprovedRelief] = []

        def apply(self, relief: ApprovedRelief) -> str:
            self.applied.append(relief)
            return f"RELIEF-{relief.loan_ref}"

    port = LendingRelief()
    ws.protection.relief = port
    h2 = firm.submit_hardship(tenant="bank-a", loan_ref="LN-7", reason_code="illness", relief="fee_waiver",
                              description="owner hospitalised")
    done = approver.decide_hardship(h2["id"], True, "medical certificate provided")
    assert done["relief_status"] == "applied" and done["relief_ref"] == "RELIEF-LN-7"
    assert [(r.loan_ref, r.relief) for r in port.applied] == [("LN-7", "fee_waiver")]
    h3 = firm.submit_hardship(tenant="bank-a", loan_ref="LN-8", reason_code="other", relief="rate_reduction",
                              description="x")
    declined = approver.decide_hardship(h3["id"], False, "repayment capacity unchanged")
    assert declined["status_text"] == {"zh": "未获批准", "en": "declined"} and len(port.applied) == 1
    with pytest.raises(ApiError) as again:
        approver.decide_hardship(h3["id"], True, "changed mind")
    assert again.value.status == 409


def test_personal_fields_are_encrypted_at_rest_and_rotate(world: World) -> None:
    ws = world.ws
    firm = world["ent_1"]
    c = firm.submit_complaint(category="data_privacy", subject="s", description="d", tenant="bank-a",
                              contact_name="王小明", contact_phone="13912345678")
    with ws.engine.connect() as conn:
        name_enc, phone_enc = conn.execute(text("SELECT contact_name_enc, contact_phone_enc FROM complaints WHERE id = :i"),
                                           {"i": c["id"]}).one()
    assert name_enc.startswith("enc:v1:") and "王小明" not in name_enc and "13912345678" not in phone_enc
    old_kid = ws.pii.keys.active_kid
    assert ws.pii.key_id(phone_enc) == old_kid

    new_kid = KeyRing(ws.pii.keys.path).rotate()  # as `iotfin protection rotate-key` does, in another process
    counts = ws.protection.reencrypt()
    assert counts["complaints.contact_phone"] >= 1 and counts["complaints.contact_name"] >= 1
    with ws.engine.connect() as conn:
        phone_enc2 = conn.execute(text("SELECT contact_phone_enc FROM complaints WHERE id = :i"), {"i": c["id"]}).scalar_one()
    assert ws.pii.key_id(phone_enc2) == new_kid != old_kid
    assert ws.protection.reencrypt()["complaints.contact_phone"] == 0  # nothing left under the old key
    ws.pii.keys.retire(old_kid)
    assert firm.complaint(c["id"])["contact_phone"] == "13912345678"


def test_ciphertext_is_bound_to_its_column_and_key(tmp_path) -> None:  # noqa: ANN001
    cipher = FieldCipher(KeyRing(tmp_path / "k.json"))
    sealed = cipher.encrypt("110101199003071234", "complaints.contact_phone")
    assert cipher.decrypt(sealed, "complaints.contact_phone") == "110101199003071234"
    with pytest.raises(ConfigError, match="authenticate"):
        cipher.decrypt(sealed, "complaints.contact_name")  # moved to another column
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(ConfigError):
        cipher.decrypt(tampered, "complaints.contact_phone")
    other = FieldCipher(KeyRing(tmp_path / "other.json"))
    with pytest.raises(ConfigError, match="not in the key ring"):
        other.decrypt(sealed, "complaints.contact_phone")
    assert cipher.encrypt("x", "c") != cipher.encrypt("x", "c")  # fresh nonce each time


SECRETS = {
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbGllbnQ6aWNfMSJ9.c2lnbmF0dXJl": "eyJ",
    "client_secret=ics_AbCdEfGhIjKlMnOpQrStUvWx&grant_type=client_credentials": "ics_AbCd",
    '{"password": "correct horse battery"}': "correct horse",
    "legal rep ID 11010519491231002X registered": "11010519491231002X",
    "call 13912345678 or +86 139-1234-5678": "13912345678",
    "Iotfin-Signature: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd": "5257a869",
    "webhook secret whsec_AbCdEfGhIjKlMnOp created": "whsec_AbCd",
}


@pytest.mark.parametrize("line", list(SECRETS))
def test_redaction_filter(line: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("iotfin.test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("request: %s", line)
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert SECRETS[line] not in written and "[REDACTED]" in written


def test_redaction_keeps_ordinary_text_and_uvicorn_access_records() -> None:
    plain = "lien 42 placed by bank-a for 125000.00 yuan on 2026-03-01, invoice 01234567"
    assert redact(plain) == plain
    # uvicorn's access formatter unpacks args: the record must keep its tuple shape
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/api/v1/tok_x?token=secret123456", "1.1", 200), None)
    RedactingFilter().filter(record)
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert "secret123456" not in record.getMessage() and record.args[4] == 200


def test_submission_validation(world: World) -> None:
    http, h = world.http, world.headers("ent_1")
    base = {"category": "pricing", "subject": "s", "description": "d", "tenant": "bank-a"}
    for bad in ({"category": "vibes"}, {"subject": ""}, {"contact_phone": "call me maybe"}, {"tenant": "x" * 65},
                {"enterprise_id": 2}):
        r = http.post("/api/v1/complaints", json=base | bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    r = http.post("/api/v1/hardship-requests", json={"tenant": "bank-a", "loan_ref": "L", "reason_code": "x",
                                                     "relief": "deferral", "description": "d"}, headers=h)
    assert r.status_code == 422


def test_deadline_settings_are_used(world: World) -> None:
    ws = world.ws
    ws.protection.ack_hours, ws.protection.resolve_days = 2, 7
    c = world["ent_1"].submit_complaint(category="other", subject="s", description="d", tenant="bank-a")
    t0 = datetime.fromisoformat(c["submitted_at"])
    assert datetime.fromisoformat(c["acknowledge_by"]) - t0 == timedelta(hours=2)
    assert datetime.fromisoformat(c["resolve_by"]) - t0 == timedelta(days=7)
    assert t0.tzinfo is not None and t0.utcoffset() == UTC.utcoffset(None)


def test_complaint_pages_for_every_kind_of_caller(world: World) -> None:
    firm, other = world["ent_1"], world["ent_2"]
    mine = [firm.submit_complaint(category="pricing", subject=f"s{i}", description="d", tenant="bank-a")["id"]
            for i in range(5)]
    theirs = other.submit_complaint(category="pricing", subject="t", description="d", tenant="bank-b")["id"]
    # two items a page: the cursor walks three pages, each caller sees its own rows once, in order
    assert [c["id"] for c in world["bank_a"].complaints(limit=2)] == mine
    assert [c["id"] for c in world["bank_b"].complaints(limit=2)] == [theirs]
    assert [c["id"] for c in firm.complaints(limit=2)] == mine
    assert [c["id"] for c in world["ops"].complaints(limit=2)] == [*mine, theirs]
    page = next(iter(world["bank_a"].complaints(limit=2)))
    assert "contact_name" not in page and "contact_name_enc" not in page  # personal data only in a read by id
    assert page == {k: v for k, v in firm.complaint(mine[0]).items() if k not in ("contact_name", "contact_phone")}


def test_deadlines_are_missed_only_after_the_due_time(world: World) -> None:
    ws = world.ws
    firm, bank = world["ent_1"], world["bank_a"]
    c = firm.submit_complaint(category="pricing", subject="s", description="d", tenant="bank-a")
    ack_due, resolve_due = datetime.fromisoformat(c["acknowledge_by"]), datetime.fromisoformat(c["resolve_by"])
    assert ack_due.tzinfo == UTC and ack_due.microsecond == datetime.fromisoformat(c["submitted_at"]).microsecond
    for now, late in [(ack_due, []), (ack_due + timedelta(microseconds=1), ["acknowledgement"]),
                      (resolve_due, ["acknowledgement"]),
                      (resolve_due + timedelta(microseconds=1), ["acknowledgement", "resolution"])]:
        ws.protection.clock = lambda now=now: now
        assert firm.complaint(c["id"])["overdue"] == late
        assert [x["overdue"] for x in bank.complaints(overdue=True)] == ([late] if late else [])
    bank.acknowledge_complaint(c["id"])  # acknowledged late: only the resolution deadline is left to miss
    assert firm.complaint(c["id"])["overdue"] == ["resolution"]
