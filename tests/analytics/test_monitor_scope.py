"""The monitor tells a firm's own production stop from a sector-wide one and says which (zh, en)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from iotfin.monitor.model import DeviceMeta, Tier
from iotfin.monitor.service import MonitorService
from iotfin.telemetry.model import READING_SCHEMA

H, M = 3_600_000, 60_000
T0 = 1_767_542_400_000  # 2026-01-05 00:00 Asia/Shanghai
FIRMS = range(1, 8)  # one machine each, device id = enterprise id, all in one sector


def _service(peers: bool) -> MonitorService:
    ids = np.array(list(FIRMS))
    service = MonitorService(DeviceMeta.build(ids, list(FIRMS), ["machine_sensor"] * len(ids)))
    if peers:
        service.set_peer_groups([{e: "manufacturing" for e in FIRMS}, {e: f"region-{e}" for e in FIRMS}])
    return service


def _run(service: MonitorService, stopped: set[int]) -> list:
    for hour in range(16):
        rows = [(e, "runtime_min", T0 + hour * H + q * 15 * M, 0.0 if (e in stopped and hour >= 2) else 12.0)
                for e in FIRMS for q in range(4)]
        d, k, t, v = zip(*rows, strict=True)
        service.on_commit(pa.table({"device_id": list(d), "key": list(k), "ts": list(t), "value": list(v)},
                                   schema=READING_SCHEMA))
        service.tick(T0 + (hour + 1) * H)
    return [a for a in service.alerts.values() if a.incident_type == "production_shutdown"]


def test_a_sector_wide_stop_is_lowered_to_watch_and_says_so() -> None:
    alerts = _run(_service(peers=True), set(FIRMS))
    assert len(alerts) == len(FIRMS)
    assert all(a.tier == Tier.watch and a.raised_at is None for a in alerts)
    assert all("行业性或区域性停工" in a.reason_zh and "not firm-specific" in a.reason_en for a in alerts)
    today = _run(_service(peers=False), set(FIRMS))  # without peers, every firm is alerted as before
    assert len(today) == len(FIRMS) and all(a.tier >= Tier.alert for a in today)


def test_a_firm_specific_stop_stays_an_alert_and_says_so() -> None:
    alerts = _run(_service(peers=True), {3})
    assert [a.enterprise_id for a in alerts] == [3]
    assert alerts[0].tier >= Tier.alert and alerts[0].raised_at is not None
    assert "属企业个体停工" in alerts[0].reason_zh and "a firm-specific stop" in alerts[0].reason_en
