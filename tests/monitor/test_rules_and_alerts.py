"""Warning rules (JDM via zen-engine): loading, refusals, tiers and hysteresis; the alert book's one
incident = one alert; the service's ports for loan actions and notifications; collateral coverage."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from importlib import resources

import numpy as np
import pyarrow as pa
import pytest

from iotfin.core.errors import ConfigError, Conflict, ValidationError
from iotfin.monitor.model import AlertBook, DeviceMeta, SignalEvent, Tier, check_transition
from iotfin.monitor.prices import PriceBook, PricePoint
from iotfin.monitor.rules import RuleSet
from iotfin.monitor.service import MonitorService, PledgedLot
from iotfin.telemetry.model import READING_SCHEMA

H = 3_600_000
T0 = 1_767_542_400_000
DEFAULT = resources.files("iotfin.monitor").joinpath("rules/warning_rules.json").read_text()


def event(signal: str, value: float, device: int | None = 1, enterprise: int = 1, at: int = T0,
          device_type: str = "load_cell", **detail: object) -> SignalEvent:
    return SignalEvent(signal, device, enterprise, device_type, value, value > 0, at, at, dict(detail))


def _without_input_name() -> str:
    doc = json.loads(DEFAULT)
    del doc["nodes"][0]["name"]
    return json.dumps(doc)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet.default()


def test_default_rules_load_with_version_and_digest(rules: RuleSet) -> None:
    assert rules.version == json.loads(DEFAULT)["metadata"]["version"] and len(rules.digest) == 64


@pytest.mark.parametrize("text, reason", [
    ("{", "not JSON"),
    ('{"metadata": {"version": "1"}}', "not a JDM decision model"),
    (DEFAULT.replace('"version": "2026-12-06.1"', '"version": ""'), "a version is required"),
    (DEFAULT.replace('"in_value": ">= 1"', '"in_value": ">= = 1"', 1), "rule r1 column in_value"),
    (DEFAULT.replace('"out_tier": "\\"alert\\""', '"out_tier": "\\"alrt\\""', 1), "unknown tier 'alrt'"),
    (DEFAULT.replace('"field": "incident_type"', '"field": "kind"'), "output lacks incident_type"),
    (_without_input_name(), "does not compile: .*missing field `name`"),
])
def test_rules_that_do_not_compile_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        RuleSet.load(text)


def test_tiers_and_hysteresis_are_rows_of_the_table(rules: RuleSet) -> None:
    drop = event("inventory_drop", 0.15)
    assert rules.decide(drop, active=False).tier == Tier.none  # 15 %: not enough to raise...
    assert rules.decide(drop, active=True).tier == Tier.alert  # ...but not enough to clear either
    assert rules.decide(event("inventory_drop", 0.3), active=False).tier == Tier.alert
    assert rules.decide(event("inventory_drop", 0.45), active=False).tier == Tier.freeze
    assert rules.decide(event("collateral_coverage", 0.95), active=False).tier == Tier.margin_call
    dark_tag = rules.decide(event("device_dark", 1.0, device_type="livestock_tag"), active=False)
    assert dark_tag.tier == Tier.none  # a silent tag counts in the herd size, not as an alert
    seal = rules.decide(event("seal_broken", 1.0, device_type="door_seal"), active=False)
    assert (seal.tier, seal.incident_type, seal.reason_zh) == (Tier.freeze, "device_tamper", "仓库封条被破坏")


def test_one_incident_is_one_alert(rules: RuleSet) -> None:
    book = AlertBook(suppress_ms=24 * H)

    def feed(ev: SignalEvent) -> list[str]:
        return [c.kind for c in book.apply(ev, rules.decide(ev, book.holds(ev)))]

    assert feed(event("inventory_drop", 0.3, device=1)) == ["open"]
    assert feed(event("inventory_drop", 0.35, device=2)) == []  # another load cell, same incident
    assert feed(event("inventory_drop", 0.5, device=2)) == ["escalate"]
    assert feed(event("inventory_drop", 0.0, device=1)) == []
    assert feed(event("inventory_drop", 0.0, device=2, at=T0 + H)) == ["clear"]
    # flapping back within the suppression window re-activates the same alert
    assert feed(event("inventory_drop", 0.3, device=1, at=T0 + 2 * H)) == ["reactivate"]
    assert len(book.conditions) == 1 and book.suppressed == 1
    feed(event("inventory_drop", 0.0, device=1, at=T0 + 3 * H))
    # quiet for longer than the window: the next drop is a new incident
    assert feed(event("inventory_drop", 0.3, device=1, at=T0 + 30 * H)) == ["open"]
    assert {c.alert_id for c in book.conditions.values()} == {2}


def test_alert_transitions() -> None:
    check_transition("open", "acknowledged")
    check_transition("acknowledged", "resolved", "site visit: stock moved to the second warehouse")
    with pytest.raises(ValidationError, match="resolution reason"):
        check_transition("open", "resolved", "  ")
    with pytest.raises(Conflict):
        check_transition("resolved", "acknowledged")
    with pytest.raises(ValidationError):
        check_transition("open", "closed")


def _meta() -> DeviceMeta:
    return DeviceMeta.build(np.array([1, 2, 3]), [7, 7, 7], ["load_cell", "load_cell", "door_seal"])


def _rows(*rows: tuple[int, str, int, float]) -> pa.Table:
    d, k, t, v = zip(*rows, strict=True)
    return pa.table({"device_id": list(d), "key": list(k), "ts": list(t), "value": list(v)}, schema=READING_SCHEMA)


def test_service_acts_on_the_loan_and_notifies_both_parties(rules: RuleSet) -> None:
    actions: list[tuple[str, int, dict]] = []
    notices: list[dict] = []
    svc = MonitorService(_meta(), rules, loan_action=lambda a, e, ctx: actions.append((a, e, ctx)),
                         notify=notices.append, enterprise_names={7: "青岛示范煤业"})
    svc.on_commit(_rows((3, "seal_intact", T0, 1), (3, "seal_intact", T0 + 900_000, 0)))
    assert [(a, e) for a, e, _ in actions] == [("freeze_credit_line", 7)]
    assert {n["audience"] for n in notices} == {"lender", "enterprise"}
    lender = next(n for n in notices if n["audience"] == "lender")
    assert "青岛示范煤业" in lender["text_zh"] and "冻结授信" in lender["text_zh"] and "freeze" in lender["text_en"]
    [alert] = svc.alerts.values()
    assert alert.incident_type == "device_tamper" and alert.raised_at == T0 + 900_000 and alert.devices == {3}
    # Provenance findings from the ingest layer (replayed/unsigned data) are tamper evidence too.
    svc.provenance(pa.table({"device_id": [1, 999], "ts": [T0, T0], "kind": ["replayed", "unsigned"]}))
    assert any(a.incident_type == "device_replay" for a in svc.alerts.values())


def _prices(days: int, start: date, fall_on: int | None = None) -> list[PricePoint]:
    return [PricePoint("coal", start + timedelta(days=i),
                       Decimal("850.00") if fall_on is None or i < fall_on else Decimal("600.00"), "t") for i in range(days)]


def test_a_price_fall_revalues_every_pledged_lot_and_calls_margin(rules: RuleSet) -> None:
    calls: list[str] = []
    book = PriceBook()
    book.add(_prices(4, date(2026, 1, 1)))  # to 2026-01-04; the readings are of 2026-01-05
    svc = MonitorService(_meta(), rules, prices=book, loan_action=lambda a, e, ctx: calls.append(a))
    svc.set_lots([PledgedLot("WR-1", 7, "coal", [1, 2], exposure=Decimal("100000.00"), haircut=Decimal("0.7"))])
    svc.on_commit(_rows((1, "weight_t", T0, 120.0), (2, "weight_t", T0, 100.0)))
    [lot] = svc.coverage()
    # 220 t × 850 × 0.7 = 130,900.00 over 100,000.00
    assert lot["collateral_value"] == "130900.00" and lot["coverage"] == pytest.approx(1.309)
    assert calls == [] and not svc.alerts
    # Today's price falls 29 %; tomorrow's (already published) is not in force yet.
    book.add([PricePoint("coal", date(2026, 1, 5), Decimal("600.00"), "t"),
              PricePoint("coal", date(2026, 1, 6), Decimal("100.00"), "t")])
    svc.on_prices()
    [lot] = svc.coverage()
    assert lot["collateral_value"] == "92400.00" and lot["price_day"] == "2026-01-05"
    [alert] = svc.alerts.values()
    assert alert.incident_type == "collateral_shortfall" and alert.tier == Tier.margin_call and calls == ["margin_call"]


def test_trade_documents_are_checked_with_the_risk_features_definitions(rules: RuleSet) -> None:
    from iotfin.app.monitor_ports import RiskTradeFeatures
    from iotfin.monitor.model import circle_polygon
    from iotfin.monitor.signals import local_day
    from iotfin.monitor.trade import GPS_CHECK, INVOICE_CHECK, documents_table
    from iotfin.risk.features.catalogue import BY_NAME

    # The monitor's checks are the catalogue's features themselves (evaluated by risk through the
    # monitor's port), not copies of their SQL.
    assert INVOICE_CHECK == BY_NAME["c_invoices_without_delivery_90d"].name
    assert GPS_CHECK == BY_NAME["c_deliveries_without_gps_90d"].name
    meta = DeviceMeta.build(np.array([1, 2, 3, 4]), [7, 7, 8, 7], ["gps_tracker"] * 4, np.array([0, 0, 0, 0]),
                            [circle_polygon(31.3, 120.58, 60_000)])
    svc = MonitorService(meta, rules, trade_features=RiskTradeFeatures())
    rows = []
    for i in range(12):  # truck 1 stays in the yard (speed 0), truck 2 drives; truck 3 is never heard;
        # truck 4's speed samples all fall while it stands, but its fixes are 20 km apart: it drove
        t = T0 + 8 * H + i * 600_000
        rows += [(1, "speed_kmh", t, 0.0), (1, "lat", t, 31.3001), (1, "lon", t, 120.5801),
                 (2, "speed_kmh", t, 40.0 + i), (4, "speed_kmh", t, 0.0),
                 (4, "lat", t, 31.3 + (0.18 if i >= 6 else 0.0)), (4, "lon", t, 120.58)]
    svc.on_commit(_rows(*rows))
    svc.on_commit(_rows((1, "speed_kmh", T0 - 30 * H, 80.0)))  # a late reading of an older day changes nothing
    day = int(local_day(np.array([T0 + 8 * H]))[0])
    docs = documents_table([
        # (id, type, seller, buyer, order, issued day, due day, amount, vehicle)
        (10, "delivery_note", 7, 9, 100, day, None, Decimal("5000.00"), 1),   # truck parked all day
        (11, "delivery_note", 7, 9, 101, day, None, Decimal("5000.00"), 2),   # truck drove: fine
        (16, "delivery_note", 7, 9, 105, day, None, Decimal("5000.00"), 4),   # truck drove (by its fixes): fine
        (12, "delivery_note", 8, 9, 102, day, None, Decimal("5000.00"), 3),   # truck not heard: no GPS evidence
        (13, "invoice", 8, 9, 103, day, day + 60, Decimal("8000.00"), None),  # no delivery note for order 103
        (14, "invoice", 7, 9, 104, day, day + 60, Decimal("8000.00"), None),  # delivered two days before:
        (15, "delivery_note", 7, 9, 104, day - 2, None, Decimal("8000.00"), None),  # (evidence only)
    ])
    changes = svc.check_trade(docs, day, T0 + 24 * H)
    assert sorted((c.event.enterprise_id, c.event.signal, c.event.value) for c in changes) == [
        (7, "delivery_without_trip", 1.0), (8, "delivery_without_trip", 1.0), (8, "invoice_without_delivery", 1.0)]
    opened = {c.key: c for c in changes if c.kind == "open"}
    assert set(opened) == {(7, "fabricated_trade"), (8, "fabricated_trade")}  # one alert per enterprise
    assert opened[(7, "fabricated_trade")].decision.reason_zh == "送货单所列车辆当日未出场"
    assert {c.decision.rule for c in changes} == {"TRD-1", "TRD-2"} and all(c.tier == Tier.alert for c in changes)
    # Nothing issued that day, nothing found.
    assert svc.check_trade(documents_table([]), day + 1, T0 + 48 * H) == []
    # Without the port there is nothing to check with: refused, not silently skipped.
    with pytest.raises(ConfigError, match="trade_features"):
        MonitorService(meta, rules).check_trade(docs, day, T0 + 24 * H)


def test_energy_vs_reported_output_uses_the_sales_per_kwh_feature(rules: RuleSet) -> None:
    from iotfin.app.monitor_ports import RiskTradeFeatures
    from iotfin.monitor.signals import local_day
    from iotfin.monitor.trade import OUTPUT_CHECK, documents_table
    from iotfin.risk.features.catalogue import BY_NAME

    features = RiskTradeFeatures()
    HISTORY_DAYS = features.lookback_days(OUTPUT_CHECK)  # noqa: N806 - the feature's look-back
    assert OUTPUT_CHECK == BY_NAME["c_sales_per_kwh_change"].name and HISTORY_DAYS == 120
    # Enterprise 1 triples its invoiced sales on the same energy; enterprise 2 triples both (a real
    # expansion); enterprise 3 has no meter. Invoices every 10 days (each check is a query).
    meta = DeviceMeta.build(np.array([1, 2]), [1, 2], ["electricity_meter"] * 2)
    svc = MonitorService(meta, rules, trade_features=features)
    day0 = int(local_day(np.array([T0]))[0])
    seen: list[tuple[int, int, str, str]] = []
    counter = {1: 0.0, 2: 0.0}
    for i in range(HISTORY_DAYS + 10):
        late = i >= 95
        counter[1] += 1000.0
        counter[2] += 3000.0 if late else 1000.0
        t = T0 + i * 24 * H + 12 * H
        svc.on_commit(_rows((1, "energy_kwh", t, counter[1]), (2, "energy_kwh", t, counter[2])))
        rows = []
        if i % 10 == 0 or i >= HISTORY_DAYS - 1:
            sales = Decimal("3000000.00" if late else "1000000.00") / (1 if i % 10 == 0 else 10)
            for e in (1, 2, 3):  # (id, type, seller, buyer, order, day, due day, amount, vehicle): invoice + its note
                rows += [(1000 * i + e, "invoice", e, 9, 1000 * i + e, day0 + i, day0 + i + 30, sales, None),
                         (1000 * i + 10 + e, "delivery_note", e, 9, 1000 * i + e, day0 + i, None, sales, None)]
        for c in svc.check_trade(documents_table(rows), day0 + i, T0 + (i + 1) * 24 * H):
            seen.append((i, c.event.enterprise_id, c.kind, c.decision.rule))
    # Nothing before 120 days are booked (the feature is not defined), nothing for the enterprise whose
    # energy grew with its sales, nothing for the one without a meter; one watch for enterprise 1.
    assert seen and all(i >= HISTORY_DAYS - 1 for i, *_ in seen)
    assert {(e, kind, rule) for _, e, kind, rule in seen} == {(1, "open", "OUT-1")}, seen
    # (the meters report once a day here, so the heartbeat also calls them dark)
    assert [(a.enterprise_id, a.tier) for a in svc.alerts.values() if a.incident_type == "output_without_energy"] == [
        (1, Tier.watch)]
