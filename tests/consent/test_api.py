"""Consent over HTTP: grant (201), check (logged), withdraw (next check refused), problems for bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from tests.consent.conftest import add_enterprises
from tests.openapi_world import operator_headers

GRANT = {"enterprise_id": 1, "recipient": "bank-a", "purpose": "credit_assessment",
         "scopes": ["telemetry:energy", "trade_documents"], "window_start": "2026-01-01"}
CHECK = {"recipient": "bank-a", "enterprise_id": 1, "scope": "telemetry:energy", "purpose": "credit_assessment",
         "data_start": "2026-06-01", "data_end": "2026-11-30"}


@pytest.fixture
def client(workspace: Workspace) -> TestClient:
    add_enterprises(workspace.engine, [1, 2])
    return TestClient(create_app(workspace), headers=operator_headers(workspace))


def test_grant_check_withdraw_log(client: TestClient) -> None:
    created = client.post("/api/v1/consents", json=GRANT)
    assert created.status_code == 201, created.text
    g = created.json()
    assert g["status"] == "active" and g["scope_labels"]["telemetry:energy"]["zh"] == "用电数据"
    assert g["window_end"] == g["expires_at"][:10]
    assert client.post("/api/v1/consents/check", json=CHECK).json()["allowed"] is True
    assert client.get("/api/v1/consents", params={"enterprise_id": 1}).json()["items"][0]["id"] == g["id"]

    assert client.post(f"/api/v1/consents/{g['id']}/reconfirm", json={"enterprise_id": 1}).status_code == 200
    withdrawn = client.post(f"/api/v1/consents/{g['id']}/withdraw", json={"enterprise_id": 1})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    refused = client.post("/api/v1/consents/check", json=CHECK).json()
    assert refused == {"allowed": False, "reason": "withdrawn", "grant_id": g["id"], "reason_zh": "授权已撤回",
                       "reason_en": "consent has been withdrawn"}
    twice = client.post(f"/api/v1/consents/{g['id']}/withdraw", json={"enterprise_id": 1})
    assert twice.status_code == 422 and twice.headers["content-type"].startswith("application/problem+json")

    log = client.get("/api/v1/consents/access-log", params={"enterprise_id": 1, "limit": 1}).json()
    assert log["items"][0]["allowed"] is True and log["next_cursor"]
    rest = client.get("/api/v1/consents/access-log", params={"enterprise_id": 1, "cursor": log["next_cursor"]}).json()
    assert [r["reason"] for r in rest["items"]] == ["withdrawn"] and rest["next_cursor"] is None
    assert client.get("/api/v1/consents/vocabulary").json()["scopes"]["telemetry:gps"]["en"] == "vehicle positions"


@pytest.mark.parametrize(("change", "status", "fragment"), [
    ({"expires_at": "2099-01-01T00:00:00+08:00"}, 422, "12 months"),
    ({"scopes": []}, 422, "scopes"),
    ({"scopes": ["telemetry:mind"]}, 422, "unknown scope"),
    ({"purpose": "marketing"}, 422, "unknown purpose"),
    ({"window_start": "2026-06-01", "window_end": "2026-05-01"}, 422, "before it starts"),
    ({"enterprise_id": 999}, 404, "999"),
    ({"recipient": "x' OR 1=1 --"}, 422, "recipient"),
    ({"reconfirm_days": 120}, 422, "reconfirm_days"),
])
def test_bad_grants_are_problems_and_store_nothing(client: TestClient, change: dict, status: int, fragment: str) -> None:
    response = client.post("/api/v1/consents", json=GRANT | change)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert fragment in response.text
    assert client.get("/api/v1/consents", params={"enterprise_id": GRANT["enterprise_id"]}).json()["items"] == []


def test_unknown_consent_and_bad_check(client: TestClient) -> None:
    assert client.get("/api/v1/consents/77").status_code == 404
    assert client.post("/api/v1/consents/77/withdraw", json={"enterprise_id": 1}).status_code == 404
    bad = client.post("/api/v1/consents/check", json=CHECK | {"data_start": "2026-12-01"})
    assert bad.status_code == 422 and "before it starts" in bad.json()["detail"]
