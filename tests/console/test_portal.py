"""The enterprise's journey through its portal in a real browser, on the seeded demo workspace: its
devices with a telemetry chart drawn; its consents and the access log with its house bank's reads;
withdrawing the consent, after which the bank's officer's chart of the enterprise's data is refused
with the API's 403 and consent reason (and the refusal is in the enterprise's access log); giving it
again, which restores the read; a complaint filed and listed; an offer accepted after its key facts;
zh and en; another enterprise's records refused as the API refuses them.

The consent test changes the shared workspace (the house bank's consent) and restores it, in a
`finally`, to what it was: same recipient, purpose, scopes and data window."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from iotfin.consent.model import TELEMETRY_SCOPE_OF_DEVICE
from iotfin.console.pages.portal import CHART_KEY
from tests.console.conftest import Workspace

pytestmark = pytest.mark.slow

BANKS = ("bank-a", "bank-b", "bank-c")


def wait_for_charts(tab: Any, timeout_ms: int = 20_000) -> None:
    """Every chart drawn or failed (failures become the test's problems). Playwright's locator
    assertion, not the conftest's `wait_for_function`, which the console's CSP (no 'unsafe-eval') refuses."""
    from playwright.sync_api import expect

    expect(tab.page.locator("[data-chart-src]:not([data-ready]):not([data-error])")).to_have_count(0, timeout=timeout_ms)
    for failed in tab.page.locator("[data-chart-src][data-error]").all():
        tab.problems.append(f"chart failed: {failed.get_attribute('data-chart-src')}: {failed.get_attribute('data-error')}")
    assert tab.page.locator("[data-chart-src][data-ready]").count() >= 1, "no chart drawn"


def click_and_wait(tab: Any, selector: str) -> None:
    with tab.page.expect_navigation():
        tab.page.click(selector)
    tab.check_texts()


def flash(tab: Any) -> str:
    return tab.page.locator("[data-testid=flash]").inner_text()


def house_bank(ws: Workspace, eid: int) -> str:
    """The bank whose officer sees this enterprise (`GET /api/v1/enterprises`: a lender's customers)."""
    for bank in BANKS:
        with ws.api(f"{bank}-officer") as api:
            cursor = None
            while True:
                page = api.get("/api/v1/enterprises", params={"limit": 200, **({"cursor": cursor} if cursor else {})})
                assert page.status_code == 200, page.text
                if any(e["id"] == eid for e in page.json()["items"]):
                    return bank
                cursor = page.json()["next_cursor"]
                if not cursor:
                    break
    raise AssertionError(f"no bank sees enterprise {eid}")


def telemetry_grant(ws: Workspace, user: str, eid: int, bank: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bank's active consent covering a telemetry scope, and a device of that scope."""
    with ws.api(user) as api:
        grants = api.get("/api/v1/consents", params={"enterprise_id": eid}).json()["items"]
        devices = api.get("/api/v1/devices", params={"enterprise_id": eid, "limit": 100}).json()["items"]
    for g in grants:
        if g["recipient"] != bank or g["status"] != "active":
            continue
        for d in devices:
            if TELEMETRY_SCOPE_OF_DEVICE.get(d["device_type"]) in g["scopes"] and d["status"] == "active":
                return g, d
    raise AssertionError(f"no active telemetry consent of enterprise {eid} to {bank}: {grants}")


def chart_key(device: dict[str, Any]) -> str:
    return CHART_KEY[device["device_type"]]


def chart_path(eid: int, device: dict[str, Any], purpose: str) -> str:
    """The console's telemetry chart route (what the officer's enterprise page draws)."""
    return f"/charts/telemetry/{eid}/{device['device_id']}.json?purpose={purpose}&key={chart_key(device)}"


def test_devices_consents_withdrawal_refuses_the_lender_and_regrant_restores(browser_page: Any,
                                                                              console_workspace: Workspace) -> None:
    ws = console_workspace
    user, eid = ws.enterprise_user()
    bank = house_bank(ws, eid)
    grant, device = telemetry_grant(ws, user, eid, bank)
    chart = chart_path(eid, device, grant["purpose"])

    # the lender reads the enterprise's telemetry in the console: allowed, and logged
    officer = browser_page("en")
    officer.sign_in(f"{bank}-officer", ws.password)
    officer.goto(chart, status=200)
    assert '"series"' in officer.page.content()

    firm = browser_page("zh")
    firm.sign_in(user, ws.password)
    assert firm.page.url.endswith("/portal/devices")
    assert firm.page.locator(f"[data-testid=device-{device['device_id']}]").count() == 1
    wait_for_charts(firm)
    # last readings arrive after the page (htmx), each the newest of the API's last seven daily buckets
    from playwright.sync_api import expect  # an optional dev dependency: the fixture skips without it

    expect(firm.page.locator("[data-testid=last-reading] [data-testid=reading]").first).to_contain_text(" = ")
    firm.screenshot("portal-devices-zh")

    firm.goto("/portal/access-log")
    assert firm.page.locator(f"[data-testid=access][data-recipient='{bank}'][data-allowed=yes]").count() >= 1

    firm.goto("/portal/consents")
    row = firm.page.locator(f"[data-testid=consent-{grant['id']}]")
    assert row.get_attribute("data-status") == "active" and bank in row.inner_text()
    firm.screenshot("portal-consents-zh")
    restored = False
    try:
        # withdraw: the lender's very next read is refused, on its page as by the API
        with firm.page.expect_navigation():
            row.locator("[data-testid=withdraw]").click()
        firm.check_texts()
        assert flash(firm) == "授权已撤回"
        assert firm.page.locator(f"[data-testid=consent-{grant['id']}]").get_attribute("data-status") == "withdrawn"
        with ws.api(f"{bank}-officer") as api:
            by_api = api.get(f"/api/v1/enterprises/{eid}/telemetry",
                             params={"device_id": device["device_id"], "purpose": grant["purpose"],
                                     "key": chart_key(device)})
        assert by_api.status_code == 403, by_api.text
        officer.goto(chart, status=by_api.status_code)
        assert by_api.json()["detail"] in officer.page.locator("main").inner_text()
        assert f"no consent from enterprise {eid}" in by_api.json()["detail"]
        assert "授权已撤回" in by_api.json()["detail"]  # the reason, in both languages
        # ... and the refusal is in the enterprise's access log
        firm.goto(f"/portal/access-log?recipient={bank}")
        last_pages(firm)
        assert firm.page.locator(f"[data-testid=access][data-recipient='{bank}'][data-allowed=no]").count() >= 1

        # give the consent again (same recipient, purpose, data and window): the read is restored
        firm.goto("/portal/consents")
        form = firm.page.locator("[data-testid=grant-form]")
        form.locator("[data-testid=grant-recipient]").fill(bank)
        form.locator("[data-testid=grant-purpose]").select_option(grant["purpose"])
        for scope in grant["scopes"]:
            form.locator(f"[data-testid='scope-{scope}']").check()
        form.locator("[data-testid=grant-start]").fill(grant["window_start"])
        with firm.page.expect_navigation():
            form.locator("[data-testid=grant-submit]").click()
        firm.check_texts()
        assert flash(firm) == f"已向 {bank} 授权", flash(firm)
        restored = True
        officer.goto(chart, status=200)
        assert '"series"' in officer.page.content()
    finally:
        if not restored:  # leave the shared workspace as found, whatever failed above
            restore(ws, user, eid, grant)

    # the same pages in English
    en = browser_page("en")
    en.sign_in(user, ws.password, next_path="/portal/devices")
    wait_for_charts(en)
    en.screenshot("portal-devices-en")
    en.goto("/portal/consents")
    assert en.page.locator("h1").inner_text() == "My consents"
    en.screenshot("portal-consents-en")


def last_pages(tab: Any) -> None:
    """Follow the access log's next-page links to its newest rows (it lists oldest first)."""
    for _ in range(200):
        more = tab.page.locator("[data-testid=next-page]")
        if more.count() == 0:
            return
        click_and_wait(tab, "[data-testid=next-page]")


def restore(ws: Workspace, user: str, eid: int, grant: dict[str, Any]) -> None:
    with ws.api(user) as api:
        current = api.get("/api/v1/consents", params={"enterprise_id": eid}).json()["items"]
        if any(g["recipient"] == grant["recipient"] and g["status"] == "active"
               and set(grant["scopes"]) <= set(g["scopes"]) and g["purpose"] == grant["purpose"] for g in current):
            return
        r = api.post("/api/v1/consents", json={"enterprise_id": eid, "recipient": grant["recipient"],
                                               "purpose": grant["purpose"], "scopes": grant["scopes"],
                                               "window_start": grant["window_start"]})
        assert r.status_code == 201, r.text


def test_complaint_and_offer_accepted_after_the_key_facts(browser_page: Any, console_workspace: Workspace) -> None:
    ws = console_workspace
    user, eid = ws.enterprise_user()
    bank = house_bank(ws, eid)
    # an offer for this enterprise, through the public API as its bank (the demo makes none open)
    with ws.api(f"{bank}-officer") as api:
        made = api.post("/api/v1/credit-applications", json={"enterprise_id": eid, "product": "iot-working-capital",
                                                             "amount": "50000.00", "tenor_months": 6,
                                                             "ref": "console-portal-offer"})
        assert made.status_code == 201, made.text
        app_id = made.json()["application_id"]
    if made.json()["status"] == "referred":
        with ws.api(f"{bank}-approver") as api:
            r = api.post(f"/api/v1/credit-applications/{app_id}/reviews",
                         json={"officer": "x", "action": "approve", "reason": "portal test"})
            assert r.status_code == 200, r.text
    with ws.api(user) as api:
        offer = next(o for o in api.get("/api/v1/offers", params={"enterprise_id": eid, "status": "open",
                                                                   "limit": 50}).json()["items"]
                     if o["application_id"] == app_id)

    firm = browser_page("zh")
    firm.sign_in(user, ws.password, next_path="/portal/offers")
    click_and_wait(firm, f"[data-testid=offer-{offer['id']}] a")
    assert firm.page.locator("[data-testid=apr]").inner_text().endswith(offer["apr_percent"])
    assert "年化利率" in firm.page.locator("[data-testid=apr]").inner_text()
    assert "借款总成本" in firm.page.locator("[data-testid=total-cost]").inner_text()
    assert firm.page.locator("[data-testid=schedule] tbody tr").count() == offer["tenor_months"]
    assert firm.page.locator("[data-testid=statement]").inner_text().strip() == offer["key_facts"]["zh"].strip()
    firm.screenshot("portal-offer-zh")
    # the acceptance needs the acknowledgement of the key facts (the browser enforces it; so does the page)
    refused = _post_without_ack(ws, user, offer["id"])
    assert refused.status_code == 303
    with ws.api(user) as api:
        assert api.get(f"/api/v1/offers/{offer['id']}").json()["status"] == "open"
    firm.page.check("[data-testid=read-key-facts]")
    click_and_wait(firm, "[data-testid=accept-offer]")
    assert flash(firm) == "已接受报价：贷款机构将据此放款"
    assert firm.page.locator("[data-testid=accepted]").count() == 1
    with ws.api(user) as api:
        assert api.get(f"/api/v1/offers/{offer['id']}").json()["status"] == "accepted"

    en = browser_page("en")
    en.sign_in(user, ws.password, next_path=f"/portal/offers/{offer['id']}")
    assert "APR" in en.page.locator("[data-testid=apr]").inner_text()
    en.screenshot("portal-offer-en")
    en.goto("/portal/loans")

    # loans: the list and a loan's schedule (the demo books loans for its enterprises)
    with ws.api(user) as api:
        loans = api.get("/api/v1/lending/loans", params={"enterprise_id": eid, "limit": 50}).json()["items"]
    firm.goto("/portal/loans")
    assert firm.page.locator("[data-testid=loans] tbody tr").count() == len(loans)
    if loans:
        click_and_wait(firm, f"[data-testid=loan-{loans[0]['id']}] a")
        assert firm.page.locator("[data-testid=schedule] tbody tr").count() >= 1

    # a complaint, filed on the page and listed with its status
    subject = "控制台投诉测试 console complaint"
    firm.goto("/portal/complaints")
    firm.page.select_option("[data-testid=complaint-category]", "disclosure")
    firm.page.fill("[data-testid=complaint-tenant]", bank)
    firm.page.fill("[data-testid=complaint-subject]", subject)
    firm.page.fill("[data-testid=complaint-description]", "关键信息说明未列明费用。The key facts omitted a fee.")
    click_and_wait(firm, "[data-testid=complaint-submit]")
    assert flash(firm) == "投诉已提交"
    listed = firm.page.locator("[data-testid=complaints] tbody tr", has_text=subject)
    assert listed.count() == 1 and listed.get_attribute("data-status") == "submitted"
    assert "已提交" in listed.inner_text()

    # a hardship request, filed and listed
    firm.goto("/portal/hardship")
    firm.page.fill("[data-testid=hardship-description]", "订单延迟付款。Buyers pay late.")
    firm.page.select_option("[data-testid=hardship-reason]", "supply_chain")
    click_and_wait(firm, "[data-testid=hardship-submit]")
    assert flash(firm) == "纾困申请已提交"
    assert firm.page.locator("[data-testid=hardship-requests] tbody tr[data-status=submitted]").count() >= 1
    en.goto("/portal/complaints")
    en.goto("/portal/hardship")
    en.goto("/portal/access-log")


def _post_without_ack(ws: Workspace, user: str, offer_id: int) -> httpx.Response:
    with httpx.Client(base_url=ws.url, follow_redirects=False) as client:
        form = client.get("/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        assert client.post("/signin", data={"username": user, "password": ws.password,
                                            "csrf_token": token}).status_code == 303
        page = client.get(f"/portal/offers/{offer_id}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        digest = re.search(r'name="key_facts_digest" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        return client.post(f"/portal/offers/{offer_id}/acceptance", data={"csrf_token": csrf, "key_facts_digest": digest})


def test_another_enterprises_records_are_refused_as_the_api_refuses(browser_page: Any,
                                                                    console_workspace: Workspace) -> None:
    ws = console_workspace
    user, eid = ws.enterprise_user()
    with ws.api("demo-operator") as api:
        other_loan = next(loan for loan in api.get("/api/v1/lending/loans", params={"limit": 200}).json()["items"]
                          if loan["enterprise_id"] != eid)
        other_device = next(d for d in api.get("/api/v1/devices", params={"limit": 200}).json()["items"]
                            if d["enterprise_id"] != eid)
    with ws.api(user) as api:
        by_api = {
            "loan": api.get(f"/api/v1/lending/loans/{other_loan['id']}").status_code,
            "telemetry": api.get(f"/api/v1/enterprises/{other_device['enterprise_id']}/telemetry",
                                 params={"device_id": other_device["device_id"]}).status_code,
        }
    assert by_api == {"loan": 404, "telemetry": 404}
    firm = browser_page("en")
    firm.sign_in(user, ws.password)
    firm.goto(f"/portal/loans/{other_loan['id']}", status=by_api["loan"])
    assert f"no loan {other_loan['id']}" in firm.page.content()
    firm.goto(f"/charts/telemetry/{other_device['enterprise_id']}/{other_device['device_id']}.json",
              status=by_api["telemetry"])
    firm.goto("/portal/offers/999999", status=404)
    # a lender's user is not shown the enterprise portal at all
    officer = browser_page("en")
    officer.sign_in("bank-b-officer", ws.password)
    officer.goto("/portal/consents", status=403)


def test_a_consent_post_without_its_csrf_token_is_refused(console_workspace: Workspace) -> None:
    ws = console_workspace
    user, eid = ws.enterprise_user()
    with ws.api(user) as api:
        active = next(g for g in api.get("/api/v1/consents", params={"enterprise_id": eid}).json()["items"]
                      if g["status"] == "active")
    with httpx.Client(base_url=ws.url, follow_redirects=False) as client:
        form = client.get("/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        assert client.post("/signin", data={"username": user, "password": ws.password,
                                            "csrf_token": token}).status_code == 303
        refused = client.post(f"/portal/consents/{active['id']}/withdraw", data={})
        assert refused.status_code == 403 and "CSRF" in refused.text
    with ws.api(user) as api:
        assert api.get(f"/api/v1/consents/{active['id']}").json()["status"] == "active"
