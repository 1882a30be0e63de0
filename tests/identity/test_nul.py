"""The NUL character (U+0000) is refused at the edge with a 422 problem, on SQLite and PostgreSQL
(which cannot store it in text): in every text field of the financing registry, in any JSON body of
every endpoint that takes one, in query parameters and in the path. Nothing is stored."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from sqlalchemy import text

from iotfin.db.pagination import encode_cursor
from tests.identity.test_matrix_all import MATRIX
from tests.openapi_world import World, uscc

ASSET = {"kind": "receivable", "invoice_code": "044031900111", "invoice_number": "00012345",
         "seller_uscc": uscc(1), "buyer_uscc": uscc(2), "amount": "1000.00"}
LIEN = {"asset": ASSET, "tenant": "bank-a", "financing_ref": "F-NUL", "amount": "100.00", "registration_no": "R-1"}


def _problem(r: Any) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "NUL" in r.json()["detail"]


def _liens(world: World) -> int:
    with world.ws.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM liens")).scalar_one()


@pytest.mark.parametrize("field", ["invoice_code", "invoice_number", "seller_uscc", "buyer_uscc", "financing_ref",
                                   "registration_no", "tenant"])
def test_financing_text_fields_refuse_nul(shared_world: World, field: str) -> None:
    before = _liens(shared_world)
    body = {**LIEN, "asset": dict(ASSET)}
    if field in ASSET:
        body["asset"][field] = ASSET[field] + "\x00"
    else:
        body[field] = LIEN[field] + "\x00"
    h = shared_world.headers("bank_a")
    _problem(shared_world.http.post("/api/v1/financing/liens", json=body, headers=h))
    if field in ASSET:
        _problem(shared_world.http.post("/api/v1/financing/fingerprints", json=body["asset"], headers=h))
    assert _liens(shared_world) == before
    asset = ASSET | {"invoice_number": f"{zlib.crc32(field.encode()) % 10**8:08d}"}
    ok = shared_world.http.post("/api/v1/financing/liens", json=LIEN | {"asset": asset}, headers=h)
    assert ok.status_code in (201, 409), ok.text  # the same text without the NUL goes through


@pytest.mark.parametrize("key", [k for k in MATRIX if k[0] != "GET" and isinstance(MATRIX[k][0], dict)],
                         ids=lambda k: f"{k[0]} {k[1]}")
def test_every_json_body_refuses_nul(shared_world: World, key: tuple[str, str]) -> None:
    method, template = key
    path = template.format(loan=1, app=1, alert=1, grant=1, c_a=1, c_ack=1, h_a=1, fp="x", lien=1, sub=1, delivery=1,
                           device=1, name="default", version=1, record_type="lien", record_id=1, enterprise_id=1,
                           device_name="d", offer=1, line=1, code="bank-a", voucher=1, part=1)
    body = {"note": "a\x00b", "nested": [{"k\x00": "v"}]}
    _problem(shared_world.http.request(method, path, json=body, headers=shared_world.headers("ops")))


def test_query_and_path_refuse_nul(shared_world: World) -> None:
    h = shared_world.headers("ops")
    _problem(shared_world.http.get("/api/v1/complaints", params={"status": "sub\x00mitted"}, headers=h))
    _problem(shared_world.http.get("/api/v1/decision-strategies/de%00fault", headers=h))
    # a literal backslash-u-0000 is ordinary text, not a NUL
    r = shared_world.http.post("/api/v1/complaints", headers=shared_world.headers("ent_1"), json={
        "category": "other", "subject": "\\u0000", "description": "d", "tenant": "bank-a"})
    assert r.status_code == 201 and r.json()["subject"] == "\\u0000"


def test_ids_beyond_64_bits_are_refused_not_500(shared_world: World) -> None:
    huge = 10**20
    for who in ("ops", "bank_a"):
        h = shared_world.headers(who)
        for path in (f"/api/v1/lending/loans/{huge}", f"/api/v1/credit-applications/{huge}",
                     f"/api/v1/monitor/alerts/{huge}", f"/api/v1/consents/{huge}", f"/api/v1/complaints/{huge}",
                     f"/api/v1/consents/access-log?enterprise_id={huge}",
                     f"/api/v1/complaints?cursor={encode_cursor(huge)}",
                     f"/api/v1/monitor/alerts?cursor={encode_cursor(huge)}",
                     f"/api/v1/consents/access-log?enterprise_id=1&cursor={encode_cursor(huge)}"):
            r = shared_world.http.get(path, headers=h)
            assert r.status_code in (404, 422), (who, path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
