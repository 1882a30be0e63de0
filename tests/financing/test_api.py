"""The financing registry over HTTP: 201 for a lien, 409 problem+json naming the existing one."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.identity.tables import Tenant

SELLER, BUYER = "91350100M000100Y43", "91110000100000585X"
ASSET = {"kind": "receivable", "invoice_code": "370226123451", "invoice_number": "01234567",
         "seller_uscc": SELLER, "buyer_uscc": BUYER, "amount": "125000.00"}


@pytest.fixture
def client(workspace: Workspace) -> TestClient:
    with workspace.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"code": c, "name": c, "name_en": c, "kind": "bank"} for c in ("bank-a", "bank-b")])
        conn.execute(insert(Tenant), [{"code": "ops", "name": "ops", "name_en": "ops", "kind": "platform"}])
    # The operator's system acts for either lender (per-lender access is tested in tests/identity).
    cred = workspace.identity.create_client("registry tests", "financing:read financing:write", tenant="ops")
    client = TestClient(create_app(workspace))
    token = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                              "client_secret": cred["client_secret"]}).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_place_refuse_release(client: TestClient) -> None:
    placed = client.post("/api/v1/financing/liens", json={"asset": ASSET, "tenant": "bank-a", "financing_ref": "F-1",
                                                          "amount": "100000.00", "registration_no": "ZD-1",
                                                          "registered_at": "2026-03-01T09:30:00+08:00"})
    assert placed.status_code == 201, placed.text
    lien = placed.json()
    assert lien["amount"] == "100000.00" and lien["tenant_code"] == "bank-a"

    reformatted = ASSET | {"invoice_number": "No.0123 4567", "invoice_code": "3702-2612-3451", "amount": "125000"}
    refused = client.post("/api/v1/financing/liens", json={"asset": reformatted, "tenant": "bank-b",
                                                           "financing_ref": "L-9", "amount": "90000"})
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["type"].endswith("/double-financing") and body["existing_lien"]["id"] == lien["id"]
    assert body["existing_lien"]["registration_no"] == "ZD-1"
    assert "已被融资" in body["detail_zh"] and "ZD-1" in body["detail_zh"]

    status = client.get(f"/api/v1/financing/assets/{lien['fingerprint']}").json()
    assert [a["outcome"] for a in status["attempts"]] == ["placed", "refused"]
    released = client.post(f"/api/v1/financing/liens/{lien['id']}/release", json={"reason": "repaid"})
    assert released.status_code == 200 and released.json()["status"] == "released"
    again = client.post("/api/v1/financing/liens", json={"asset": reformatted, "tenant": "bank-b",
                                                         "financing_ref": "L-9", "amount": "90000"})
    assert again.status_code == 201


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"asset": ASSET, "tenant": "bank-a", "financing_ref": "F", "amount": 100.5}, 422, "amount"),
    ({"asset": ASSET | {"invoice_number": None}, "tenant": "bank-a", "financing_ref": "F", "amount": "1"}, 422,
     "invoice_number"),
    ({"asset": ASSET | {"seller_uscc": "91350100M000100Y44"}, "tenant": "bank-a", "financing_ref": "F", "amount": "1"},
     422, "seller_uscc"),
    ({"asset": ASSET, "tenant": "bank-zz", "financing_ref": "F", "amount": "1"}, 404, "bank-zz"),
])
def test_bad_requests_are_problems_and_store_nothing(client: TestClient, body: dict, status: int, fragment: str) -> None:
    response = client.post("/api/v1/financing/liens", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert fragment in response.text
    fingerprint = client.post("/api/v1/financing/fingerprints", json=ASSET).json()["fingerprint"]
    assert client.get(f"/api/v1/financing/assets/{fingerprint}").json()["liens"] == []
