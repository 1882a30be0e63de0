"""Rating on a live platform: the bootstrap scorecard rates a fresh workspace (no trained model)
within the lender's consent, with readable reasons in zh and en; versions publish and activate; bad
content is refused naming the feature; the API never takes a caller's assessment."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from iotfin.app.assessment import BootstrapAssessor
from iotfin.app.http import create_app
from iotfin.app.rating import label_book, next_run
from iotfin.app.workspace import Workspace
from iotfin.consent.model import GrantRequest
from iotfin.core.errors import ValidationError
from iotfin.decision.assessment import GRADES
from iotfin.identity.tables import Tenant
from iotfin.risk import bootstrap, wording
from iotfin.risk.features.catalogue import CATALOGUE
from iotfin.risk.grades import grade_of
from tests.decision.conftest import add_enterprises
from tests.openapi_world import operator_headers

LENDER = "bank-a"
SCOPES = ("business_registration", "tax_rating", "credit_report", "trade_documents")
BAD_TEXT = re.compile(r"\[|\]|\binf\b|-inf|\{|\}|\(\s*-?\d[\d.]*\s*,\s*-?\d[\d.]*\s*\)")


def readable(text: str) -> bool:
    """A sentence, not a bin: no brackets, no infinity, no bare interval '(a, b)'."""
    return bool(text) and not BAD_TEXT.search(text) and "inf" not in text.lower().replace("information", "")


def consent(ws: Workspace, enterprise_id: int, scopes: tuple[str, ...] = SCOPES) -> None:
    now = datetime.now(UTC)
    ws.consent.grant(GrantRequest(enterprise_id, LENDER, "credit_assessment", scopes, date.today() - timedelta(days=400),
                                  date.today() + timedelta(days=30), now + timedelta(days=90)))


@pytest.fixture
def fresh(sqlite_workspace: Workspace) -> Workspace:
    ws = sqlite_workspace
    add_enterprises(ws.engine, range(1, 4))
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant).values(code=LENDER, name="甲银行", name_en="Bank A", kind="bank"))
    consent(ws, 1)
    consent(ws, 2, ("credit_report",))  # the registry and tax grade withheld: missing, and said so
    return ws


# --- the scorecard as data --------------------------------------------------------------------


def test_the_shipped_scorecard_scores_every_catalogue_feature_on_the_master_scale() -> None:
    card = bootstrap.parse(bootstrap.shipped_text())
    assert card.not_scored == ()  # every feature of the catalogue has bins
    assert {f.name for f in card.features} == {f.name for f in CATALOGUE}
    assert card.content["mapping"]["grade_floors"] == bootstrap.grade_floors(card.scaling)
    for grade, floor in bootstrap.grade_floors(card.scaling).items():
        if floor is not None:  # the floor belongs to the grade, a point below to the next
            assert grade_of(bootstrap.pd_of_score(card.scaling, floor + 0.05)).name == grade
            assert grade_of(bootstrap.pd_of_score(card.scaling, floor - 0.5)).name != grade
    best = bootstrap.score(card, {"e_age_years": 20, "e_registered_capital": 5e7, "e_tax_grade": "A",
                                  "e_litigation_count": 0, "e_key_person_changes": 0})
    worst = bootstrap.score(card, {"e_age_years": 0.2, "e_tax_grade": "D", "e_litigation_count": 5,
                                   "a_device_coverage_7d": 0.1, "t_on_time_payment_rate_180d": 0.2})
    assert best["pd"] < worst["pd"] and best["entity_grade"] != worst["entity_grade"]
    assert worst["reason_1"].startswith("e_tax_grade") or worst["reason_1"].startswith("e_litigation_count")


def test_reasons_are_sentences_in_both_languages() -> None:
    card = bootstrap.parse(bootstrap.shipped_text())
    row = bootstrap.score(card, {"a_data_completeness_30d": 0.95, "e_litigation_count": 2, "e_tax_grade": "C",
                                 "c_sales_per_kwh_change": 0.8, "a_device_coverage_7d": 1.0})
    texts = {row[f"reason_{i}_{lang}"] for i in (1, 2, 3) for lang in ("zh", "en")}
    assert all(readable(t) for t in texts), texts
    assert "纳税信用等级为C" in texts and "The tax credit grade is C" in texts
    assert wording.low("a_data_completeness_30d", 0.985) == (
        "近30天设备数据完整率偏低（低于98.5%）", "Device data completeness over the last 30 days was low (below 98.5%)")
    assert wording.high("e_litigation_count", 1.5)[0] == "涉诉案件数偏高（2件及以上）"  # integer: the edge rounded up
    assert wording.low("t_sales_90d", 100000) == ("近90天开票销售额偏低（低于10万元）",
                                                  "The amount invoiced over the last 90 days was low (below CNY 100,000)")
    # a U-shaped feature: the middle is best, so a high value is "high", not "low"
    u = next(f for f in card.features if f.name == "c_sales_per_kwh_change")
    assert u.reason(u.bin_of(0.8), 0.8) == ("单位用电产值变化偏高（50%及以上）",
                                            "The change in sales per kWh used was high (50% or more)")
    assert u.reason(u.bin_of(-0.9), -0.9)[1] == "The change in sales per kWh used was low (below -50%)"
    missing = bootstrap.score(card, {})
    assert "未提供或未获授权" in missing["reason_1_zh"] and "not authorised" in missing["reason_1_en"]


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda c: c["dimensions"]["entity"]["features"].update(e_shoe_size={"edges": [], "points": [0], "missing": 0}),
     "e_shoe_size"),
    (lambda c: c["dimensions"]["asset"]["features"]["a_data_completeness_30d"].update(edges=[0.9, 0.5, 0.985]),
     "a_data_completeness_30d.edges"),
    (lambda c: c["dimensions"]["asset"]["features"]["a_data_completeness_30d"].update(points=[1, 2]),
     "a_data_completeness_30d.points"),
    (lambda c: c["dimensions"]["entity"]["features"]["e_age_years"].pop("missing"), "e_age_years.missing"),
    (lambda c: c["dimensions"]["entity"]["features"]["e_tax_grade"].update(edges=[1]), "e_tax_grade"),
    (lambda c: c["dimensions"]["asset"]["features"].update(
        t_sales_90d=c["dimensions"]["transaction"]["features"]["t_sales_90d"]), "t_sales_90d"),
    (lambda c: c["dimensions"]["entity"].update(weight=0.5), "weights must add up to 1"),
    (lambda c: c["mapping"]["grade_floors"].update(A=650), "grade_floors.A"),
    (lambda c: c["dimensions"]["transaction"]["features"]["t_dso_days"].update(points=[5, "x", -10, -20]),
     "t_dso_days.points[1]"),
])
def test_bad_scorecard_content_is_refused_naming_the_feature(fresh: Workspace, change, fragment: str) -> None:  # noqa: ANN001
    content = json.loads(bootstrap.shipped_text())
    bad = copy.deepcopy(content)
    change(bad)
    fresh.scorecards.ensure_shipped()
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        fresh.scorecards.publish(bad, by="risk-officer")
    assert [v["version"] for v in fresh.scorecards.versions()] == [1]  # nothing stored


# --- a fresh workspace ------------------------------------------------------------------------


def test_a_fresh_workspace_rates_with_the_bootstrap_scorecard(fresh: Workspace) -> None:
    ws = fresh
    assessor = ws.risk_assessor()
    assert isinstance(assessor, BootstrapAssessor) and assessor.model_id == "bootstrap-v1"
    a = assessor(1, LENDER)
    assert a.grade in GRADES and Decimal("0") < a.pd < Decimal("1") and a.consent_ok
    assert set(a.sub_scores) == {"entity", "asset", "transaction"} and all(0 <= v <= 100 for v in a.sub_scores.values())
    assert a.features["model"] == "bootstrap-v1" and a.reasons
    assert all(readable(r.zh) and readable(r.en) for r in a.reasons), a.reasons
    withheld = assessor(2, LENDER)  # registry and tax grade not granted: missing, and a reason says so
    assert withheld.pd > a.pd and any("未获授权" in r.zh for r in withheld.reasons)
    # the shipped version was published once, by the system
    assert [(v["version"], v["published_by"], v["active"]) for v in ws.scorecards.versions()] == [(1, "system", True)]
    # the decision API rates with it: no assessment in the body, the stored one is the platform's
    http = TestClient(create_app(ws), headers=operator_headers(ws))
    r = http.post("/api/v1/credit-applications", json={"enterprise_id": 1, "product": "iot-working-capital",
                                                       "amount": "100000.00", "tenor_months": 12, "lender": LENDER})
    assert r.status_code == 201, r.text
    stored = http.get(f"/api/v1/credit-applications/{r.json()['application_id']}").json()["inputs"]["assessment"]
    assert stored["features"]["model"] == "bootstrap-v1" and stored["grade"] == a.grade
    assert all(readable(x["zh"]) and readable(x["en"]) for x in stored["reasons"])
    forged = http.post("/api/v1/credit-applications", json={"enterprise_id": 1, "product": "iot-working-capital",
                                                            "amount": "100000.00", "tenor_months": 12, "lender": LENDER,
                                                            "assessment": {"grade": "AAA"}})
    assert forged.status_code == 422 and "risk engine" in forged.json()["detail"]


def test_versions_publish_and_activate(fresh: Workspace) -> None:
    ws = fresh
    before = ws.risk_assessor()(1, LENDER)
    stricter = json.loads(bootstrap.shipped_text())
    stricter["dimensions"]["entity"]["base"] = 560
    out = ws.scorecards.publish(stricter, by="cro", note="stricter entity base")
    assert (out["version"], out["model"], out["active"]) == (2, "bootstrap-v2", True)
    after = ws.risk_assessor()(1, LENDER)
    assert after.features["model"] == "bootstrap-v2" and after.pd > before.pd
    draft = ws.scorecards.publish(stricter, by="cro", activate=False)
    assert draft["version"] == 3 and ws.risk_assessor().model_id == "bootstrap-v2"
    ws.scorecards.activate(1, by="cro")
    assert ws.risk_assessor()(1, LENDER).features["model"] == "bootstrap-v1"
    assert [v["active"] for v in ws.scorecards.versions()] == [True, False, False]
    with pytest.raises(Exception, match="no scorecard bootstrap version 9"):
        ws.scorecards.activate(9, by="cro")


def test_rerate_records_ratings_for_open_consents(fresh: Workspace) -> None:
    summary = fresh.rerate()
    assert summary["model"] == "bootstrap-v1" and summary["enterprises"] == 2 and summary["ratings_stored"] == 2
    profile = fresh.ratings.operator_profile(1, LENDER)
    assert profile["model"] == "bootstrap-v1" and set(profile["dimensions"]) == {"entity", "asset", "transaction"}
    assert all(readable(r["zh"]) and readable(r["en"]) for r in profile["reasons"])


def test_book_outcomes_and_the_schedule() -> None:
    today = date(2026, 12, 1)
    loans = [(1, 10, date(2025, 1, 1), "active", None, None, "bank-a"),                  # good, window over
             (2, 11, date(2025, 6, 1), "active", date(2025, 9, 1), None, None),          # 90 DPD reached
             (3, 12, date(2026, 6, 1), "active", None, None, "bank-a"),                  # window not over: unknown
             (4, 13, date(2024, 1, 1), "written_off", None, date(2025, 6, 1), None),     # written off after the window
             (5, 14, date(2026, 9, 1), "active", date(2026, 9, 5), None, "bank-b")]      # 87 days: not yet bad
    assert label_book(loans, today, 365) == [(10, date(2025, 1, 1), 0, "bank-a"), (11, date(2025, 6, 1), 1, None),
                                             (13, date(2024, 1, 1), 0, None)]
    at = next_run(datetime(2026, 12, 1, 17, 59, tzinfo=UTC), "02:00")  # 01:59 in Shanghai
    assert at.isoformat() == "2026-12-02T02:00:00+08:00"
    assert next_run(datetime(2026, 12, 1, 18, 1, tzinfo=UTC), "02:00").isoformat() == "2026-12-03T02:00:00+08:00"


def test_scorecard_versions_over_the_api(fresh: Workspace) -> None:
    http = TestClient(create_app(fresh), headers=operator_headers(fresh))
    listed = http.get("/api/v1/risk/scorecards").json()
    assert listed["active"] == 1 and listed["items"][0]["model"] == "bootstrap-v1"
    content = json.loads(bootstrap.shipped_text())
    content["dimensions"]["transaction"]["features"]["t_dso_days"]["points"] = [5, 0]
    bad = http.post("/api/v1/risk/scorecards/versions", json={"published_by": "cro", "content": content})
    assert bad.status_code == 422 and "t_dso_days" in bad.json()["detail"], bad.text
    assert [i["version"] for i in http.get("/api/v1/risk/scorecards").json()["items"]] == [1]
    content["dimensions"]["transaction"]["features"]["t_dso_days"]["points"] = [5, 0, -15, -25]
    ok = http.post("/api/v1/risk/scorecards/versions", json={"published_by": "cro", "content": content, "activate": False})
    assert ok.status_code == 201 and ok.json()["version"] == 2 and not ok.json()["active"]
    on = http.post("/api/v1/risk/scorecards/versions/2/activation", json={"activated_by": "cro"})
    assert on.status_code == 200 and on.json()["active"] is True
    assert fresh.risk_assessor().model_id == "bootstrap-v2"
    assert http.post("/api/v1/risk/scorecards/versions/7/activation", json={"activated_by": "cro"}).status_code == 404
