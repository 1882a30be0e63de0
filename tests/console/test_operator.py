"""The platform operator's pages in a real browser: the fleet (counts equal to the API's), the ledger
(checkpoint, an audit run, an evidence bundle downloaded), the daily close, and creating a console
user through the form (a form post without its CSRF token is refused and creates nothing); a lender's
user opening an operator page gets the API's own refusal."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import Workspace

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("language", ["zh", "en"])
def test_fleet_and_ledger(browser_page: Any, console_workspace: Workspace, language: str) -> None:
    ws = console_workspace
    tab = browser_page(language)
    tab.sign_in("demo-operator", ws.password, "/operator/fleet")
    assert tab.page.url.endswith("/operator/fleet")
    with ws.api("demo-operator") as api:
        fleet = api.get("/api/v1/fleet").json()
    page = tab.page
    assert int(page.get_attribute("[data-testid=fleet-devices]", "data-value") or -1) == fleet["devices"] > 0
    assert int(page.get_attribute("[data-testid=fleet-rejected]", "data-value") or -1) == fleet["rejected"]
    shown = [int(page.inner_text(f"[data-testid=fleet-{k}]")) for k in ("online", "offline", "never-seen")]
    assert sum(shown) == fleet["devices"]  # (online may move between the two reads as timeouts pass)
    assert int(page.inner_text("[data-testid=fleet-quarantined]")) == fleet["quarantined_devices"]
    tab.wait_for_charts()
    tab.screenshot(f"operator-fleet-{language}")

    tab.goto("/operator/ledger")
    size = int(page.get_attribute("[data-testid=tree-size]", "data-value") or -1)
    with ws.api("demo-operator") as api:
        status = api.get("/api/v1/ledger/status").json()
    assert size <= status["size"] and size > 0  # the log only grows
    assert page.inner_text("[data-testid=root-hash]") and page.locator("[data-testid=signatures] li").count() >= 1
    assert page.locator("[data-testid=cosignatures] li").count() == 1
    tab.screenshot(f"operator-ledger-{language}")
    page.click("[data-testid=run-audit]")
    page.wait_for_url(re.compile(r".*/operator/ledger$"))
    flash = page.inner_text("[data-testid=flash]")
    assert ("审计通过" if language == "zh" else "Audit passed") in flash, flash
    link = page.locator("[data-testid=evidence-link]").first
    record = link.get_attribute("href").rsplit("/", 2)[-2:]  # type: ignore[union-attr]
    with page.expect_download() as download:
        link.click()
    bundle = json.loads(Path(download.value.path()).read_text())
    with ws.api("demo-operator") as api:
        expected = api.get(f"/api/v1/ledger/evidence/{record[0]}/{record[1]}").json()
    assert bundle["leaf"] == expected["leaf"] and bundle["leaf"]["index"] >= 0
    tab.check_texts()


def test_close_status_and_creating_a_user(browser_page: Any, console_workspace: Workspace) -> None:
    ws = console_workspace
    tab = browser_page("en")
    tab.sign_in("demo-operator", ws.password, "/operator/close")
    page = tab.page
    with ws.api("demo-operator") as api:
        close = api.get("/api/v1/lending/close").json()
    assert page.get_attribute("[data-testid=closed-through]", "data-value") == (close["closed_through"] or "")

    tab.goto("/operator/users?tenant=bank-c")
    form = page.locator("[data-testid=new-user]")
    form.locator("input[name=username]").fill("bank-c-console-auditor")
    form.locator("input[name=display_name]").fill("审计 / auditor")
    form.locator("input[name=password]").fill("a long console password")
    form.locator("input[name=roles][value=auditor]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/operator/users\?tenant=bank-c$"))
    assert "bank-c-console-auditor" in page.inner_text("[data-testid=flash]")
    assert page.locator("[data-username=bank-c-console-auditor]").count() == 1
    with ws.api("demo-operator") as api:
        users = {u["username"]: u for u in api.get("/api/v1/tenants/bank-c/users").json()["items"]}
    assert users["bank-c-console-auditor"]["roles"] == ["auditor"]
    tab.check_texts()

    # the same form posted without its CSRF token (from another page, a script): refused, nothing created
    session = next(c for c in tab.context.cookies() if c["name"] == "iotfin_session")
    with httpx.Client(base_url=ws.url, cookies={"iotfin_session": session["value"]}, follow_redirects=False) as client:
        refused = client.post("/operator/users", data={"tenant": "bank-c", "username": "bank-c-forged",
                                                       "password": "a long console password", "roles": "auditor"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    with ws.api("demo-operator") as api:
        names = [u["username"] for u in api.get("/api/v1/tenants/bank-c/users").json()["items"]]
    assert "bank-c-forged" not in names


def test_a_lender_gets_the_apis_refusal_on_operator_pages(browser_page: Any, console_workspace: Workspace) -> None:
    ws = console_workspace
    tab = browser_page("zh")
    tab.sign_in("bank-a-officer", ws.password)
    with ws.api("bank-a-officer") as api:
        for page_path, api_path in (("/operator/fleet", "/api/v1/fleet"), ("/operator/ledger", "/api/v1/ledger/status"),
                                    ("/operator/users", "/api/v1/tenants")):
            refused = api.get(api_path)
            assert refused.status_code == 403
            tab.goto(page_path, status=403)
            assert tab.page.inner_text("[data-testid=error-detail]") == refused.json()["detail"]
    # and the operator's pages are not in a lender's navigation
    assert tab.page.locator("nav.sidebar a[href^='/operator/']").count() == 0
