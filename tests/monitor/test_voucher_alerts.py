"""Maturity at risk as monitor alerts (issue 20): a core enterprise past maturity on a voucher is an
alert (VCH-1), one likely to be late a watch (VCH-2), each with bilingual texts naming the company; the
vouchers come from the real receivables service's at-risk list over a real workspace (SQLite)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.core.time import day_start_ms
from iotfin.monitor.model import DeviceMeta, Tier
from iotfin.monitor.rules import RuleSet
from iotfin.monitor.service import MonitorService
from iotfin.receivables.model import Holder
from tests.receivables.world import TODAY, build


def test_a_late_core_enterprise_is_a_monitor_alert_with_bilingual_texts(tmp_path: Path) -> None:
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=f"sqlite:///{tmp_path / 'ws.db'}", simulation=True))
    ws.initialise()
    try:
        world = build(ws)
        svc = ws.receivables
        late = svc.issue(world.core, world.tier1, "100000.00", TODAY, date(2026, 5, 29), world.docs)
        soon = svc.issue(world.core, world.tier1, "20000.00", TODAY, date(2026, 6, 20), world.docs)
        svc.split(Holder("enterprise", world.tier1), late["parts"][0]["id"], ["40000.00"], date(2026, 3, 3))
        notices: list[dict] = []
        monitor = MonitorService(DeviceMeta.build(np.array([1]), [world.core], ["electricity_meter"]),
                                 RuleSet.default(), notify=notices.append, enterprise_names={world.core: "示范核心制造"})
        # before maturity, with an on-time history and a good rating: nothing at risk, no alert
        assert monitor.maturity_at_risk(svc.at_risk(date(2026, 5, 1)), day_start_ms(date(2026, 5, 1))) == []
        # the day after maturity, unpaid: an alert on the core enterprise
        at = day_start_ms(date(2026, 6, 1))
        changes = monitor.maturity_at_risk(svc.at_risk(date(2026, 6, 1)), at)
        [opened] = [c for c in changes if c.kind == "open"]
        assert opened.tier == Tier.alert and opened.key == (world.core, "maturity_at_risk")
        assert opened.decision.rule == "VCH-1" and opened.event.detail["voucher_id"] == late["id"]
        [alert] = monitor.alerts.values()
        assert alert.enterprise_id == world.core and alert.incident_type == "maturity_at_risk"
        assert "到期未付" in alert.reason_zh and "not paid" in alert.reason_en
        lender = next(n for n in notices if n["audience"] == "lender")
        assert "示范核心制造" in lender["text_zh"] and lender["text_en"]
        # the other voucher of that core now falls due soon after a late payment: folded into the alert
        svc.pay(world.core, late["id"], "100000.00", date(2026, 6, 2))
        risk = svc.at_risk(date(2026, 6, 3))
        assert [r["voucher_id"] for r in risk] == [soon["id"]] and "late before" in risk[0]["reason"]
        again = monitor.maturity_at_risk(risk, at + 2 * 86_400_000)
        assert all(c.kind != "open" for c in again) and len(monitor.alerts) == 1
    finally:
        ws.close()


def test_a_likely_late_core_alone_is_a_watch() -> None:
    monitor = MonitorService(DeviceMeta.build(np.array([1]), [9], ["electricity_meter"]), RuleSet.default())
    [change] = monitor.maturity_at_risk([{"voucher_id": 5, "issuer_id": 9, "matures_on": "2026-07-01",
                                          "unpaid": "500.00", "reason": "the core enterprise's PD is 0.080"}],
                                        day_start_ms(date(2026, 6, 20)))
    assert change.kind == "open" and change.tier == Tier.watch and change.decision.rule == "VCH-2"
    assert change.decision.reason_zh and change.decision.reason_en and change.event.detail["why"].startswith("the core")
