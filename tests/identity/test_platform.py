"""API platform: idempotency keys, pagination, /metrics, body limits, hostile text, and the Python
client checked against the OpenAPI document."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from iotfin.client import OPERATIONS, ApiError
from iotfin.protection.tables import Complaint
from tests.openapi_world import World

COMPLAINT = {"category": "pricing", "subject": "fee", "description": "charged twice", "tenant": "bank-a"}


def _count(world: World) -> int:
    with world.ws.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Complaint)).scalar_one()


def test_idempotency_key_replays_and_detects_conflicts(shared_world: World) -> None:
    w, h = shared_world, shared_world.headers("ent_1")
    before = _count(w)
    first = w.http.post("/api/v1/complaints", json=COMPLAINT, headers=h | {"Idempotency-Key": "k-1"})
    again = w.http.post("/api/v1/complaints", json=COMPLAINT, headers=h | {"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert _count(w) == before + 1
    changed = w.http.post("/api/v1/complaints", json=COMPLAINT | {"subject": "other"}, headers=h | {"Idempotency-Key": "k-1"})
    assert changed.status_code == 409 and "different request" in changed.json()["detail"]
    # the same key from another caller is that caller's own key
    other = w.http.post("/api/v1/complaints", json=COMPLAINT, headers=w.headers("ent_2") | {"Idempotency-Key": "k-1"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    # a refused request stores nothing: corrected, it can go through with the same key
    bad = w.http.post("/api/v1/complaints", json=COMPLAINT | {"tenant": "no-such-bank"}, headers=h | {"Idempotency-Key": "k-2"})
    assert bad.status_code == 404
    fixed = w.http.post("/api/v1/complaints", json=COMPLAINT, headers=h | {"Idempotency-Key": "k-2"})
    assert fixed.status_code == 201
    assert _count(w) == before + 3
    too_long = w.http.post("/api/v1/complaints", json=COMPLAINT, headers=h | {"Idempotency-Key": "x" * 201})
    assert too_long.status_code == 422


def test_idempotent_lien_through_the_client(shared_world: World) -> None:
    api = shared_world["bank_a"]
    asset = {"kind": "equipment", "manufacturer": "LiuGong", "serial": "IDEM-1"}
    first = api.place_lien(asset, "bank-a", "F-IDEM", "500.00", idempotency_key="lien-IDEM-1")
    again = api.place_lien(asset, "bank-a", "F-IDEM", "500.00", idempotency_key="lien-IDEM-1")
    assert again == first
    status = api.asset_status(first["fingerprint"])
    assert [a["outcome"] for a in status["attempts"]] == ["placed"]  # the retry did not run a second time
    with pytest.raises(ApiError) as refused:
        api.place_lien(asset, "bank-a", "F-IDEM", "500.00", idempotency_key="lien-IDEM-2")
    assert refused.value.status == 409 and refused.value.problem["type"].endswith("/double-financing")


def test_pagination_walks_every_item_once(shared_world: World) -> None:
    api = shared_world["ent_2"]
    mine = {api.submit_complaint(category="service", subject=f"p{i}", description="d", tenant="bank-b")["id"]
            for i in range(5)}
    page1 = shared_world.http.get("/api/v1/complaints?limit=2", headers=shared_world.headers("ent_2")).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    listed = [c["id"] for c in api.complaints(limit=2)]
    assert len(listed) == len(set(listed)) and mine <= set(listed)
    assert listed == sorted(listed)
    for bad in ("not-a-cursor", "aWQ6eA", "'; DROP TABLE complaints;--"):
        r = shared_world.http.get("/api/v1/complaints", params={"cursor": bad}, headers=shared_world.headers("ent_2"))
        assert r.status_code == 422, (bad, r.text)
    assert shared_world.http.get("/api/v1/complaints?limit=0", headers=shared_world.headers("ent_2")).status_code == 422
    assert shared_world.http.get("/api/v1/complaints?limit=201", headers=shared_world.headers("ent_2")).status_code == 422


def test_metrics_count_requests_by_route_template(shared_world: World) -> None:
    w = shared_world
    cid = w["ent_1"].submit_complaint(**{k: v for k, v in COMPLAINT.items()})["id"]
    w["ent_1"].complaint(cid)
    text = w.http.get("/metrics").text
    assert 'iotfin_http_requests_total{method="GET",route="/api/v1/complaints/{complaint_id}",status="200"}' in text
    assert 'iotfin_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/api/v1/complaints"}' in text
    assert f"/api/v1/complaints/{cid}\"" not in text  # raw paths never become labels


INJECTIONS = [
    "'; DROP TABLE complaints; --",
    "1' OR '1'='1",
    '{"$ne": null}',
    '"},"status":"resolved","x":{"',
    "<script>alert(1)</script>",
    "\\u0000 \\x00 %00",
    "😀 投诉 ‮reversed",
    "${jndi:ldap://x/a}",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_hostile_text_is_stored_verbatim(shared_world: World, text: str) -> None:
    api = shared_world["ent_1"]
    c = api.submit_complaint(category="other", subject=text[:200], description=text, tenant="bank-a",
                             contact_name=text[:100])
    back = api.complaint(c["id"])
    assert (back["subject"], back["description"], back["contact_name"], back["status"]) == (text[:200], text, text[:100], "submitted")
    subs = api.subscribe("https://firm-1.example/h", ["ping"], description=text[:200])
    assert subs["description"] == text[:200]
    with shared_world.ws.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM complaints").scalar_one() >= 1  # table still there


def test_nul_and_control_characters_are_refused_not_500(shared_world: World) -> None:
    h = shared_world.headers("ent_1")
    r = shared_world.http.post("/api/v1/complaints", json=COMPLAINT | {"description": "a\x00b"}, headers=h)
    assert r.status_code == 422, r.text


def test_oversized_bodies(shared_world: World) -> None:
    h = shared_world.headers("ent_1") | {"content-type": "application/json"}
    huge = json.dumps(COMPLAINT | {"description": "x" * (2 << 20)})
    r = shared_world.http.post("/api/v1/complaints", content=huge, headers=h)
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 65536

    streamed = shared_world.http.post("/api/v1/complaints", content=chunks(), headers=h)
    assert streamed.status_code == 413, streamed.text
    long_field = shared_world.http.post("/api/v1/complaints", json=COMPLAINT | {"description": "x" * 4001}, headers=h)
    assert long_field.status_code == 422


def test_client_operations_exist_in_the_openapi_document(shared_world: World) -> None:
    spec = shared_world.http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    missing = [(m, p) for m, p in OPERATIONS if m not in spec["paths"].get(p, {})]
    assert missing == []
    # and the request bodies the client sends are the ones the spec names
    body = spec["paths"]["/api/v1/complaints"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    props = spec["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]
    assert set(props) == {"category", "subject", "description", "tenant", "enterprise_id", "contact_name", "contact_phone"}
