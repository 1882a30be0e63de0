"""Monitoring: PSI against the training sample, bad rate by grade, alerts returned and persisted."""

from __future__ import annotations

import numpy as np

from iotfin.risk import monitor
from iotfin.risk.monitoring import PSI_ALERT, alerts
from tests.risk.synth import enterprises


def test_stable_population_raises_no_alert(scorecard_model) -> None:
    _, model = scorecard_model
    report = monitor(model, enterprises(3000, seed=21), persist=False)
    assert report["psi"]["score"] < 0.1 and max(report["psi"]["features"].values()) < 0.1
    assert report["alerts"] == []


def test_drift_and_bad_rates_above_band_raise_alerts(scorecard_model) -> None:
    _, model = scorecard_model
    before = len(alerts(model))
    drifted = enterprises(3000, seed=22, shift=0.6)
    report = monitor(model, drifted, persist=True)
    kinds = {(a["kind"], a["subject"]) for a in report["alerts"]}
    assert ("psi_score", "score") in kinds and ("psi_feature", "on_time_rate") in kinds
    assert ("psi_feature", "sector") not in kinds  # the entity features did not move
    assert report["psi"]["score"] > PSI_ALERT
    zh = [a["zh"] for a in report["alerts"] if a["subject"] == "on_time_rate"][0]
    assert zh.startswith("按时付款率：分布偏移")
    # outcomes arrive: every second firm defaulted, far above what any grade band allows
    outcomes = enterprises(2000, seed=23)
    outcomes["default"] = np.where(np.arange(len(outcomes)) % 2 == 0, 1, outcomes["default"])
    outcomes.loc[:99, "default"] = None  # not known yet: left out of the bad rates
    report2 = monitor(model, outcomes, outcome="default")
    graded = {g["grade"]: g for g in report2["bad_rate_by_grade"]}
    assert sum(g["rows"] for g in graded.values()) == 1900
    bad_rate_alerts = [a for a in report2["alerts"] if a["kind"] == "bad_rate"]
    assert bad_rate_alerts and all(graded[a["subject"]]["bad_rate"] > a["threshold"] for a in bad_rate_alerts)
    logged = alerts(model)
    assert len(logged) == before + len(report["alerts"]) + len(report2["alerts"])
    assert (model.path / "monitoring").is_dir() and len(list((model.path / "monitoring").glob("report-*.json"))) >= 1
