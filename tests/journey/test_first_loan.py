"""From an empty platform to a first loan and its first warning, as a pilot walks it (issue 18).

The operator onboards a lender; the lender's officer onboards an enterprise and its site; the
enterprise provisions three devices, streams readings over MQTT and HTTP and grants consent; the
officer applies, the platform rates the enterprise from its own data and decides; the enterprise
accepts the offer after reading its key facts; the lender books it, gets the disbursed webhook and
takes a repayment; the close runs by itself; a broken warehouse seal raises an alert and freezes the
line; a complaint is filed and resolved. Bad input along the way is refused with a 4xx and changes
nothing. Public interfaces only: the CLI, HTTP, MQTT.
"""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from tests.journey.conftest import OPERATOR, OPERATOR_PASSWORD, Platform, Receiver

pytestmark = pytest.mark.slow

SHANGHAI = ZoneInfo("Asia/Shanghai")
# GB 32100-2015: 18 characters from this alphabet (no I, O, S, V, Z); the 18th is a check character
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
PASSWORD = "journey-pass-1234"
DAYS = 100  # the default strategy wants 90 days of trusted device data


def uscc(first17: str) -> str:
    """A code with its check character, computed here independently of the platform."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return first17 + USCC_ALPHABET[(31 - total % 31) % 31]


def wrong_check(code: str) -> str:
    return code[:17] + USCC_ALPHABET[(USCC_ALPHABET.index(code[17]) + 1) % 31]


def today() -> date:
    return datetime.now(SHANGHAI).date()


def wait_until(what: str, probe: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def mqtt_publish(platform: Platform, token: str, readings: list[dict[str, Any]]) -> None:
    """A real MQTT client (paho): connect with the device's access token, publish at QoS 1, wait for PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"journey-{token[:8]}")
    client.username_pw_set(token)
    client.connect("127.0.0.1", platform.mqtt_port)
    client.loop_start()
    try:
        for start in range(0, len(readings), 100):
            info = client.publish("v1/devices/me/telemetry", json.dumps(readings[start:start + 100]), qos=1)
            info.wait_for_publish(timeout=30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def http_publish(api_base: str, token: str, readings: list[dict[str, Any]]) -> None:
    import httpx  # the device's own HTTP client, not the signed-in API one

    r = httpx.post(f"{api_base}/api/v1/{token}/telemetry", json=readings, timeout=60)
    assert r.status_code == 200, r.text


def history(days: int, values: Any) -> list[dict[str, Any]]:
    """Hourly readings for the last `days` days, as a device buffers and sends them."""
    now_ms = int(time.time() * 1000)
    start = now_ms - days * 86_400_000
    return [{"ts": start + h * 3_600_000, "values": values(h)} for h in range(days * 24)]


def test_first_loan(platform: Platform, receiver: Receiver) -> None:
    ops = platform.login(OPERATOR, OPERATOR_PASSWORD)

    # --- the operator onboards a lender and its officers -------------------------------------------
    bank = {"code": "hz-bank", "name": "杭州城市商业银行", "name_en": "Hangzhou City Commercial Bank", "kind": "bank",
            "contact_name": "王敏", "contact_phone": "+86 571 8888 0000", "contact_email": "pilot@hzbank.example"}
    ops.ok(ops.post("/tenants", bank), 201)
    assert ops.post("/tenants", bank).status_code == 409
    for username, roles in (("hz-officer", ["risk_officer"]), ("hz-approver", ["approver"])):
        ops.ok(ops.post("/tenants/hz-bank/users", {"username": username, "password": PASSWORD, "roles": roles,
                                                    "display_name": username}), 201)
    officer = platform.login("hz-officer", PASSWORD)
    approver = platform.login("hz-approver", PASSWORD)

    # --- the officer onboards an enterprise, its site, its login ----------------------------------
    code = uscc("91330106MA2H7K3P5")
    enterprise = {"uscc": code, "name": "杭州示范仓储有限公司", "name_en": "Hangzhou Demo Warehousing Co., Ltd.",
                  "sector": "logistics", "subsector": "warehousing", "region_code": "330106",
                  "founded_on": "2016-04-01", "registered_capital": "5000000.00", "legal_rep_name": "李强",
                  "legal_rep_id_number": "330106198001011235", "legal_rep_phone": "13800000000", "tax_grade": "B"}
    bad = officer.post("/enterprises", enterprise | {"uscc": wrong_check(code)})
    assert bad.status_code == 422 and "uscc" in bad.text, bad.text
    bad_region = officer.post("/enterprises", enterprise | {"region_code": "999999"})
    assert bad_region.status_code == 422 and "region_code" in bad_region.text, bad_region.text
    assert officer.items("/enterprises") == []  # nothing stored by the refusals
    created = officer.ok(officer.post("/enterprises", enterprise), 201)
    eid = created["id"]
    assert officer.post("/enterprises", enterprise).status_code == 409
    assert "legal_rep_id_number" not in created or created["legal_rep_id_number"] != enterprise["legal_rep_id_number"]
    assert [e["id"] for e in officer.items("/enterprises")] == [eid]
    officer.ok(officer.post(f"/enterprises/{eid}/users", {"username": "demo-wh-admin", "password": PASSWORD,
                                                         "display_name": "仓储公司管理员"}), 201)
    firm = platform.login("demo-wh-admin", PASSWORD)
    site = officer.ok(officer.post(f"/enterprises/{eid}/sites", {
        "name": "下沙仓库", "kind": "warehouse", "address": "浙江省杭州市钱塘区下沙街道 1 号",
        "lat": 30.31, "lon": 120.35, "geofence_radius_m": 300}), 201)
    assert [s["id"] for s in firm.items(f"/enterprises/{eid}/sites")] == [site["id"]]

    # --- the enterprise provisions three devices at the site -------------------------------------
    devices = {}
    for name, profile in (("wh-meter-1", "electricity_meter"), ("wh-press-1", "machine_sensor"),
                          ("wh-seal-1", "door_seal")):
        devices[profile] = firm.ok(firm.post(f"/enterprises/{eid}/devices",
                                             {"name": name, "profile": profile, "site_id": site["id"]}), 201)
    assert firm.post(f"/enterprises/{eid}/devices", {"name": "x", "profile": "door_seal",
                                                     "site_id": 999_999}).status_code in (404, 422)
    assert sorted(d["name"] for d in firm.items("/devices")) == ["wh-meter-1", "wh-press-1", "wh-seal-1"]

    # --- readings: the meter over MQTT, the machine and the seal over HTTP -------------------------
    meter, press, seal = devices["electricity_meter"], devices["machine_sensor"], devices["door_seal"]
    mqtt_publish(platform, meter["access_token"],
                 history(DAYS, lambda h: {"energy_kwh": 1000 + 40 * h, "power_kw": 40 + (h % 24 > 8) * 30}))
    http_publish(platform.url, press["access_token"],
                 history(DAYS, lambda h: {"runtime_min": 12 if 8 <= h % 24 < 20 else 0, "cycles": 300}))
    http_publish(platform.url, seal["access_token"], history(DAYS, lambda h: {"door_open": 0, "seal_intact": 1}))
    since = int(time.time() * 1000) - (DAYS + 1) * 86_400_000
    energy = firm.ok(firm.get(f"/enterprises/{eid}/telemetry", device_id=meter["device_id"], key="energy_kwh",
                              bucket="1d", start=since))
    assert DAYS <= len(energy["points"]) <= DAYS + 1 and sum(p["count"] for p in energy["points"]) == DAYS * 24

    # --- consent: the lender may assess and monitor -------------------------------------------------
    assert officer.get(f"/enterprises/{eid}/telemetry", device_id=meter["device_id"],
                       key="energy_kwh").status_code == 403  # before any consent
    window_start = (today() - timedelta(days=365)).isoformat()
    for purpose, scopes in (
            ("credit_assessment", ["credit_report", "business_registration", "tax_rating", "telemetry:energy",
                                   "telemetry:equipment", "telemetry:security", "trade_documents"]),
            ("post_loan_monitoring", ["telemetry:energy", "telemetry:equipment", "telemetry:security", "alerts"])):
        firm.ok(firm.post("/consents", {"enterprise_id": eid, "recipient": "hz-bank", "purpose": purpose,
                                        "scopes": scopes, "window_start": window_start}), 201)
    read = officer.ok(officer.get(f"/enterprises/{eid}/telemetry", device_id=meter["device_id"], key="energy_kwh",
                                  bucket="1d", start=since, purpose="post_loan_monitoring"))
    assert read["points"] == energy["points"]
    log = firm.items("/consents/access-log", enterprise_id=eid)
    assert any(row.get("recipient") == "hz-bank" for row in log)

    # --- the lender's webhooks ----------------------------------------------------------------------
    sub = officer.ok(officer.post("/webhooks/subscriptions", {
        "url": receiver.url, "event_types": ["decision.made", "offer.accepted", "loan.disbursed",
                                             "repayment.received", "alert.raised"]}), 201)
    officer.ok(officer.post(f"/webhooks/subscriptions/{sub['id']}/ping"), 202)
    receiver.wait_for("ping")  # not among the subscription's types, and still delivered

    # --- apply: the platform rates the enterprise from its own data ----------------------------------
    application = {"enterprise_id": eid, "product": "iot-working-capital", "amount": "300000.00",
                   "tenor_months": 12, "ref": "HZ-2026-0001"}
    asserted = officer.post("/credit-applications", application | {"ref": "HZ-X", "assessment": {"grade": "AAA"}})
    assert asserted.status_code == 422, asserted.text
    decided = officer.ok(officer.post("/credit-applications", application), 201)
    app_id = decided["application_id"]
    # the platform's own rating, with reasons a borrower understands (not WoE bins), in zh and en
    assessment = decided["assessment"]
    assert assessment["grade"] and assessment.get("reasons"), assessment
    readable = json.dumps(assessment["reasons"] + decided["reasons"], ensure_ascii=False)
    assert not re.search(r"[\[(]\s*-?(inf|\d[\d.]*)\s*,|\binf\b", readable), readable  # no "[-inf, 0.98)"
    if decided["status"] == "referred":
        approver.ok(approver.post(f"/credit-applications/{app_id}/reviews",
                                  {"officer": "ignored", "action": "approve", "reason": "IoT data consistent"}))
    decided = officer.ok(officer.get(f"/credit-applications/{app_id}"))
    assert decided["status"] == "approved", json.dumps(decided["decisions"][-1], ensure_ascii=False)[:3000]
    assert [a["id"] for a in officer.items("/credit-applications", enterprise_id=eid)] == [app_id]
    receiver.wait_for("decision.made")

    # --- the offer, its key facts, the enterprise's acceptance --------------------------------------
    offers = firm.items("/offers", enterprise_id=eid)
    assert len(offers) == 1 and offers[0]["status"] == "open"
    offer = firm.ok(firm.get(f"/offers/{offers[0]['id']}"))
    assert offer["key_facts"]["zh"] and offer["key_facts"]["en"] and Decimal(offer["apr"]) > 0
    wrong = firm.post(f"/offers/{offer['id']}/acceptance", {"key_facts_digest": "0" * 64})
    assert wrong.status_code == 422, wrong.text
    accepted = firm.ok(firm.post(f"/offers/{offer['id']}/acceptance",
                                 {"key_facts_digest": offer["key_facts"]["digest"]}))
    assert accepted["status"] == "accepted"
    assert firm.post(f"/offers/{offer['id']}/acceptance",
                     {"key_facts_digest": offer["key_facts"]["digest"]}).status_code == 409
    receiver.wait_for("offer.accepted")

    # --- another lender cannot book it ---------------------------------------------------------------
    ops.ok(ops.post("/tenants", bank | {"code": "nb-bank", "name": "宁波银行", "name_en": "Ningbo Bank"}), 201)
    ops.ok(ops.post("/tenants/nb-bank/users", {"username": "nb-approver", "password": PASSWORD,
                                               "roles": ["approver"], "display_name": "nb"}), 201)
    other = platform.login("nb-approver", PASSWORD)
    assert other.post("/lending/loans", {"offer_id": offer["id"]}).status_code == 404
    assert other.items("/lending/loans") == []

    # --- booking: exactly what was decided ---------------------------------------------------------
    booked = approver.ok(approver.post("/lending/loans", {"offer_id": offer["id"]}), 201)
    assert approver.post("/lending/loans", {"offer_id": offer["id"]}).status_code == 409
    loan = approver.ok(approver.get(f"/lending/loans/{booked['loan_id']}"))
    assert Decimal(booked["apr"]) == Decimal(offer["apr"])
    assert Decimal(str(loan["principal"])) == Decimal(offer["amount"])
    assert [x["id"] for x in approver.items("/lending/loans", enterprise_id=eid)] == [booked["loan_id"]]
    lines = approver.items("/lending/credit-lines", enterprise_id=eid)
    assert len(lines) == 1 and lines[0]["status"] == "active"
    disbursed = receiver.wait_for("loan.disbursed")
    assert str(booked["loan_id"]) in json.dumps(disbursed["body"])

    # --- bad bookings outside an offer -----------------------------------------------------------------
    manual = {"enterprise_id": eid, "product": "iot-term", "principal": "100000.00", "annual_rate": "0.36",
              "term": 12, "start": today().isoformat(), "reason": "pilot exception"}
    assert approver.post("/lending/loans", manual).status_code == 403  # needs lending:manual
    assert ops.post("/lending/loans", manual).status_code == 422  # above the legal ceiling
    assert ops.post("/lending/loans", manual | {"annual_rate": "0.05", "enterprise_id": 999_999}).status_code == 404
    assert ops.post("/lending/loans", {k: v for k, v in manual.items() if k != "reason"}
                    | {"annual_rate": "0.05"}).status_code == 422  # a reason is required
    assert [x["id"] for x in ops.items("/lending/loans")] == [booked["loan_id"]]

    # --- a repayment -----------------------------------------------------------------------------
    approver.ok(approver.post(f"/lending/loans/{booked['loan_id']}/repayments",
                              {"amount": "1000.00", "date": today().isoformat(), "prepay": True}))
    repayments = approver.items(f"/lending/loans/{booked['loan_id']}/repayments")
    assert [Decimal(str(r["amount"])) for r in repayments] == [Decimal("1000.00")]
    receiver.wait_for("repayment.received")

    # --- the close runs by itself; a close ahead of today is refused -------------------------------
    yesterday = (today() - timedelta(days=1)).isoformat()
    status = wait_until("the automatic close", lambda: (
        s := ops.ok(ops.get("/lending/close"))) and s.get("closed_through") == yesterday and s)
    assert status["last_run"]["status"] in ("ok", "succeeded", "done"), status
    ahead = ops.post("/lending/close", {"date": (today() + timedelta(days=5)).isoformat()})
    assert ahead.status_code == 422, ahead.text
    assert ops.ok(ops.get("/lending/close"))["closed_through"] == yesterday

    # --- a broken seal: an alert, and the line frozen at once --------------------------------------
    http_publish(platform.url, seal["access_token"],
                 [{"ts": int(time.time() * 1000), "values": {"door_open": 1, "seal_intact": 0}}])
    alerts = wait_until("the seal alert", lambda: officer.items("/monitor/alerts", enterprise_id=eid))
    assert any("seal" in json.dumps(a, ensure_ascii=False) or "封" in json.dumps(a, ensure_ascii=False)
               for a in alerts), alerts
    wait_until("the line frozen", lambda: approver.ok(
        approver.get(f"/lending/credit-lines/{lines[0]['id']}"))["status"] == "frozen")
    receiver.wait_for("alert.raised")

    # --- a complaint, filed and resolved ---------------------------------------------------------------
    complaint = firm.ok(firm.post("/complaints", {"category": "service", "subject": "额度被冻结",
                                                  "description": "封条是搬运时碰坏的，请核实。", "tenant": "hz-bank"}),
                        201)
    officer.ok(officer.post(f"/complaints/{complaint['id']}/acknowledge"))
    resolved = officer.ok(officer.post(f"/complaints/{complaint['id']}/resolve", {
        "resolution": "upheld_explained", "note": "现场核实封条为搬运碰坏，已更换并解冻额度。"}))
    assert resolved["status"] == "resolved"
    assert [c["id"] for c in firm.items("/complaints")] == [complaint["id"]]

    # --- unknown ids are 404s, not 500s ---------------------------------------------------------------
    for path in ("/enterprises/999999", "/offers/999999", "/lending/loans/999999", "/credit-applications/999999"):
        assert officer.get(path).status_code == 404, path
