"""The credit officer's and the approvers' journeys in a real browser, on the seeded demo workspace:
the review queue and an application's evidence (grade, PD, the three sub-scores with their reasons,
the strategy's trace, limit and pricing), a four-eyes approval by two different approvers, the
enterprise 360 with its charts, the alert inbox (acknowledge, assign, resolve), another bank's
officer refused exactly as the API refuses, and a form post without its CSRF token refused.

Each test acts on records of its own: applications it submits through the public API (the demo's
strategy refers amounts above CNY 2,000,000), the alerts of enterprise 24 (bank A's customer, which
the setup lets bank A monitor: the demo's consents are for credit assessment only)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotfin.ledger.evidence import verify_bundle
from tests.console.conftest import Workspace

pytestmark = pytest.mark.slow

APPLICANT = 29  # bank A's customer; the demo's strategy offers it at most CNY 1,000,000
MONITORED = 24  # bank A's customer with alerts in the demo
FOUR_EYES_AMOUNT = Decimal("1200000.00")  # above the platform's four-eyes amount (CNY 1,000,000)


def submit_referred(ws: Workspace, ref: str) -> int:
    with ws.api("bank-a-officer") as api:
        r = api.post(
            "/api/v1/credit-applications",
            json={
                "enterprise_id": APPLICANT,
                "product": "iot-working-capital",
                "amount": "3000000.00",
                "tenor_months": 12,
                "ref": ref,
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "referred"
        return int(r.json()["application_id"])


def wait_for_charts(tab: Any, timeout_ms: int = 20_000) -> None:
    """Every chart drawn or failed (failures recorded as the test's problems). Not the conftest's
    `wait_for_charts`: its `wait_for_function` string is evaluated in the page, which the console's CSP
    (no 'unsafe-eval') refuses; Playwright's locator assertions run outside the page's CSP."""
    from playwright.sync_api import expect

    expect(tab.page.locator("[data-chart-src]:not([data-ready]):not([data-error])")).to_have_count(
        0, timeout=timeout_ms
    )
    for failed in tab.page.locator("[data-chart-src][data-error]").all():
        tab.problems.append(
            f"chart failed: {failed.get_attribute('data-chart-src')}: {failed.get_attribute('data-error')}"
        )


def click_and_wait(tab: Any, selector: str) -> None:
    with tab.page.expect_navigation():
        tab.page.click(selector)
    tab.check_texts()


def test_queue_application_evidence_and_four_eyes(browser_page: Any, console_workspace: Workspace) -> None:
    ws = console_workspace
    app_id = submit_referred(ws, "console-officer-four-eyes")
    for language in ("zh", "en"):
        officer = browser_page(language)
        officer.sign_in("bank-a-officer", ws.password)
        assert officer.page.url.endswith("/officer/home"), (
            officer.page.url
        )  # the officer's home is the console's /
        assert int(officer.page.locator("[data-testid=count-referred]").inner_text().rstrip("+")) >= 1
        officer.screenshot(f"officer-home-{language}")
        officer.goto("/officer/applications")
        click_and_wait(officer, f"a[data-testid=application-link][href='/officer/applications/{app_id}']")
        page = officer.page
        assert page.locator("[data-testid=application-status]").get_attribute("data-status") == "referred"
        with ws.api("bank-a-officer") as api:
            truth = api.get(f"/api/v1/credit-applications/{app_id}").json()
        assessment = truth["decisions"][0]["result"]["assessment"]
        assert page.locator("[data-testid=grade]").inner_text() == assessment["grade"]
        assert page.locator("[data-testid=pd]").inner_text().endswith("%")
        for dimension in ("entity", "asset", "transaction"):
            shown = page.locator(f"[data-testid=score-{dimension}]").inner_text()
            assert Decimal(shown.replace(",", "")) == Decimal(assessment["sub_scores"][dimension]).quantize(
                Decimal("0.1")
            )
        reasons = page.locator("[data-testid=sub-scores] [data-testid=reason]").all_inner_texts()
        assert len(reasons) == len(assessment["reasons"])
        for reason in assessment["reasons"]:  # each under its dimension (entity e_, asset a_, transaction t_)
            assert any(
                reason["zh" if language == "zh" else "en"] in shown and reason["code"] in shown
                for shown in reasons
            ), reason
        assert "LARGE_AMOUNT" in page.locator("[data-testid=strategy]").inner_text()
        assert page.locator("[data-testid=trace] li").count() == 4
        assert page.locator("[data-testid=review-actions]").count() == 0  # an officer does not approve
        officer.screenshot(f"officer-application-{language}")

    # approver 1 approves (with terms above the four-eyes amount): it awaits a second, different approver
    first = browser_page("en")
    first.sign_in("bank-a-approver", ws.password, f"/officer/applications/{app_id}")
    first.page.fill("[data-testid=counter-amount]", str(FOUR_EYES_AMOUNT))
    first.page.fill("[data-testid=counter-reason]", "orders verified with the buyer")
    click_and_wait(first, "[data-testid=counter-offer]")
    assert (
        first.page.locator("[data-testid=application-status]").get_attribute("data-status")
        == "awaiting_second_approval"
    )
    assert "a second, different approver" in first.page.locator("[data-testid=awaiting-second]").inner_text()
    # ... and cannot approve it again: refused by the API, and said on the page
    first.page.fill("[data-testid=review-reason]", "approving twice")
    click_and_wait(first, "[data-testid=approve]")
    assert "four-eyes" in first.page.locator("[data-testid=flash]").inner_text()
    assert (
        first.page.locator("[data-testid=application-status]").get_attribute("data-status")
        == "awaiting_second_approval"
    )

    second = browser_page("zh")
    second.sign_in("bank-a-approver2", ws.password, f"/officer/applications/{app_id}")
    second.page.fill("[data-testid=review-reason]", "同意 / agree")
    click_and_wait(second, "[data-testid=approve]")
    assert second.page.locator("[data-testid=application-status]").get_attribute("data-status") == "approved"
    assert "审批已记录" in second.page.locator("[data-testid=flash]").inner_text()
    with ws.api("bank-a-approver") as api:
        done = api.get(f"/api/v1/credit-applications/{app_id}").json()
        offers = api.get("/api/v1/offers", params={"enterprise_id": APPLICANT}).json()["items"]
    assert done["status"] == "approved" and Decimal(str(done["approved_amount"])) == FOUR_EYES_AMOUNT
    assert [r["officer"] for r in done["reviews"]] == ["user:bank-a-approver", "user:bank-a-approver2"]
    offer = next(o for o in offers if o["application_id"] == app_id)
    assert f"#{offer['id']}" in second.page.locator("[data-testid=offer]").inner_text()
    # the evidence link downloads the decision's ledger proof, which verifies offline with the log's key
    links = second.page.locator("[data-testid=evidence-link]")
    assert links.count() == len(done["decisions"]) >= 2
    with second.page.expect_download() as download:
        links.last.click()
    bundle = json.loads(Path(download.value.path()).read_text())
    key = httpx.get(f"{ws.url}/api/v1/ledger/key").text.strip()
    proved = verify_bundle(bundle, key)
    assert proved["record_type"] == "credit_decision"
    assert int(proved["record_id"]) in {d["id"] for d in done["decisions"]}


def test_enterprise_360_and_the_alert_inbox(browser_page: Any, console_workspace: Workspace) -> None:
    from playwright.sync_api import expect  # an optional dev dependency: the fixture skips without it

    ws = console_workspace
    with ws.api(
        "demo-operator"
    ) as ops:  # the enterprise's consent to monitoring by bank A (operator on its behalf)
        ops.post(
            "/api/v1/consents",
            json={
                "enterprise_id": MONITORED,
                "recipient": "bank-a",
                "purpose": "post_loan_monitoring",
                "scopes": [
                    "alerts",
                    "telemetry:energy",
                    "telemetry:inventory",
                    "telemetry:security",
                    "telemetry:environment",
                    "telemetry:equipment",
                    "telemetry:gps",
                ],
                "window_start": "2026-01-01",
            },
        ).raise_for_status()
    for language in ("zh", "en"):
        tab = browser_page(language)
        tab.sign_in("bank-a-officer", ws.password, f"/officer/enterprises/{MONITORED}")
        wait_for_charts(tab)
        charts = tab.page.locator("[data-chart-src][data-ready]")
        assert charts.count() >= 2  # the sites map and at least one telemetry chart
        assert (
            int(
                tab.page.locator("[data-chart-src^='/charts/telemetry'][data-ready]").first.get_attribute(
                    "data-points"
                )
                or 0
            )
            > 10
        )
        assert tab.page.locator("[data-testid=devices] tbody tr").count() >= 1
        assert tab.page.locator("[data-testid=consents] tbody tr").count() >= 1
        expect(tab.page.locator("[data-testid=devices] [data-testid=reading]").first).to_contain_text(" = ")
        with ws.api("bank-a-officer") as api:  # what the API gives bank A, the page shows
            documents = api.get(
                f"/api/v1/enterprises/{MONITORED}/trade-documents", params={"limit": 10}
            ).json()
            liens = api.get(
                "/api/v1/financing/liens", params={"enterprise_id": MONITORED, "limit": 10}
            ).json()
        assert (
            tab.page.locator("[data-testid=trade-documents] tbody tr").count() == len(documents["items"]) > 0
        )
        assert tab.page.locator("[data-testid=liens] tbody tr").count() == len(liens["items"])
        with ws.api("bank-a-officer") as api:
            history = api.get(f"/api/v1/enterprises/{MONITORED}/credit-ratings", params={"limit": 12})
        if history.status_code == 200:  # the rating history bank A may read, row by row
            grades = tab.page.locator("[data-testid=rating-history] tbody tr td:nth-child(2)").all_inner_texts()
            assert grades == [i["grade"] for i in history.json()["items"]]
        else:
            assert tab.page.locator("[data-testid=rating-history]").count() == 0
        tab.screenshot(f"officer-enterprise-{language}")
    # zoom into a telemetry chart (mouse wheel): console.js asks the server for the zoomed window
    chart = tab.page.locator("[data-chart-src^='/charts/telemetry'][data-ready]").first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box is not None
    with tab.page.expect_response(lambda r: "/charts/telemetry/" in r.url and "from=" in r.url) as zoomed:
        tab.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(4):
            tab.page.mouse.wheel(0, -400)
    assert zoomed.value.status == 200
    expect(chart).to_have_attribute("data-zoomed", "1")

    tab = browser_page("en")
    tab.sign_in("bank-a-officer", ws.password, "/officer/alerts?status=open")
    with ws.api("bank-a-officer") as api:
        alerts = api.get(
            "/api/v1/monitor/alerts", params={"enterprise_id": MONITORED, "status": "open"}
        ).json()["items"]
    assert alerts, "the demo has open alerts on enterprise 24"
    alert = alerts[-1]["id"]
    row = f"[data-testid=alert-{alert}]"
    tab.goto("/officer/alerts?status=open")
    click_and_wait(tab, f"{row} [data-testid=acknowledge]")
    assert tab.page.locator("[data-testid=flash]").inner_text() == "Alert acknowledged"
    tab.goto("/officer/alerts")
    assert tab.page.locator(row).get_attribute("data-status") == "acknowledged"
    click_and_wait(tab, f"{row} [data-testid=assign]")  # to the signed-in officer (the field's default)
    assert tab.page.locator(f"{row} [data-testid=assignee]").inner_text() == "bank-a-officer"
    tab.goto("/officer/home")
    assert f"#{alert}" in tab.page.locator("[data-testid=my-alerts]").inner_text()
    tab.goto("/officer/alerts?mine=1")
    tab.page.fill(f"{row} [data-testid=resolve-reason]", "device replaced on site")
    click_and_wait(tab, f"{row} [data-testid=resolve]")
    assert tab.page.locator(row).get_attribute("data-status") == "resolved"
    with ws.api("bank-a-officer") as api:
        trail = api.get(f"/api/v1/monitor/alerts/{alert}").json()
    assert trail["status"] == "resolved" and trail["assigned_to"] == "bank-a-officer"
    assert [e["kind"] for e in trail["audit"]][-3:] == ["acknowledged", "assigned", "resolved"]


def test_another_banks_officer_is_refused_as_the_api_refuses(
    browser_page: Any, console_workspace: Workspace
) -> None:
    ws = console_workspace
    app_id = submit_referred(ws, "console-officer-cross-tenant")
    with ws.api("bank-b-officer") as api:
        # bank A's monitored enterprise, or (if bank B has a business of its own with it, as the demo's
        # receivables financing can give it) the first of bank A's enterprises bank B may not see
        with ws.api("bank-a-officer") as bank_a:
            theirs = [e["id"] for e in bank_a.get("/api/v1/enterprises", params={"limit": 100}).json()["items"]]
        foreign = next(e for e in [MONITORED, *theirs] if api.get(f"/api/v1/enterprises/{e}").status_code != 200)
        expected = {
            f"/officer/enterprises/{foreign}": api.get(f"/api/v1/enterprises/{foreign}").status_code,
            f"/officer/applications/{app_id}": api.get(f"/api/v1/credit-applications/{app_id}").status_code,
            f"/officer/enterprises/{foreign}/sites.json": api.get(
                f"/api/v1/enterprises/{foreign}/sites"
            ).status_code,
        }
    assert set(expected.values()) <= {403, 404} and expected
    tab = browser_page("en")
    tab.sign_in("bank-b-officer", ws.password)
    for path, status in expected.items():
        tab.goto(path, status=status)
        if not path.endswith(".json"):
            assert tab.page.locator("[data-testid=error-page]").get_attribute("data-status") == str(status)


def test_a_review_post_without_its_csrf_token_is_refused(console_workspace: Workspace) -> None:
    ws = console_workspace
    app_id = submit_referred(ws, "console-officer-csrf")
    with httpx.Client(base_url=ws.url, follow_redirects=False) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text).group(1)  # type: ignore[union-attr]
        signed = client.post(
            "/signin", data={"username": "bank-a-approver", "password": ws.password, "csrf_token": token}
        )
        assert signed.status_code == 303
        refused = client.post(
            f"/officer/applications/{app_id}/review", data={"action": "decline", "reason": "x"}
        )
        assert refused.status_code == 403 and "CSRF" in refused.text
    with ws.api("bank-a-officer") as api:
        assert (
            api.get(f"/api/v1/credit-applications/{app_id}").json()["status"] == "referred"
        )  # nothing changed
