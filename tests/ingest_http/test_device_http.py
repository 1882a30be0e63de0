"""The ThingsBoard-compatible HTTP device API against a real workspace (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.core.time import now_ms
from iotfin.identity.tables import Enterprise


@pytest.fixture
def client(workspace: Workspace) -> TestClient:
    return TestClient(create_app(workspace))


def _points(ws: Workspace, device_id: int, key: str) -> list[tuple[int, float]]:
    table = ws.telemetry.series(device_id, key, 0, now_ms() + 3_600_000)
    return list(zip(table["ts"].to_pylist(), table["value"].to_pylist(), strict=True))


def test_three_payload_forms_are_stored(client: TestClient, workspace: Workspace) -> None:
    device = workspace.devices.create()
    url = f"/api/v1/{device.token}/telemetry"
    before = now_ms()
    assert client.post(url, json={"temperature": 21.5, "on": True}).status_code == 200
    assert client.post(url, json={"ts": 1_767_225_600_000, "values": {"temperature": 19.0}}).status_code == 200
    assert client.post(url, json=[{"ts": 1_767_225_660_000, "values": {"temperature": 19.5}},
                                  {"ts": 1_767_225_540_000, "values": {"temperature": 18.5}}]).status_code == 200
    points = _points(workspace, device.id, "temperature")
    assert [v for _, v in points[:3]] == [18.5, 19.0, 19.5]  # late, out-of-order data accepted and ordered
    assert points[-1][1] == 21.5 and points[-1][0] >= before  # no ts: the server's receive time
    assert _points(workspace, device.id, "on")[0][1] == 1.0
    # "Latest" is the newest timestamp, not the last received.
    assert client.post(url, json={"ts": 1_700_000_000_000, "values": {"temperature": -40.0}}).status_code == 200
    assert workspace.telemetry.latest(device.id)["temperature"][1] == 21.5


def test_resending_is_idempotent(client: TestClient, workspace: Workspace) -> None:
    device = workspace.devices.create()
    body = [{"ts": 1_767_225_600_000 + i * 1000, "values": {"power": float(i)}} for i in range(50)]
    for _ in range(3):
        assert client.post(f"/api/v1/{device.token}/telemetry", json=body).status_code == 200
    assert len(_points(workspace, device.id, "power")) == 50


def test_bad_token_and_revocation(client: TestClient, workspace: Workspace) -> None:
    response = client.post("/api/v1/not-a-token/telemetry", json={"t": 1})
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/problem+json")
    device = workspace.devices.create()
    assert client.post(f"/api/v1/{device.token}/telemetry", json={"t": 1}).status_code == 200
    new = workspace.devices.issue_token(device.id, grace_s=60)  # rotation with a grace period
    assert client.post(f"/api/v1/{device.token}/telemetry", json={"t": 2}).status_code == 200
    assert client.post(f"/api/v1/{new}/telemetry", json={"t": 3}).status_code == 200
    workspace.devices.revoke_credentials(device.id)
    for token in (device.token, new):
        assert client.post(f"/api/v1/{token}/telemetry", json={"t": 4}).status_code == 401
    assert len(_points(workspace, device.id, "t")) == 3


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{not json", "malformed_payload"),
    (b'{"t": NaN}', "malformed_payload"),
    (b'{"t": Infinity}', "malformed_payload"),
    (b"[]", "malformed_payload"),
    (b'{"ts": "yesterday", "values": {"t": 1}}', "malformed_payload"),
    (b"[1, 2, 3]", "malformed_payload"),
])
def test_malformed_payloads_are_refused_and_kept(client: TestClient, workspace: Workspace, payload: bytes,
                                                 reason: str) -> None:
    device = workspace.devices.create()
    assert client.post(f"/api/v1/{device.token}/telemetry", json={"good": 1}).status_code == 200
    response = client.post(f"/api/v1/{device.token}/telemetry", content=payload,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["type"].endswith(reason)
    assert workspace.quarantine.counts("reason")[reason] >= 1
    assert len(_points(workspace, device.id, "good")) == 1  # what was accepted before is untouched


def test_mixed_batch_stores_the_good_and_reports_the_bad(client: TestClient, workspace: Workspace) -> None:
    meter = workspace.devices.create(profile="electricity_meter")
    response = client.post(f"/api/v1/{meter.token}/telemetry", json={
        "ts": 1_767_225_600_000, "values": {"power_kw": 12.5, "energy_kwh": -3, "colour": "red", "volts": 230}})
    assert response.status_code == 400
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected_by_reason"] == {"out_of_range": 1, "wrong_type": 1, "unknown_metric": 1}
    assert _points(workspace, meter.id, "power_kw") == [(1_767_225_600_000, 12.5)]
    counts = workspace.quarantine.counts("reason")
    assert counts["out_of_range"] == 1 and counts["wrong_type"] == 1 and counts["unknown_metric"] == 1


def test_oversized_payload_is_refused(client: TestClient, workspace: Workspace) -> None:
    device = workspace.devices.create()
    big = b'{"k": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    response = client.post(f"/api/v1/{device.token}/telemetry", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_attributes_round_trip(client: TestClient, workspace: Workspace) -> None:
    device = workspace.devices.create()
    url = f"/api/v1/{device.token}/attributes"
    assert client.post(url, json={"firmware": "1.2.0", "model": "DTSU666"}).status_code == 200
    assert client.post(url, json={"firmware": "1.3.0"}).status_code == 200
    assert client.get(url).json() == {"client": {"firmware": "1.3.0", "model": "DTSU666"}}
    assert client.get(url, params={"clientKeys": "model"}).json() == {"client": {"model": "DTSU666"}}
    workspace.devices.save_attributes(device.id, "shared", {"interval_s": 60})
    assert client.get(url, params={"sharedKeys": "interval_s"}).json()["shared"] == {"interval_s": 60}


def test_provisioning(client: TestClient, workspace: Workspace) -> None:
    workspace.devices.set_provisioning("load_cell", "key-abc", "secret-xyz")
    ok = client.post("/api/v1/provision", json={"deviceName": "yard-cell-7", "provisionDeviceKey": "key-abc",
                                                "provisionDeviceSecret": "secret-xyz"}).json()
    assert ok["status"] == "SUCCESS" and ok["credentialsType"] == "ACCESS_TOKEN"
    assert client.post(f"/api/v1/{ok['credentialsValue']}/telemetry", json={"weight_t": 812.5}).status_code == 200
    wrong = client.post("/api/v1/provision", json={"deviceName": "x", "provisionDeviceKey": "key-abc",
                                                   "provisionDeviceSecret": "guess"}).json()
    assert wrong["status"] == "NOT_FOUND"
    again = client.post("/api/v1/provision", json={"deviceName": "yard-cell-7", "provisionDeviceKey": "key-abc",
                                                   "provisionDeviceSecret": "secret-xyz"}).json()
    assert again["status"] == "FAILURE" and "exists" in again["errorMsg"]


def test_gateway_bulk_writes_only_its_own_enterprise(client: TestClient, workspace: Workspace) -> None:
    gateway = workspace.devices.create(name="gw-1")
    workspace.devices.create(name="sensor-a")
    workspace.devices.create(name="sensor-b")
    with workspace.engine.begin() as conn:  # a device of another enterprise
        other = conn.execute(insert(Enterprise).values(
            uscc="91350100M000100Y43", name="别家", name_en="Other", sector="energy", subsector="coal_storage",
            region_code="350100", region="福州市", founded_on=date(2020, 1, 1), registered_capital=0,
            legal_rep_name="-", legal_rep_id_number="-", legal_rep_phone="-", tax_grade="B")
            .returning(Enterprise.id)).scalar_one()
    workspace.devices.create(enterprise_id=other, name="their-sensor")
    body = {"sensor-a": [{"ts": 1_767_225_600_000 + i, "values": {"t": i}} for i in range(1000)],
            "sensor-b": {"t": 7}, "their-sensor": {"t": 1}}
    response = client.post(f"/api/v1/{gateway.token}/telemetry/bulk", content=orjson.dumps(body),
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["accepted"] == 1001 and response.json()["rejected_by_reason"] == {"unknown_device": 1}


def test_gateway_bulk_in_columns(client: TestClient, workspace: Workspace) -> None:
    """The columnar form through the gateway endpoint: stored as sent; a bad value is refused alone and
    the answer still counts what was stored; re-sending stores nothing twice."""
    gateway = workspace.devices.create(name="gw-col")
    a, b = workspace.devices.create(name="col-a"), workspace.devices.create(name="col-b")
    ts = [1_767_225_600_000 + i * 1000 for i in range(500)]
    body = {"col-a": {"ts": ts, "values": {"t": [float(i) for i in range(500)], "on": [i % 2 == 0 for i in range(500)]}},
            "col-b": {"ts": ts[:3], "values": {"t": [1.0, "hot", 3.0]}}}
    url = f"/api/v1/{gateway.token}/telemetry/bulk"
    for _ in range(2):
        response = client.post(url, content=orjson.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["rejected_by_reason"] == {"wrong_type": 1}
    assert response.json()["accepted"] + response.json()["duplicates"] == 1002
    assert _points(workspace, a.id, "t") == [(t, float(i)) for i, t in enumerate(ts)]
    assert [v for _, v in _points(workspace, a.id, "on")[:3]] == [1.0, 0.0, 1.0]
    assert _points(workspace, b.id, "t") == [(ts[0], 1.0), (ts[2], 3.0)]
    clean = {"col-b": {"ts": ts[3:6], "values": {"t": [4, 5, 6]}}}
    assert client.post(url, content=orjson.dumps(clean), headers={"content-type": "application/json"}).status_code == 200
    assert len(_points(workspace, b.id, "t")) == 5
