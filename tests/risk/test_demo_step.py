"""The demo's rating step end to end on a small economy: features within consent, the enterprise
three-dimension model trained on point-in-time snapshots, every enterprise rated, and the ratings
deciding credit applications through the published strategy."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest

from iotfin.app.workspace import Workspace
from iotfin.core.errors import NotFound
from iotfin.core.settings import Settings
from iotfin.demo.decision import decide_applications
from iotfin.demo.features import consent_and_features
from iotfin.demo.loader import load_master_data, load_telemetry
from iotfin.demo.risk import rate_enterprises
from iotfin.demo.run import _lenders
from iotfin.sim import SimConfig, SimDataset, generate

START = date(2026, 1, 1)
DAYS = 150


@pytest.fixture(scope="module")
def economy(tmp_path_factory):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("risk_demo")
    generate(SimConfig(enterprises=160, days=DAYS, seed=5, start_date=START, devices=320), root / "sim", workers=1)
    ds = SimDataset(root / "sim")
    ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{root / 'iotfin.db'}", telemetry_dir=root / "telemetry"))
    ws.initialise()
    load_master_data(ws, ds)
    load_telemetry(ws, ds)
    yield root, ws, ds
    ws.close()


END = START + timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def rated(economy):  # noqa: ANN001, ANN201
    """The demo's consent/features and rating steps, the model trained where the workspace keeps it."""
    _, ws, ds = economy
    consent_and_features(ws, ds, END)
    summary, assess = rate_enterprises(ws, ds, START, END, ws.enterprise_model_dir, _lenders(ds))
    return summary, assess


def test_ratings_come_from_a_trained_model_and_decide_applications(economy, rated) -> None:  # noqa: ANN001
    _, ws, ds = economy
    end = END
    summary, assess = rated
    assert summary["trained"] and summary["training"]["bads"] >= 5, summary
    assert summary["rated"] == ds.table("enterprises").num_rows
    assert summary["training"]["model"]["anchor"]["record"].startswith("model_fingerprint:")
    assert sum(summary["grades"].values()) == summary["rated"] and len(summary["grades"]) > 1  # it discriminates
    profile = assess(summary["example"]["enterprise_id"])
    assert set(profile.sub_scores) == {"entity", "asset", "transaction"}
    assert all(0 <= v <= 100 for v in profile.sub_scores.values()) and 0 <= profile.pd <= 1
    assert all(r.zh and r.en and r.code != "nan" for r in profile.reasons)
    # the decision's inputs come from the enterprise's own features, not from the calendar
    assert summary["training"]["model"]["champion"] in ("scorecard", "challenger")
    assert set(summary["training"]["model"]["evaluation"]["test"]) == {"scorecard", "challenger"}
    assessments = [assess(e) for e in sorted(_lenders(ds))]
    days = [a.features["history_days"] for a in assessments]
    assert all(0 <= d <= DAYS for d in days) and len(set(days)) > 1
    assert any(a.capacity_revenue_12m > 0 for a in assessments)
    # every rating is stored, and the operator's profile view reads it back
    assert summary["ratings_stored"] == summary["rated"]
    stored = ws.ratings.operator_profile(profile.enterprise_id)
    assert stored["grade"] == profile.grade and stored["as_of"] == end.isoformat()
    assert set(stored["dimensions"]) == {"entity", "asset", "transaction"}
    decided = decide_applications(ws, ds, assess, limit=15)
    assert decided["applications"] == 15
    assert decided["approved"] + decided["declined"] + decided["referred"] == 15


def test_online_assessor_rates_like_the_batch_within_the_lenders_consent(economy, rated) -> None:  # noqa: ANN001
    """The decision API's port (features_for + the model, per request) gives the batch step's
    assessment for the same enterprise, lender and day, and logs its reads."""
    _, ws, ds = economy
    _, batch = rated
    online = ws.risk_assessor()
    assert online is not None and online.revenue_per_kwh  # the sales-per-kWh table was saved beside the model
    lenders = _lenders(ds)
    for eid in sorted(lenders)[:12]:
        a, b = online(eid, lenders[eid], on=END), batch(eid)
        assert (a.grade, a.sub_scores, a.features, a.consent_ok) == (b.grade, b.sub_scores, b.features, b.consent_ok)
        assert abs(a.pd - b.pd) <= Decimal("0.000001") and [r.code for r in a.reasons] == [r.code for r in b.reasons]
        assert (a.collateral_value, a.trade_volume_12m, a.capacity_revenue_12m) == \
            (b.collateral_value, b.trade_volume_12m, b.capacity_revenue_12m)
    eid = min(lenders)
    logged = ws.consent.access_log(eid, limit=1000, recipient=lenders[eid])
    assert any(row["detail"] == f"features as of {END.isoformat()}" for row in logged)
    # a lender with no grant at all sees nothing: every feature withheld, consent_ok False
    assert online(eid, "bank-nobody", on=END).consent_ok is False
    with pytest.raises(NotFound):
        online(10**9, lenders[eid], on=END)


def test_the_decision_api_assesses_with_the_risk_engine(economy, rated) -> None:  # noqa: ANN001
    """Once a model is trained the API decides with the engine's assessment: a body assessment is
    refused, the operator must name the lender, and the stored decision carries the engine's grade."""
    from fastapi.testclient import TestClient

    from iotfin.app.http import create_app
    from tests.openapi_world import operator_headers

    _, ws, ds = economy
    lenders = _lenders(ds)
    eid = min(lenders)
    http = TestClient(create_app(ws), headers=operator_headers(ws))
    body = {"enterprise_id": eid, "product": "iot-working-capital", "amount": "100000.00", "tenor_months": 12}
    no_lender = http.post("/api/v1/credit-applications", json=body)
    assert no_lender.status_code == 422 and "lender" in no_lender.json()["detail"]
    forged = http.post("/api/v1/credit-applications", json=body | {"lender": lenders[eid], "assessment": {"grade": "AAA"}})
    assert forged.status_code == 422 and "risk engine" in forged.json()["detail"]
    ok = http.post("/api/v1/credit-applications", json=body | {"lender": lenders[eid]})
    assert ok.status_code == 201, ok.text
    stored = http.get(f"/api/v1/credit-applications/{ok.json()['application_id']}").json()
    expected = ws.risk_assessor()(eid, lenders[eid])
    assert stored["inputs"]["assessment"] == json.loads(json.dumps(expected.to_json(), default=str)) | {
        "as_of": stored["inputs"]["assessment"]["as_of"]}
