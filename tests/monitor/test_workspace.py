"""The monitor on a real workspace (SQLite and PostgreSQL): subscribed to the real IngestService,
alerts and their audit trail in the system of record, the officer's lifecycle, the HTTP edge."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.identity.tables import Enterprise, Site
from iotfin.monitor.prices import PricePoint
from iotfin.monitor.service import MonitorService
from iotfin.monitor.store import AlertStore, load_device_meta
from iotfin.telemetry.model import READING_SCHEMA
from tests.api.test_app import _enterprise, assert_problem
from tests.openapi_world import operator_headers

T0 = 1_767_542_400_000
Q = 900_000


@pytest.fixture
def fleet(workspace: Workspace) -> dict[str, int]:
    with workspace.engine.begin() as conn:
        conn.execute(insert(Enterprise).values(_enterprise(1, "energy") | {"name": "榆林示范煤场", "subsector": "coal_storage"}))
        conn.execute(insert(Site).values(id=1, enterprise_id=1, name="yard", kind="yard", lat=38.29, lon=109.73,
                                         geofence_radius_m=50_000.0))
    devices = {name: workspace.devices.create(1, profile, site_id=1).id
               for name, profile in (("seal", "door_seal"), ("truck", "gps_tracker"), ("cell", "load_cell"),
                                     ("revoked", "door_seal"))}
    workspace.devices.set_status(devices["revoked"], "revoked")
    return devices


def _rows(*rows: tuple[int, str, int, float]) -> pa.Table:
    d, k, t, v = zip(*rows, strict=True)
    return pa.table({"device_id": list(d), "key": list(k), "ts": list(t), "value": list(v)}, schema=READING_SCHEMA)


def _monitor(ws: Workspace) -> tuple[MonitorService, AlertStore]:
    meta, names = load_device_meta(ws.engine)
    store = AlertStore(ws.engine, "test")
    monitor = MonitorService(meta, store=store, enterprise_names=names)
    ws.ingest.on_commit.append(monitor.on_commit)
    return monitor, store


def test_only_committed_readings_reach_the_monitor_and_alerts_are_recorded(workspace: Workspace,
                                                                           fleet: dict[str, int]) -> None:
    monitor, store = _monitor(workspace)
    assert workspace.ingest.on_commit == [monitor.on_commit]
    seal, revoked = fleet["seal"], fleet["revoked"]
    result = workspace.ingest.ingest(_rows((seal, "seal_intact", T0, 1), (seal, "seal_intact", T0 + Q, 0),
                                           (revoked, "seal_intact", T0 + Q, 0), (99_999, "seal_intact", T0 + Q, 0),
                                           (seal, "seal_intact", T0 + 2 * Q, 7)), now=T0 + 3 * Q)
    assert result.accepted == 2 and dict(result.rejected_by_reason) == {
        "device_revoked": 1, "unknown_device": 1, "out_of_range": 1}
    assert monitor.signals.readings_seen == 2  # the refused readings never reached the signals
    assert revoked not in {d for d in range(monitor.signals.meta.size) if monitor.signals.meta.enterprise[d] >= 0}
    [alert] = store.list()
    assert (alert["incident_type"], alert["tier"], alert["status"], alert["devices"]) == (
        "device_tamper", "freeze", "open", [seal])
    assert alert["rules_version"] == "test" and alert["reason_zh"] == "仓库封条被破坏"
    notices = store.notifications(alert["id"])
    assert {n["audience"] for n in notices} == {"lender", "enterprise"}
    assert all(n["text_zh"] and n["text_en"] for n in notices) and "榆林示范煤场" in notices[0]["text_zh"]
    # The seal is still broken an hour later: the same alert, no new one.
    workspace.ingest.ingest(_rows((seal, "seal_intact", T0 + 4 * Q, 0)), now=T0 + 5 * Q)
    assert len(store.list()) == 1


def test_geofence_exit_through_ingest(workspace: Workspace, fleet: dict[str, int]) -> None:
    monitor, store = _monitor(workspace)
    truck = fleet["truck"]
    rows = []
    for i, lat in enumerate((38.29, 38.50, 39.10, 38.30)):  # 39.10 is ~90 km north of a 50 km fence
        rows += [(truck, "lat", T0 + i * Q, lat), (truck, "lon", T0 + i * Q, 109.73)]
    workspace.ingest.ingest(_rows(*rows), now=T0 + 5 * Q)
    [alert] = store.list()
    assert alert["incident_type"] == "geofence_exit" and alert["cleared_at"] is not None
    assert [e["kind"] for e in store.get(alert["id"])["audit"]] == ["open", "clear"]


def test_officer_lifecycle_with_audit_trail(workspace: Workspace, fleet: dict[str, int]) -> None:
    _, store = _monitor(workspace)
    workspace.ingest.ingest(_rows((fleet["seal"], "seal_intact", T0, 0)), now=T0 + Q)
    [alert] = store.list()
    with pytest.raises(ValidationError, match="resolution reason"):
        store.transition(alert["id"], "resolved", "officer-7", "")
    store.transition(alert["id"], "acknowledged", "officer-7")
    store.assign(alert["id"], "officer-9", "officer-7")
    done = store.transition(alert["id"], "resolved", "officer-9", "现场核查：封条已更换 / seal replaced on site")
    assert done["status"] == "resolved" and done["assigned_to"] == "officer-9"
    assert done["resolution_reason"].startswith("现场核查")
    assert [(e["kind"], e["actor"]) for e in done["audit"]] == [
        ("open", "monitor"), ("acknowledged", "officer-7"), ("assigned", "officer-7"), ("resolved", "officer-9")]
    assert done["audit"][-1]["detail"]["reason"].endswith("seal replaced on site")
    with pytest.raises(Conflict, match="cannot become acknowledged"):
        store.transition(alert["id"], "acknowledged", "officer-7")
    with pytest.raises(NotFound):
        store.transition(12345, "acknowledged", "officer-7")
    assert store.list(status="open") == [] and len(store.list(status="resolved", enterprise_id=1)) == 1


def test_prices_round_trip_as_decimals(workspace: Workspace) -> None:
    store = AlertStore(workspace.engine)
    points = [PricePoint("coal", date(2026, 1, d), Decimal("850.15"), "t") for d in (1, 2)]
    assert store.save_prices(points) == 2
    store.save_prices([PricePoint("coal", date(2026, 1, 2), Decimal("799.99"), "t")])  # a correction replaces
    assert [(p.day.day, p.price) for p in store.load_prices()] == [(1, Decimal("850.15")), (2, Decimal("799.99"))]


def test_http_edge(workspace: Workspace, fleet: dict[str, int]) -> None:
    client = TestClient(create_app(workspace), headers=operator_headers(workspace))
    body = assert_problem(client.post("/api/v1/monitor/rules/check", content=b"{"), 422, "validation")
    assert "not JSON" in body["detail"]
    bowtie = {"coordinates": [[0, 0], [1, 1], [1, 0], [0, 1]]}
    body = assert_problem(client.post("/api/v1/monitor/geofences/check", json=bowtie), 422, "validation")
    assert "Self-intersection" in body["detail"]
    assert client.post("/api/v1/monitor/geofences/check",
                       json={"coordinates": [[0, 0], [1, 0], [1, 1]]}).json()["ok"] is True
    gap = "day,commodity,price\n2026-01-01,coal,850\n2026-01-03,coal,840\n"
    assert "no price for 2026-01-02" in assert_problem(client.post("/api/v1/monitor/prices", content=gap), 422,
                                                       "validation")["detail"]
    assert client.get("/api/v1/monitor/alerts").json()["items"] == []  # the refused import wrote nothing, no alerts yet
    ok = client.post("/api/v1/monitor/prices", content="day,commodity,price\n2026-01-01,coal,850\n2026-01-02,coal,840\n")
    assert ok.status_code == 200 and ok.json() == {"imported": 2, "days_by_commodity": {"coal": 2}}

    _monitor(workspace)
    workspace.ingest.ingest(_rows((fleet["seal"], "seal_intact", T0, 0)), now=T0 + Q)
    [alert] = client.get("/api/v1/monitor/alerts").json()["items"]
    got = client.get(f"/api/v1/monitor/alerts/{alert['id']}").json()
    assert len(got["notifications"]) == 2 and got["audit"][0]["kind"] == "open"
    assert client.post(f"/api/v1/monitor/alerts/{alert['id']}/resolve", json={"by": "o1"}).status_code == 422
    assert_problem(client.get("/api/v1/monitor/alerts/999"), 404, "not-found")
    resolved = client.post(f"/api/v1/monitor/alerts/{alert['id']}/resolve", json={"by": "o1", "reason": "false alarm"})
    assert resolved.json()["status"] == "resolved"
    assert_problem(client.post(f"/api/v1/monitor/alerts/{alert['id']}/acknowledge", json={"by": "o1"}), 409, "conflict")
    assert json.loads(json.dumps(resolved.json()))["resolution_reason"] == "false alarm"


def test_alert_pages_newest_first_through_the_cursor(workspace: Workspace) -> None:
    from datetime import UTC, datetime

    from iotfin.monitor.tables import MonitorAlert

    at = datetime(2026, 3, 1, tzinfo=UTC)
    with workspace.engine.begin() as conn:
        conn.execute(insert(MonitorAlert), [dict(
            id=i, enterprise_id=1 + i % 2, incident_type="device_dark", tier="watch", status="open", rule="r",
            rules_version="t", reason_zh="设备失联", reason_en="device dark", opened_at=at, updated_at=at)
            for i in range(1, 8)])
    client = TestClient(create_app(workspace, background=False), headers=operator_headers(workspace))

    def walk(**params: object) -> list[list[int]]:
        pages, cursor = [], None
        while True:
            body = client.get("/api/v1/monitor/alerts", params={**params, **({"cursor": cursor} if cursor else {})}).json()
            pages.append([a["id"] for a in body["items"]])
            if not (cursor := body["next_cursor"]):
                return pages

    assert walk(limit=3) == [[7, 6, 5], [4, 3, 2], [1]]
    assert walk(limit=2, enterprise_id=2) == [[7, 5], [3, 1]]
    assert walk(limit=7) == [[7, 6, 5, 4, 3, 2, 1]]  # a full last page says so: no cursor to an empty page
    assert AlertStore(workspace.engine).list(limit=2) == client.get("/api/v1/monitor/alerts?limit=2").json()["items"]
    assert_problem(client.get("/api/v1/monitor/alerts", params={"limit": 201}), 422, "validation")
