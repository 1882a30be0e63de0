"""A lender's alert list: its customers' alerts, newest first, consent-checked per page — only the
enterprises on the page are checked and logged, and a refusing enterprise's alerts are left out."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from iotfin.identity.access import set_owner
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.monitor.tables import MonitorAlert
from tests.openapi_world import World, enterprise_row, world  # noqa: F401  (fixture)


def test_a_lenders_alert_pages_check_consent_for_the_enterprises_on_the_page(world: World) -> None:  # noqa: F811
    ws = world.ws
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with ws.engine.begin() as conn:
        conn.execute(insert(Enterprise), [enterprise_row(3)])
        bank_a = conn.execute(select(Tenant.id).where(Tenant.code == "bank-a")).scalar_one()
        # alerts 1..4 alternate between enterprises 1 and 2; enterprise 3 has none
        conn.execute(insert(MonitorAlert), [dict(
            id=i, enterprise_id=2 - i % 2, incident_type="device_dark", tier="watch", status="open", rule="r",
            rules_version="t", reason_zh="设备失联", reason_en="device dark", opened_at=at, updated_at=at)
            for i in range(1, 5)])
    for record, enterprise in ((1, 1), (2, 2), (3, 3)):  # bank A's customers: all three
        set_owner(ws.engine, "application", record, bank_a, enterprise)
    world.http.post("/api/v1/consents", headers=world.headers("ent_1"), json={
        "enterprise_id": 1, "recipient": "bank-a", "purpose": "post_loan_monitoring", "scopes": ["alerts"],
        "window_start": "2020-01-01"}).raise_for_status()  # enterprise 2 grants nothing

    def page(**params: object) -> dict:
        r = world.http.get("/api/v1/monitor/alerts", params=params, headers=world.headers("bank_a"))
        assert r.status_code == 200, r.text
        return r.json()

    first = page(limit=2)  # candidates 4 (enterprise 2) and 3 (enterprise 1): 4 is left out
    assert [a["id"] for a in first["items"]] == [3] and first["next_cursor"]
    second = page(limit=2, cursor=first["next_cursor"])
    assert [a["id"] for a in second["items"]] == [1] and second["next_cursor"] is None
    assert [a["id"] for a in page(limit=10, enterprise_id=2)["items"]] == []

    def log(enterprise: int) -> list[tuple]:
        return [(r["recipient"], r["scope"], r["allowed"]) for r in ws.consent.access_log(enterprise)]

    assert log(1) == [("bank-a", "alerts", True)] * 2
    assert log(2) == [("bank-a", "alerts", False)] * 3
    assert log(3) == []  # a customer without alerts on the page is neither checked nor logged
    # the typed client follows the cursor over the short pages; the enterprise reads the log of it
    assert [a["id"] for a in world["bank_a"].alerts(limit=1)] == [3, 1]
    assert [(r["recipient"], r["allowed"]) for r in world["ent_1"].access_log(1, limit=1)] == [("bank-a", True)] * 4
    assert list(world["bank_b"].alerts()) == []
