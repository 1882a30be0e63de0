"""The simulator's shocks (issue 24): the ground truth says what the activity did, and a run without
shocks is the run it always was."""

from __future__ import annotations

import json
from datetime import date

import pyarrow.compute as pc
import pytest

from iotfin.core.errors import ValidationError
from iotfin.sim import SimConfig
from iotfin.sim.economy import build_economy
from iotfin.sim.shocks import HOLIDAY_SECTORS, holiday_eve


def _activity(eco, enterprise: int) -> dict[date, float]:  # noqa: ANN001
    h = eco.ground_truth["health"]
    rows = h.filter(pc.equal(h["enterprise_id"], enterprise))
    return dict(zip(rows["day"].to_pylist(), rows["activity"].to_pylist(), strict=True))


def test_ground_truth_matches_the_activity() -> None:
    cfg = SimConfig(enterprises=80, days=50, seed=5, shocks=True)
    eco = build_economy(cfg)
    shocks = {s["kind"]: s for s in eco.ground_truth["shocks"].to_pylist()}
    assert set(shocks) == {"holiday", "outage", "slump"}
    resumption = eco.ground_truth["resumption"].to_pylist()
    sectors = dict(zip(eco.tables["enterprises"]["enterprise_id"].to_pylist(),
                       eco.tables["enterprises"]["sector"].to_pylist(), strict=True))
    assert {r["enterprise_id"] for r in resumption} == {e for e, s in sectors.items() if s in HOLIDAY_SECTORS}
    for r in resumption[:20]:
        act = _activity(eco, r["enterprise_id"])
        stopped = [v for d, v in act.items() if r["stopped_on"] <= d < r["resumed_on"]]
        assert stopped and max(stopped) == 0.0
        assert act[r["resumed_on"]] > 0.0
    assert json.loads(shocks["holiday"]["detail"])["eve"] == cfg.day(holiday_eve(cfg)).isoformat()
    regions = dict(zip(eco.tables["enterprises"]["enterprise_id"].to_pylist(),
                       eco.tables["enterprises"]["region_code"].to_pylist(), strict=True))
    out = shocks["outage"]
    for e in [e for e, g in regions.items() if g == out["region_code"]][:10]:
        assert _activity(eco, e)[out["first_day"]] == 0.0


def test_shocks_off_changes_nothing_and_short_horizons_are_refused() -> None:
    a, b = build_economy(SimConfig(enterprises=40, days=20, seed=9)), build_economy(SimConfig(enterprises=40, days=20, seed=9, shocks=False))
    assert "shocks" not in a.ground_truth and a.ground_truth["health"].equals(b.ground_truth["health"])
    assert "shocks" not in SimConfig(enterprises=40, days=20).to_json()
    with pytest.raises(ValidationError):
        SimConfig(enterprises=40, days=20, shocks=True)
