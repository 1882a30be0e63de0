"""Onboarding over the open API, as the contract (issue 18) spells it: tenants and partners, their
clients and users; enterprises with a checked unified social credit code; sites; enterprise users;
device provisioning (an IoT vendor within the enterprise's consent); the lists; telemetry reads for
the enterprise and a consenting lender. Every refusal changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.client import ApiError, IotfinClient
from iotfin.consent.tables import ConsentAccess
from iotfin.core.settings import Settings
from iotfin.identity import codes
from iotfin.identity.tables import Enterprise, RecordOwner, Site, Tenant
from tests.openapi_world import operator_headers

PASSWORD = "a long enough passphrase"
USCC_1 = "91350100M000100Y43"
USCC_2 = codes.make_uscc("91", "330106", "MA2H7K3P5")


def enterprise_body(uscc: str = USCC_1, **extra: Any) -> dict[str, Any]:
    return {"uscc": uscc, "name": "福州示范制造有限公司", "name_en": "Fuzhou Demo Manufacturing Co., Ltd.",
            "sector": "manufacturing", "subsector": "auto_parts", "region_code": "350100", "founded_on": "2015-03-01",
            "registered_capital": "5000000.00", "legal_rep_name": "张三", "legal_rep_id_number": "11010519491231002X",
            "legal_rep_phone": "+86 138 0000 0000", "tax_grade": "B"} | extra


SITE = {"name": "一号厂房", "kind": "factory", "address": "福建省福州市鼓楼区工业路 1 号", "lat": 26.08, "lon": 119.30,
        "geofence_radius_m": 500}


class Api:
    """The app, the operator's token, and helpers to sign in as the principals the tests create."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.http = TestClient(create_app(ws, background=False))
        self.op = operator_headers(ws)

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.http.request(method, f"/api/v1{path}", headers=self.op if headers is None else headers, **kwargs)

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def login(self, username: str) -> dict[str, str]:
        r = self.http.post("/oauth/token", data={"grant_type": "password", "username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def client_login(self, cred: dict[str, Any]) -> dict[str, str]:
        r = self.http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                                 "client_secret": cred["client_secret"]})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def tenant(self, code: str, kind: str = "bank", partner_kind: str | None = None) -> dict[str, Any]:
        return self.ok(self.call("POST", "/tenants", json={"code": code, "name": f"{code} 名称", "name_en": code.title(),
                                                           "kind": kind, "partner_kind": partner_kind}), 201)

    def user(self, tenant: str, username: str, roles: list[str]) -> dict[str, str]:
        self.ok(self.call("POST", f"/tenants/{tenant}/users", json={"username": username, "password": PASSWORD,
                                                                     "roles": roles}), 201)
        return self.login(username)

    def enterprise_user(self, enterprise_id: int, username: str, headers: dict[str, str] | None = None) -> dict[str, str]:
        self.ok(self.call("POST", f"/enterprises/{enterprise_id}/users", headers,
                          json={"username": username, "password": PASSWORD, "display_name": "企业管理员"}), 201)
        return self.login(username)

    def grant(self, enterprise: dict[str, str], enterprise_id: int, recipient: str, purpose: str,
              scopes: list[str], window_start: date | None = None) -> dict[str, Any]:
        return self.ok(self.call("POST", "/consents", enterprise, json={
            "enterprise_id": enterprise_id, "recipient": recipient, "purpose": purpose, "scopes": scopes,
            "window_start": (window_start or date.today() - timedelta(days=30)).isoformat()}), 201)

    def counts(self) -> dict[str, int]:
        with self.ws.engine.connect() as conn:
            return {t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (Tenant, Enterprise, Site, RecordOwner)}

    def access_log(self) -> list[Any]:
        self.ws.consent.log.flush()
        with self.ws.engine.connect() as conn:
            return conn.execute(select(ConsentAccess).order_by(ConsentAccess.id)).all()


@pytest.fixture
def api(workspace: Workspace) -> Api:
    return Api(workspace)


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=f"sqlite:///{tmp_path / 'iotfin.db'}"))
    ws.initialise()
    try:
        yield Api(ws)
    finally:
        ws.close()


def test_operator_onboards_a_lender_a_partner_an_enterprise_a_site_and_a_device(api: Api) -> None:
    bank = api.ok(api.call("POST", "/tenants", json={
        "code": "hz-bank", "name": "杭州城市商业银行", "name_en": "Hangzhou City Commercial Bank", "kind": "bank",
        "contact_name": "王敏", "contact_phone": "+86 571 8888 0000", "contact_email": "pilot@hzbank.example"}), 201)
    assert {k: v for k, v in bank.items() if k not in ("id", "created_at")} == {
        "code": "hz-bank", "name": "杭州城市商业银行", "name_en": "Hangzhou City Commercial Bank", "kind": "bank",
        "partner_kind": None, "contact_name": "王敏", "contact_phone": "+86 571 8888 0000",
        "contact_email": "pilot@hzbank.example"}
    vendor = api.tenant("iot-vendor", "partner", "iot_vendor")
    assert vendor["kind"] == "partner" and vendor["partner_kind"] == "iot_vendor"
    assert [t["code"] for t in api.ok(api.call("GET", "/tenants?kind=partner"))["items"]] == ["iot-vendor"]
    assert api.ok(api.call("GET", "/tenants/hz-bank"))["id"] == bank["id"]

    client = api.ok(api.call("POST", "/tenants/hz-bank/clients", json={"name": "core banking",
                                                                       "scopes": ["lending:read", "enterprises:read"]}), 201)
    assert client["tenant"] == "hz-bank" and client["client_secret"].startswith("ics_")
    assert client["scopes"] == ["enterprises:read", "lending:read"]

    created = api.ok(api.call("POST", "/enterprises", json=enterprise_body(lender="hz-bank")), 201)
    assert {k: v for k, v in created.items() if k not in ("id", "created_at")} == {
        "uscc": USCC_1, "name": "福州示范制造有限公司", "name_en": "Fuzhou Demo Manufacturing Co., Ltd.",
        "sector": "manufacturing", "subsector": "auto_parts", "region_code": "350100", "region": "福建省福州市",
        "region_en": "Fuzhou, Fujian", "founded_on": "2015-03-01", "registered_capital": "5000000.00",
        "tax_grade": "B", "onboarded_by": "hz-bank"}
    assert "legal_rep" not in str(created) and "张三" not in str(created)  # personal data stays behind pii:read
    eid = created["id"]
    assert api.ok(api.call("GET", f"/enterprises/{eid}")) == created

    site = api.ok(api.call("POST", f"/enterprises/{eid}/sites", json=SITE), 201)
    assert site == {"id": site["id"], "enterprise_id": eid, **SITE, "geofence_radius_m": 500.0}
    assert api.ok(api.call("GET", f"/enterprises/{eid}/sites"))["items"] == [site]

    device = api.ok(api.call("POST", f"/enterprises/{eid}/devices", json={
        "name": "fz-meter-1", "profile": "electricity_meter", "site_id": site["id"]}), 201)
    assert set(device) == {"device_id", "name", "enterprise_id", "site_id", "profile", "device_type", "status",
                           "access_token"}
    assert (device["enterprise_id"], device["site_id"], device["profile"]) == (eid, site["id"], "electricity_meter")
    listed = api.ok(api.call("GET", "/devices"))["items"]
    assert [(d["device_id"], d["site_id"], d["status"]) for d in listed] == [(device["device_id"], site["id"], "active")]
    assert "access_token" not in listed[0]
    # the device talks at once, with the token as shown once
    r = api.http.post(f"/api/v1/{device['access_token']}/telemetry", json={"energy_kwh": 12.5})
    assert r.status_code == 200, r.text


def test_an_invalid_code_or_field_is_422_naming_the_field_and_stores_nothing(api: Api) -> None:
    api.tenant("bank-a")
    before = api.counts()
    cases = {
        "uscc": enterprise_body(uscc="91350100M000100Y44"),            # wrong check character
        "region_code": enterprise_body(region_code="999999"),
        "sector": enterprise_body(sector="banking"),
        "registered_capital": enterprise_body(registered_capital="5e6"),
        "legal_rep_id_number": enterprise_body(legal_rep_id_number="110105194912310021"),  # wrong check digit
        "legal_rep_phone": enterprise_body(legal_rep_phone="call me"),
        "founded_on": enterprise_body(founded_on=(date.today() + timedelta(days=40)).isoformat()),
        "tax_grade": enterprise_body(tax_grade="Z"),
        "lender": enterprise_body(lender="no-such-bank"),
    }
    for field, body in cases.items():
        r = api.call("POST", "/enterprises", json=body)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["field"] == field, (field, r.json())
        assert r.headers["content-type"].startswith("application/problem+json")
    check = api.call("POST", "/enterprises", json=enterprise_body(uscc="91350100M000100Y44")).json()
    assert "check character" in check["detail"] and "校验码" in check["detail"]
    missing = api.call("POST", "/enterprises", json={k: v for k, v in enterprise_body().items() if k != "name_en"})
    assert missing.status_code == 422 and missing.json()["field"] == "name_en"
    for field, body in {"code": {"code": "Bank A!", "name": "x", "name_en": "x", "kind": "bank"},
                        "partner_kind": {"code": "p-1", "name": "x", "name_en": "x", "kind": "partner"},
                        "contact_email": {"code": "b-9", "name": "x", "name_en": "x", "kind": "bank",
                                          "contact_email": "nobody"}}.items():
        r = api.call("POST", "/tenants", json=body)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    eid = api.ok(api.call("POST", "/enterprises", json=enterprise_body()), 201)["id"]
    before = api.counts()
    for field, body in {"lat": SITE | {"lat": 91}, "kind": SITE | {"kind": "castle"},
                        "geofence_radius_m": SITE | {"geofence_radius_m": -5}}.items():
        r = api.call("POST", f"/enterprises/{eid}/sites", json=body)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert api.counts() == before


def test_duplicates_are_409_and_change_nothing(api: Api) -> None:
    api.tenant("bank-a")
    assert api.call("POST", "/tenants", json={"code": "bank-a", "name": "又一个", "name_en": "Again",
                                              "kind": "bank"}).status_code == 409
    api.ok(api.call("POST", "/enterprises", json=enterprise_body()), 201)
    before = api.counts()
    again = api.call("POST", "/enterprises", json=enterprise_body(name="另一家"))
    assert again.status_code == 409 and USCC_1 in again.json()["detail"]
    lower = api.call("POST", "/enterprises", json=enterprise_body(uscc=USCC_1.lower()))  # the same code, typed
    assert lower.status_code == 409
    eid = api.ok(api.call("GET", "/enterprises"))["items"][0]["id"]
    api.ok(api.call("POST", f"/enterprises/{eid}/sites", json=SITE), 201)
    assert api.call("POST", f"/enterprises/{eid}/sites", json=SITE).status_code == 409
    assert api.counts() == before | {"sites": before["sites"] + 1}


def test_unknown_enterprise_is_404(api: Api) -> None:
    for method, path, body in (("GET", "/enterprises/999", None), ("GET", "/enterprises/999/sites", None),
                               ("POST", "/enterprises/999/sites", SITE),
                               ("POST", "/enterprises/999/devices", {"profile": "electricity_meter", "site_id": 1}),
                               ("POST", "/enterprises/999/users", {"username": "x-admin", "password": PASSWORD}),
                               ("GET", "/enterprises/999/telemetry?device_id=1", None),
                               ("GET", "/tenants/no-such", None)):
        r = api.call(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)


def test_a_lender_lists_and_reads_only_its_own_customers(api: Api) -> None:
    api.tenant("bank-a")
    api.tenant("bank-b")
    officer_a = api.user("bank-a", "a-officer", ["risk_officer"])
    approver_a = api.user("bank-a", "a-approver", ["approver"])
    officer_b = api.user("bank-b", "b-officer", ["risk_officer"])
    mine = api.ok(api.call("POST", "/enterprises", officer_a, json=enterprise_body()), 201)
    theirs = api.ok(api.call("POST", "/enterprises", officer_b, json=enterprise_body(
        uscc=USCC_2, name="杭州示范仓储有限公司", name_en="Hangzhou Demo Warehousing", region_code="330106",
        sector="logistics")), 201)
    assert (mine["onboarded_by"], theirs["onboarded_by"]) == ("bank-a", "bank-b")
    assert theirs["region"] == "浙江省杭州市" and theirs["region_en"] == "Hangzhou, Zhejiang"

    def ids(headers: dict[str, str], query: str = "") -> list[int]:
        return [e["id"] for e in api.ok(api.call("GET", f"/enterprises{query}", headers))["items"]]

    assert ids(officer_a) == ids(approver_a) == [mine["id"]]
    assert ids(officer_b) == [theirs["id"]]
    assert ids(api.op) == [mine["id"], theirs["id"]]
    assert api.call("GET", f"/enterprises/{theirs['id']}", officer_a).status_code == 404
    assert api.call("GET", f"/enterprises/{theirs['id']}/sites", officer_a).status_code == 404
    before = api.counts()
    assert api.call("POST", f"/enterprises/{theirs['id']}/sites", officer_a, json=SITE).status_code == 404
    assert api.call("POST", f"/enterprises/{theirs['id']}/users", officer_a,
                    json={"username": "intruder", "password": PASSWORD}).status_code == 404
    assert api.counts() == before
    # a lender onboards for itself only; it cannot name another lender
    r = api.call("POST", "/enterprises", officer_a, json=enterprise_body(
        uscc=codes.make_uscc("91", "440300", "MA5G00001"), lender="bank-b"))
    assert r.status_code == 403
    # filters: sector, region (a province lists its prefectures and counties), text
    assert ids(api.op, "?sector=logistics") == [theirs["id"]]
    assert ids(api.op, "?region_code=330000") == [theirs["id"]] and ids(api.op, "?region_code=350100") == [mine["id"]]
    assert ids(api.op, "?q=福州") == [mine["id"]] and ids(api.op, "?q=warehousing") == [theirs["id"]]
    assert ids(api.op, f"?q={USCC_2[:10]}") == [theirs["id"]]
    assert ids(officer_a, "?q=杭州") == []  # someone else's customer stays invisible to a search too
    assert api.call("GET", "/enterprises?sector=banking").json()["field"] == "sector"
    # the lender sets up its customer's site and console user; the enterprise sees itself only
    site = api.ok(api.call("POST", f"/enterprises/{mine['id']}/sites", officer_a, json=SITE), 201)
    admin = api.enterprise_user(mine["id"], "fz-admin", officer_a)
    assert ids(admin) == [mine["id"]]
    assert api.ok(api.call("GET", f"/enterprises/{mine['id']}/sites", admin))["items"] == [site]
    assert api.call("GET", f"/enterprises/{theirs['id']}", admin).status_code == 404
    # an approver cannot onboard (no onboarding:write)
    assert api.call("POST", "/enterprises", approver_a, json=enterprise_body(uscc=USCC_2)).status_code == 403


def test_enterprise_lists_are_keyset_paged(api: Api) -> None:
    made = [api.ok(api.call("POST", "/enterprises", json=enterprise_body(
        uscc=codes.make_uscc("91", "440300", f"MA5G0000{n}"), name=f"企业{n}")), 201)["id"] for n in range(5)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = api.ok(api.call("GET", "/enterprises", params={"limit": 2, **({"cursor": cursor} if cursor else {})}))
        seen += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == made and pages == 3
    assert api.call("GET", "/enterprises?cursor=bogus").status_code == 422


def test_device_provisioning_by_the_enterprise_and_by_a_consenting_iot_vendor(api: Api) -> None:
    api.tenant("vendor", "partner", "iot_vendor")
    api.tenant("haulier", "partner", "logistics")
    api.tenant("bank-a")
    e1 = api.ok(api.call("POST", "/enterprises", json=enterprise_body()), 201)["id"]
    e2 = api.ok(api.call("POST", "/enterprises", json=enterprise_body(uscc=USCC_2, region_code="330106")), 201)["id"]
    site1 = api.ok(api.call("POST", f"/enterprises/{e1}/sites", json=SITE), 201)["id"]
    site2 = api.ok(api.call("POST", f"/enterprises/{e2}/sites", json=SITE), 201)["id"]
    admin = api.enterprise_user(e1, "e1-admin")

    # the enterprise provisions at its own site; another enterprise's site is a 422 naming site_id
    own = api.ok(api.call("POST", f"/enterprises/{e1}/devices", admin,
                          json={"name": "e1-seal", "profile": "door_seal", "site_id": site1}), 201)
    assert own["device_type"] == "door_seal"
    before = api.ok(api.call("GET", "/devices"))["items"]
    wrong_site = api.call("POST", f"/enterprises/{e1}/devices", admin, json={"profile": "door_seal", "site_id": site2})
    assert wrong_site.status_code == 422 and wrong_site.json()["field"] == "site_id"
    bad_profile = api.call("POST", f"/enterprises/{e1}/devices", admin, json={"profile": "toaster", "site_id": site1})
    assert bad_profile.status_code == 422 and bad_profile.json()["field"] == "profile"
    assert api.call("POST", f"/enterprises/{e2}/devices", admin,
                    json={"profile": "door_seal", "site_id": site2}).status_code == 404
    taken = api.call("POST", f"/enterprises/{e1}/devices", admin,
                     json={"name": "e1-seal", "profile": "door_seal", "site_id": site1})
    assert taken.status_code == 409
    assert api.ok(api.call("GET", "/devices"))["items"] == before  # nothing was created by the refusals

    # scopes follow the kind of tenant: an IoT vendor's client may provision, a haulier's and a bank's may not
    vendor = api.client_login(api.ok(api.call("POST", "/tenants/vendor/clients", json={
        "name": "install app", "scopes": ["devices:provision", "telemetry:read"]}), 201))
    for code in ("haulier", "bank-a"):
        r = api.call("POST", f"/tenants/{code}/clients", json={"name": "x", "scopes": ["devices:provision"]})
        assert r.status_code == 422 and r.json()["field"] == "scopes", r.text
    # without the enterprise's consent the vendor is refused (403, logged), and nothing is created
    meter = {"name": "e1-meter", "profile": "electricity_meter", "site_id": site1}
    refused = api.call("POST", f"/enterprises/{e1}/devices", vendor, json=meter)
    assert refused.status_code == 403 and "telemetry:energy" in refused.json()["detail"]
    assert api.ok(api.call("GET", "/devices"))["items"] == before
    api.grant(admin, e1, "vendor", "supply_chain_service", ["telemetry:energy"])
    made = api.ok(api.call("POST", f"/enterprises/{e1}/devices", vendor, json=meter), 201)
    assert made["enterprise_id"] == e1 and made["access_token"]
    # the consent covers electricity meters only
    seal = api.call("POST", f"/enterprises/{e1}/devices", vendor, json={"profile": "door_seal", "site_id": site1})
    assert seal.status_code == 403
    log = [(r.recipient, r.scope, r.purpose, r.allowed) for r in api.access_log()]
    assert log == [("vendor", "telemetry:energy", "supply_chain_service", False),
                   ("vendor", "telemetry:energy", "supply_chain_service", True),
                   ("vendor", "telemetry:security", "supply_chain_service", False)]


def _stream(api: Api, token: str, start_ms: int, n: int, step_ms: int = 60_000) -> None:
    r = api.http.post(f"/api/v1/{token}/telemetry", json=[
        {"ts": start_ms + i * step_ms, "values": {"energy_kwh": 100.0 + i, "power_kw": float(i % 5)}} for i in range(n)])
    assert r.status_code == 200, r.text


def test_device_lists_and_telemetry_reads_within_consent(api: Api) -> None:
    api.tenant("bank-a")
    api.tenant("bank-b")
    officer = api.user("bank-a", "a-officer", ["risk_officer"])
    other = api.user("bank-b", "b-officer", ["risk_officer"])
    eid = api.ok(api.call("POST", "/enterprises", officer, json=enterprise_body()), 201)["id"]
    site = api.ok(api.call("POST", f"/enterprises/{eid}/sites", officer, json=SITE), 201)["id"]
    admin = api.enterprise_user(eid, "e-admin", officer)
    meter = api.ok(api.call("POST", f"/enterprises/{eid}/devices", admin,
                            json={"name": "m-1", "profile": "electricity_meter", "site_id": site}), 201)
    seal = api.ok(api.call("POST", f"/enterprises/{eid}/devices", admin,
                           json={"name": "s-1", "profile": "door_seal", "site_id": site}), 201)
    now = int(time.time() * 1000)
    start = now - now % 3_600_000 - 7_200_000  # whole hours, all in the past
    _stream(api, meter["access_token"], start, 90)

    # lists: the operator and the enterprise see both; filters; the lender sees nothing before consent
    def devices(headers: dict[str, str], query: str = "") -> list[int]:
        return [d["device_id"] for d in api.ok(api.call("GET", f"/devices{query}", headers))["items"]]

    both = [meter["device_id"], seal["device_id"]]
    assert devices(api.op) == devices(admin) == both
    assert devices(api.op, f"?profile=door_seal&enterprise_id={eid}&site_id={site}&status=active") == [seal["device_id"]]
    assert devices(api.op, "?status=revoked") == []
    assert devices(officer) == [] and devices(other) == []
    assert api.call("GET", "/devices?status=lost").status_code == 422

    query = f"/enterprises/{eid}/telemetry?device_id={meter['device_id']}&key=energy_kwh&start={start}&end={start + 5_400_000}"
    refused = api.call("GET", query, officer)
    assert refused.status_code == 403 and "telemetry:energy" in refused.json()["detail"]
    api.grant(admin, eid, "bank-a", "post_loan_monitoring", ["telemetry:energy", "alerts"])
    assert devices(officer) == [meter["device_id"]]  # the seal's scope (telemetry:security) is not granted
    assert devices(other) == [] and devices(other, f"?enterprise_id={eid}") == []

    raw = api.ok(api.call("GET", query, officer))
    assert raw["key"] == "energy_kwh" and raw["bucket"] is None and len(raw["points"]) == 90
    assert raw["points"][0] == {"ts": start, "value": 100.0} and raw["truncated"] is False
    hourly = api.ok(api.call("GET", query + "&bucket=1h", admin))
    assert hourly["points"] == [{"ts": start, "avg": 129.5, "min": 100.0, "max": 159.0, "count": 60, "last": 159.0},
                                {"ts": start + 3_600_000, "avg": 174.5, "min": 160.0, "max": 189.0, "count": 30, "last": 189.0}]
    assert api.ok(api.call("GET", query + "&limit=10", api.op))["truncated"] is True
    # the enterprise's and the operator's reads are not checked; the lender's are logged, either way
    log = [(r.recipient, r.scope, r.purpose, r.allowed) for r in api.access_log() if r.scope == "telemetry:energy"]
    assert ("bank-a", "telemetry:energy", "post_loan_monitoring", False) in log
    assert ("bank-a", "telemetry:energy", "post_loan_monitoring", True) in log
    assert ("bank-b", "telemetry:energy", "post_loan_monitoring", False) in log  # its list of the enterprise's devices
    assert {r[0] for r in log} == {"bank-a", "bank-b"}
    # another purpose is not consented; nor is another lender; nor the seal's data
    assert api.call("GET", query + "&purpose=credit_assessment", officer).status_code == 403
    assert api.call("GET", query, other).status_code == 403
    seal_read = f"/enterprises/{eid}/telemetry?device_id={seal['device_id']}&key=door_open"
    assert api.call("GET", seal_read, officer).status_code == 403
    # data before the grant's window is refused
    old = f"/enterprises/{eid}/telemetry?device_id={meter['device_id']}&key=energy_kwh&start=2020-01-01&end=2020-01-02"
    assert api.call("GET", old, officer).status_code == 403
    # bad input: named fields; another enterprise's device is not found
    meter_no_key = f"/enterprises/{eid}/telemetry?device_id={meter['device_id']}"
    for path, field in ((meter_no_key, "key"), (meter_no_key + "&key=volts", "key"),
                        (query + "&bucket=fortnightly", "bucket"), (query + "&bucket=0m", "bucket"),
                        (f"{meter_no_key}&key=energy_kwh&start={start - 300 * 86_400_000}&end={start}&bucket=1m",
                         "bucket"),  # 432000 buckets: too many
                        (f"{meter_no_key}&key=energy_kwh&start=yesterday", "start"),
                        (f"{meter_no_key}&key=energy_kwh&start={start}&end={start}", "start"),
                        (query + "&purpose=curiosity", "purpose")):
        r = api.call("GET", path, admin)
        assert r.status_code == 422 and r.json()["field"] == field, (path, r.text)
    assert api.call("GET", f"/enterprises/{eid + 1}/telemetry?device_id={meter['device_id']}&key=energy_kwh",
                    api.op).status_code == 404


def test_a_device_provisioned_while_serving_is_ingested_at_once(sqlite_api: Api, tmp_path: Path) -> None:
    """The API's device service registers in the serving process's own registry (the one ingest
    consults), so the first reading is accepted; a device another process created is looked up on
    its first reading."""
    api = sqlite_api
    eid = api.ok(api.call("POST", "/enterprises", json=enterprise_body()), 201)["id"]
    site = api.ok(api.call("POST", f"/enterprises/{eid}/sites", json=SITE), 201)["id"]
    assert api.ws.devices.registry is api.ws.ingest.registry
    made = api.ok(api.call("POST", f"/enterprises/{eid}/devices", json={"profile": "electricity_meter", "site_id": site}),
                  201)
    _, status = api.ws.registry.lookup([made["device_id"]])
    assert status.tolist() == [1]  # active, known before any reading
    now = int(time.time() * 1000)
    _stream(api, made["access_token"], now - 600_000, 5)
    assert api.ws.telemetry.series(made["device_id"], "energy_kwh", now - 600_000, now).num_rows == 5
    # another process (the CLI, an API worker) creates one: the serving process takes it on its first reading
    elsewhere = Workspace(api.ws.settings)
    try:
        token = elsewhere.devices.create(site_id=site, profile="electricity_meter").token
    finally:
        elsewhere.close()
    _stream(api, token, now - 600_000, 3)
    listed = api.ok(api.call("GET", f"/devices?site_id={site}"))["items"]
    assert len(listed) == 2
    assert api.ws.telemetry.series(listed[1]["device_id"], "energy_kwh", now - 600_000, now).num_rows == 3


def test_the_python_client_onboards_end_to_end(sqlite_api: Api) -> None:
    api = sqlite_api
    api.ws.identity.create_user("ops", PASSWORD, ["platform_admin"])
    ops = IotfinClient(username="ops", password=PASSWORD, http=api.http)
    ops.create_tenant("bank-a", "甲银行", "Bank A", contact_email="ops@bank-a.example")
    ops.create_tenant_user("bank-a", "a-officer", PASSWORD, ["risk_officer"])
    assert ops.create_tenant_client("bank-a", "core", ["enterprises:read"])["tenant"] == "bank-a"
    officer = IotfinClient(username="a-officer", password=PASSWORD, http=api.http)
    eid = officer.create_enterprise(**enterprise_body())["id"]
    site = officer.create_site(eid, **SITE)["id"]
    officer.create_enterprise_user(eid, "e-admin", PASSWORD)
    admin = IotfinClient(username="e-admin", password=PASSWORD, http=api.http)
    device = admin.provision_device(eid, site, "electricity_meter", name="m-1")
    assert [e["id"] for e in officer.enterprises(region_code="350000")] == [eid]
    assert [d["device_id"] for d in admin.devices(site_id=site)] == [device["device_id"]]
    now = int(time.time() * 1000)
    _stream(api, device["access_token"], now - 300_000, 5)
    series = admin.telemetry(eid, device["device_id"], "power_kw", start=now - 600_000, bucket="1h")
    assert sum(p["count"] for p in series["points"]) == 5
    with pytest.raises(ApiError) as refused:
        officer.telemetry(eid, device["device_id"], "power_kw")  # no consent yet
    assert refused.value.status == 403
    with pytest.raises(ApiError) as bad:
        ops.create_enterprise(**enterprise_body(uscc="91350100M000100Y40"))
    assert bad.value.status == 422 and bad.value.problem["field"] == "uscc"
