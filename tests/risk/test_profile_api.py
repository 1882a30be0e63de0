"""The credit-profile view through the real app (SQLite and PostgreSQL): stored ratings, tenant
isolation (a lender sees the ratings it asked for, an enterprise its own), the consent re-check on
every lender read with its access-log rows, and the CLI's JSON and bilingual table views."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from iotfin.consent.model import GrantRequest
from iotfin.risk import rate
from tests.openapi_world import World, world  # noqa: F401  fixture
from tests.risk.synth import enterprises

AS_OF = date(2026, 11, 30)
URL = "/api/v1/enterprises/{}/credit-profile"
NON_TELEMETRY = ("business_registration", "tax_rating", "credit_report", "trade_documents")


def _grant(w: World, enterprise_id: int, recipient: str) -> int:
    now = datetime.now(UTC)
    return w.ws.consent.grant(GrantRequest(
        enterprise_id=enterprise_id, recipient=recipient, purpose="credit_assessment", scopes=NON_TELEMETRY,
        window_start=date(2025, 1, 1), window_end=date(2027, 12, 31), expires_at=now + timedelta(days=300)), now).id


@pytest.fixture
def rated(world: World, enterprise_model) -> World:  # noqa: F811, ANN001
    """bank-a rated enterprises 1 and 2, bank-b rated enterprise 1 (a worse profile); enterprise 1
    consented to bank-a only."""
    _, model = enterprise_model
    rows = enterprises(3, seed=21)
    rows["enterprise_id"] = [1, 2, 1]
    scored = rate(model, rows, keep=["enterprise_id"])
    assert world.ws.ratings.record_ratings(model, "bank-a", AS_OF, scored.iloc[:2], {1: [], 2: ["e_sector"]}) == 2
    assert world.ws.ratings.record_ratings(model, "bank-b", AS_OF, scored.iloc[2:], {1: []}) == 1
    _grant(world, 1, "bank-a")
    return world


def _get(w: World, who: str, enterprise_id: int, **params):  # noqa: ANN003, ANN202
    return w.http.get(URL.format(enterprise_id), headers=w.headers(who), params=params)


def test_lender_reads_its_own_rating_under_consent_and_the_read_is_logged(rated: World) -> None:
    r = _get(rated, "a_officer", 1)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["enterprise_id"] == 1 and p["lender"] == "bank-a" and p["as_of"] == AS_OF.isoformat()
    assert p["model"].startswith("enterprise@v") and p["grade_zh"] and p["grade_en"]
    assert set(p["dimensions"]) == {"entity", "asset", "transaction"}
    assert all({"pd", "score", "grade", "zh", "en"} <= set(d) for d in p["dimensions"].values())
    assert 0 < p["pd"] < 1 and all(r["zh"] and r["en"] and r["code"] for r in p["reasons"])
    assert p["consent"] == {"checked": 4, "purpose": "credit_assessment", "allowed": True}
    log = rated.ws.consent.access_log(1, recipient="bank-a")
    assert {row["scope"] for row in log if (row["detail"] or "").startswith("credit profile")} == set(NON_TELEMETRY)
    assert all(row["allowed"] for row in log)


def test_each_caller_sees_only_what_is_theirs(rated: World) -> None:
    # an enterprise: its own ratings (the latest, bank-b's; or bank-a's when asked), nobody else's
    mine = _get(rated, "e1_admin", 1)
    assert mine.status_code == 200 and mine.json()["lender"] == "bank-b" and "consent" not in mine.json()
    assert _get(rated, "e1_admin", 1, lender="bank-a").json()["lender"] == "bank-a"
    assert _get(rated, "e1_admin", 2).status_code == 404
    # the operator: every rating
    assert _get(rated, "admin", 2).json()["lender"] == "bank-a"
    # bank-a never sees bank-b's rating, even when it asks for it by name
    assert _get(rated, "a_officer", 1, lender="bank-b").status_code == 404
    # a rating bank-a made, but enterprise 2 granted bank-a nothing: refused, and the refusal logged
    refused = _get(rated, "a_officer", 2)
    assert refused.status_code == 403 and "no_grant" not in refused.text
    assert "has granted this recipient nothing" in refused.json()["detail"]
    assert not any(row["allowed"] for row in rated.ws.consent.access_log(2, recipient="bank-a"))
    # unknown enterprise, bad id, no token, no risk:read scope
    assert _get(rated, "a_officer", 999).status_code == 404
    assert _get(rated, "a_officer", 0).status_code == 422
    assert rated.http.get(URL.format(1)).status_code == 401
    assert _get(rated, "bank_a", 1).status_code == 403  # a partner client without risk:read


def test_withdrawn_consent_makes_the_profile_unreadable(rated: World) -> None:
    assert _get(rated, "a_officer", 1).status_code == 200
    grant = rated.ws.consent.grants(1, "bank-a")[0]
    rated.ws.consent.withdraw(grant.id, 1)
    r = _get(rated, "a_officer", 1)
    assert r.status_code == 403 and "consent has been withdrawn" in r.json()["detail"] and "授权已撤回" in r.json()["detail"]
    assert _get(rated, "e1_admin", 1, lender="bank-a").status_code == 200  # the enterprise still sees its own


def test_cli_profile_json_and_bilingual_table(rated: World, tmp_path) -> None:  # noqa: ANN001
    settings = rated.ws.settings
    env = {**os.environ, "IOTFIN_DATABASE_URL": settings.database_url, "IOTFIN_DATA_DIR": str(settings.data_dir),
           "COLUMNS": "200"}

    def iotfin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "iotfin", "risk", "profile", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    r = iotfin("1", "--lender", "bank-a", "--as-lender", "--json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["lender"] == "bank-a" and p["consent"]["allowed"] and set(p["dimensions"]) == {"entity", "asset", "transaction"}
    text = iotfin("1", "--lender", "bank-b")
    assert text.returncode == 0, text.stderr
    assert "三维信用 / three dimensions" in text.stdout and "资产信用 asset credit" in text.stdout
    assert "综合评级 combined grade" in text.stdout and "主要原因 / main reasons" in text.stdout
    # bank-b holds no consent of enterprise 1: reading as bank-b fails with one line and exit 77
    refused = iotfin("1", "--lender", "bank-b", "--as-lender")
    assert refused.returncode == 77 and refused.stderr.count("\n") == 1 and "no longer read" in refused.stderr
    assert iotfin("999").returncode == 66


def test_rating_history_newest_first_under_the_profile_visibility(rated: World, enterprise_model) -> None:  # noqa: ANN001
    """A second rating run adds a row to the history; each caller sees the history the profile would
    show it, and a lender's read stops when the consent is withdrawn."""
    _, model = enterprise_model
    rows = enterprises(1, seed=77)
    rows["enterprise_id"] = [1]
    later = AS_OF + timedelta(days=30)
    rated.ws.ratings.record_ratings(model, "bank-a", later, rate(model, rows, keep=["enterprise_id"]), {1: []})
    history = "/api/v1/enterprises/{}/credit-ratings"

    r = rated.http.get(history.format(1), headers=rated.headers("a_officer"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["as_of"] for i in items] == [later.isoformat(), AS_OF.isoformat()]  # bank-a's two runs, newest first
    assert {i["lender"] for i in items} == {"bank-a"} and all(0 < i["pd"] < 1 and i["grade_zh"] for i in items)
    assert items[0]["pd"] == rated.http.get(URL.format(1), headers=rated.headers("a_officer")).json()["pd"]
    # the enterprise sees every lender's ratings of it; the operator too; limit applies
    own = rated.http.get(history.format(1), headers=rated.headers("e1_admin")).json()["items"]
    assert {i["lender"] for i in own} == {"bank-a", "bank-b"} and len(own) == 3
    assert len(rated.http.get(history.format(1), headers=rated.headers("admin"), params={"limit": 1}).json()["items"]) == 1
    # not another enterprise's, not beyond the limits, not after withdrawal
    assert rated.http.get(history.format(1), headers=rated.headers("e2_admin")).status_code == 404
    assert rated.http.get(history.format(1), headers=rated.headers("admin"), params={"limit": 0}).status_code == 422
    grant = rated.ws.consent.grants(1, "bank-a")[0]
    rated.ws.consent.withdraw(grant.id, 1)
    refused = rated.http.get(history.format(1), headers=rated.headers("a_officer"))
    assert refused.status_code == 403 and "授权已撤回" in refused.json()["detail"]
