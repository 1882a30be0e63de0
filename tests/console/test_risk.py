"""The risk manager's pages in a real browser: a bank's risk manager sees its own book only (totals
equal to the API's for its tenant, not another bank's), with the tier, DPD and vintage charts drawn;
the operator deploys a strategy version and rolls it back from the strategies page, and replays one;
the models page lists the scorecard and model versions; a risk manager is refused the operator's strategy page."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest

from iotfin.decision.strategies import default_strategy_text
from tests.console.conftest import Workspace

pytestmark = pytest.mark.slow


def _portfolio(ws: Workspace, user: str) -> dict[str, Any]:
    with ws.api(user) as api:
        r = api.get("/api/v1/lending/portfolio")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_bank_risk_manager_sees_its_own_book(browser_page: Any, console_workspace: Workspace, language: str) -> None:
    ws = console_workspace
    mine, theirs, whole = (_portfolio(ws, u) for u in ("bank-a-risk", "bank-b-risk", "demo-operator"))
    assert Decimal(mine["principal_outstanding"]) > 0
    assert mine["principal_outstanding"] != theirs["principal_outstanding"]
    assert Decimal(mine["principal_outstanding"]) < Decimal(whole["principal_outstanding"])
    tab = browser_page(language)
    tab.sign_in("bank-a-risk", ws.password)
    page = tab.page
    assert page.url.endswith("/risk/portfolio")  # a risk manager's home
    assert "bank-a" in page.inner_text("[data-testid=portfolio-scope]")
    assert Decimal(page.get_attribute("[data-testid=principal-outstanding]", "data-value") or "-1") == \
        Decimal(mine["principal_outstanding"])
    assert Decimal(page.get_attribute("[data-testid=allowance]", "data-value") or "-1") == Decimal(mine["allowance"])
    assert page.get_attribute("[data-testid=npl-ratio]", "data-value") == mine["npl_ratio"]
    assert int(page.inner_text("[data-testid=active-loans]").replace(",", "")) == mine["active_loans"]
    assert page.locator("[data-testid=tiers] tbody tr[data-tier]").count() == len(mine["by_tier"])
    # DPD buckets in their own order, current first (not the JSON's sorted keys), with the API's counts
    rows = page.locator("[data-testid=dpd] tbody tr")
    assert rows.count() == len(mine["by_dpd_bucket"])
    assert rows.first.inner_text().split("\t")[0].strip() == ("未逾期" if language == "zh" else "Current")
    assert int(rows.first.locator("td.num").inner_text().replace(",", "")) == mine["by_dpd_bucket"]["current"]
    tab.wait_for_charts()
    assert page.locator("[data-chart-src][data-ready]").count() == 3
    # the vintage chart has a line per origination month of this bank's loans
    with ws.api("bank-a-risk") as api:
        cohorts = api.get("/api/v1/lending/portfolio", params={"vintages": "true"}).json()["vintages"]
    drawn = page.get_attribute("[data-chart-src='/risk/portfolio/vintages.json']", "data-points")
    assert int(drawn or 0) == sum(len(c["points"]) for c in cohorts) > 0
    tab.screenshot(f"risk-portfolio-{language}")
    # the operator's strategy page is not a bank's
    assert page.locator("nav.sidebar a[href='/risk/strategies']").count() == 0
    tab.goto("/risk/strategies", status=403)


def test_operator_deploys_and_rolls_back_a_strategy_version(browser_page: Any, console_workspace: Workspace) -> None:
    ws = console_workspace
    with ws.api("demo-operator") as api:
        data = api.get("/api/v1/decision-strategies/default").json()
        if data["deployment"] is None:  # nothing decided yet in this workspace: the packaged default first
            api.post("/api/v1/decision-strategies/default/versions", json={
                "published_by": "console-test", "content": json.loads(default_strategy_text()),
                "note": "packaged default strategy"}).raise_for_status()
            data = api.get("/api/v1/decision-strategies/default").json()
        champion = data["deployment"]["champion_version"]
        content = api.get(f"/api/v1/decision-strategies/default/versions/{champion}").json()
        made = api.post("/api/v1/decision-strategies/default/versions", json={
            "published_by": "console-test", "content": content, "note": "same rules, republished", "activate": False})
        assert made.status_code == 201, made.text
        new = made.json()["version"]
    tab = browser_page("en")
    tab.sign_in("demo-operator", ws.password, "/risk/strategies")
    page = tab.page
    assert page.locator(f"[data-testid=versions] tr[data-version='{new}']").count() == 1
    assert f"Version {champion}" in page.inner_text("[data-testid=champion]")

    page.click(f"[data-testid=deploy-{new}]")
    page.wait_for_url(re.compile(r".*/risk/strategies\?name=default$"))
    assert f"Version {new} deployed" in page.inner_text("[data-testid=flash]")
    assert f"Version {new}" in page.inner_text("[data-testid=champion]")
    with ws.api("demo-operator") as api:
        assert api.get("/api/v1/decision-strategies/default").json()["deployment"]["champion_version"] == new

    page.click("[data-testid=rollback]")
    page.wait_for_url(re.compile(r".*/risk/strategies\?name=default$"))
    assert f"version {champion} is the champion again" in page.inner_text("[data-testid=flash]")
    with ws.api("demo-operator") as api:
        assert api.get("/api/v1/decision-strategies/default").json()["deployment"]["champion_version"] == champion
    # what changed: the same rules republished change no node
    tab.goto(f"/risk/strategies?name=default&compare={new}")
    assert "No node changed" in page.inner_text("[data-testid=changes]")
    # replay of the new version on past applications: the same rules decide the same
    page.click(f"[data-testid=replay-{new}]")
    page.wait_for_selector("[data-testid=replay-result]")
    assert re.search(r"^0 of \d+ applications would be decided differently", page.inner_text("[data-testid=replay-result] p"))
    tab.check_texts()

    tab.goto("/risk/models")
    assert page.locator("h1").inner_text() == "Risk models"
    with ws.api("demo-operator") as api:
        scorecards = api.get("/api/v1/risk/scorecards").json()["items"]
        models = api.get("/api/v1/risk/models").json()["items"]
    assert page.locator("[data-testid=scorecards] tbody tr").count() == len(scorecards) >= 1
    assert page.locator("[data-testid^=model-]").count() == len(models)
