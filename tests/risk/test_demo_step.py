"""The demo's rating step end to end on a small economy: features within consent, the enterprise
three-dimension model trained on point-in-time snapshots, every enterprise rated, and the ratings
deciding credit applications through the published strategy."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from iotfin.core.settings import Settings
from iotfin.decision.demo_step import decide_applications
from iotfin.demo import _lenders
from iotfin.loader import load_master_data, load_telemetry
from iotfin.risk.demo_step import rate_enterprises
from iotfin.risk.features.demo import consent_and_features
from iotfin.sim import SimConfig, SimDataset, generate
from iotfin.workspace import Workspace

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


def test_ratings_come_from_a_trained_model_and_decide_applications(economy) -> None:  # noqa: ANN001
    root, ws, ds = economy
    end = START + timedelta(days=DAYS - 1)
    consent_and_features(ws, ds, end)
    summary, assess = rate_enterprises(ws, ds, START, end, root / "models", _lenders(ds))
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
    from iotfin.risk.service import operator_profile

    stored = operator_profile(ws, profile.enterprise_id)
    assert stored["grade"] == profile.grade and stored["as_of"] == end.isoformat()
    assert set(stored["dimensions"]) == {"entity", "asset", "transaction"}
    decided = decide_applications(ws, ds, assess, limit=15)
    assert decided["applications"] == 15
    assert decided["approved"] + decided["declined"] + decided["referred"] == 15
