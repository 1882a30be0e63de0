"""Live operations: a device registered while the server runs is monitored from its first reading
(no restart), the devices already monitored keep their signal state; English alert texts name the
company in English, Chinese texts in Chinese."""

from __future__ import annotations

import pyarrow as pa

from iotfin.app.monitor_runtime import MonitorRuntime
from iotfin.app.workspace import Workspace
from iotfin.monitor.model import Tier, notification_texts
from iotfin.monitor.store import AlertStore
from tests.monitor.test_actions import T0, Q, _rows, world  # noqa: F401 - the world fixture


def test_a_device_registered_while_serving_is_monitored_at_once(workspace: Workspace, world: dict[str, int]) -> None:  # noqa: F811
    ws = workspace
    runtime = MonitorRuntime(ws, clock=lambda: T0 + Q).attach()
    try:
        truck = world["truck"]
        ws.ingest.ingest(_rows((truck, "lat", T0, 38.29), (truck, "lon", T0, 109.73)), now=T0 + Q)
        heard = int(runtime.monitor.signals.last_ts[truck])
        assert heard == T0
        new_seal = ws.devices.create(1, "door_seal", site_id=1).id  # registered after the monitor started
        assert not runtime.monitor.knows(pa.array([new_seal]).to_numpy())
        result = ws.ingest.ingest(_rows((new_seal, "seal_intact", T0 + Q, 0)), now=T0 + 2 * Q)
        assert result.accepted == 1
        alerts = AlertStore(ws.engine).list()
        assert [a["incident_type"] for a in alerts] == ["device_tamper"] and runtime.reloads == 1
        assert int(runtime.monitor.signals.last_ts[truck]) == heard  # the truck's state survived the reload
        ws.ingest.ingest(_rows((new_seal, "seal_intact", T0 + 2 * Q, 0)), now=T0 + 3 * Q)
        assert runtime.reloads == 1  # known now: no reload per commit
        assert runtime.monitor.names_en[1] == "Firm 1"  # the English names, for the English texts
    finally:
        runtime.detach()


def test_english_texts_name_the_company_in_english() -> None:
    class Decision:
        reason_zh, reason_en = "封条被破坏", "the seal was broken"

    texts = notification_texts(Decision(), "榆林示范煤场", Tier.freeze, "open", "Yulin Demo Coal Yard")  # type: ignore[arg-type]
    assert texts["lender"]["zh"].startswith("榆林示范煤场") and texts["lender"]["en"].startswith("Yulin Demo Coal Yard")
    assert "榆林" not in texts["lender"]["en"]
