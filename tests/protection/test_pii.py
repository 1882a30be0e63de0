"""The legal representative's personal data at rest, on SQLite and PostgreSQL: plaintext rows from
before migration 0013 are encrypted when the workspace is initialised, the columns hold AES-GCM
ciphertext, key rotation re-encrypts them, the API returns plaintext to the enterprise, the operator
and a consented lender only, and none of it reaches the logs."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from sqlalchemy import insert, text

from iotfin.core.errors import ConfigError
from iotfin.identity.crypto import PREFIX
from iotfin.identity.tables import Enterprise
from iotfin.protection.service import seal_enterprise
from tests.openapi_world import World, enterprise_row

NAME, PHONE = "李四", "13900000000"


def _stored(world: World, enterprise_id: int) -> tuple[str, str, str]:
    with world.ws.engine.connect() as conn:
        return tuple(conn.execute(text("SELECT legal_rep_name, legal_rep_id_number, legal_rep_phone FROM enterprises "
                                       "WHERE id = :i"), {"i": enterprise_id}).one())


def test_encrypted_at_rest_plaintext_to_authorised_callers(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert _stored(world, 1)[0] == NAME  # written in plaintext, as before 0013
    world.ws.initialise()  # the upgrade path seals what is left in plaintext
    stored = _stored(world, 1)
    assert all(v.startswith(PREFIX) for v in stored) and NAME not in "".join(stored) and PHONE not in "".join(stored)
    assert world.ws.protection.plaintext_left() == 0

    path = "/api/v1/enterprises/1/legal-representative"
    for who in ("ent_1", "e1_admin", "ops", "admin"):
        r = world.http.get(path, headers=world.headers(who))
        assert r.status_code == 200 and r.json() == {"enterprise_id": 1, "name": NAME, "id_number": "x",
                                                     "phone": PHONE}, who
    assert world.http.get(path, headers=world.headers("ent_2")).status_code == 404
    assert world.http.get(path, headers=world.headers("a_auditor")).status_code == 403  # no pii:read
    refused = world.http.get(path, headers=world.headers("bank_a"))
    assert refused.status_code == 403 and "business_registration" in refused.json()["detail"]
    world.http.post("/api/v1/consents", headers=world.headers("ent_1"), json={
        "enterprise_id": 1, "recipient": "bank-a", "purpose": "credit_assessment",
        "scopes": ["business_registration"], "window_start": str(date(2020, 1, 1))}).raise_for_status()
    assert world.http.get(path, headers=world.headers("bank_a")).json()["phone"] == PHONE
    log = world.http.get("/api/v1/consents/access-log?enterprise_id=1", headers=world.headers("ent_1")).json()
    assert [(e["recipient"], e["scope"], e["allowed"]) for e in log["items"]] == [
        ("bank-a", "business_registration", False), ("bank-a", "business_registration", True)]

    # rotation: the re-encrypt job moves every field to the new key, and they still decrypt
    old_kid = world.ws.pii.keys.active_kid
    new_kid = world.ws.pii.keys.rotate()
    counts = world.ws.protection.reencrypt()
    assert counts["enterprises.legal_rep_name"] == 2 and new_kid != old_kid
    assert all(world.ws.pii.key_id(v) == new_kid for v in _stored(world, 1))
    world.ws.pii.keys.retire(old_kid)
    assert world.http.get(path, headers=world.headers("ops")).json()["name"] == NAME

    assert NAME not in caplog.text and PHONE not in caplog.text


def test_writers_store_ciphertext_and_a_value_moved_to_another_column_does_not_decrypt(world: World) -> None:
    row = seal_enterprise(world.ws.pii, enterprise_row(3) | {"legal_rep_name": "王五", "legal_rep_phone": "13700000000"})
    assert row["legal_rep_name"].startswith(PREFIX) and row["name"] == "企业3"
    assert seal_enterprise(world.ws.pii, row) == row  # sealing twice changes nothing
    with world.ws.engine.begin() as conn:
        conn.execute(insert(Enterprise).values(row | {"legal_rep_id_number": row["legal_rep_phone"]}))
    # the phone's ciphertext copied into the ID-number column is refused: its associated data is the column
    with pytest.raises(ConfigError, match="id_number: ciphertext does not authenticate"):
        world.ws.protection.legal_representative(3)
