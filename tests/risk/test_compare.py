"""The simulator comparison (three-dimension vs entity-only, held-out seeds) on two small economies:
the figures are computed for both models from their own training on other seeds; their values are
only sanity-checked (they are a property of the simulator, see docs/risk.md)."""

from __future__ import annotations

import pytest

from iotfin.core.errors import ValidationError
from iotfin.demo.risk_compare import compare


@pytest.mark.slow
def test_both_models_are_trained_on_one_seed_and_measured_on_another(tmp_path) -> None:  # noqa: ANN001
    r = compare([6], [5], tmp_path, enterprises=150, days=180)
    assert r["train"]["seeds"] == [6] and r["test"]["seeds"] == [5]
    assert r["train"]["bads"] >= 10 and 0 < r["test"]["bads"] < r["test"]["rows"]
    assert r["max_bad_rate"] == pytest.approx(r["test"]["bads"] / r["test"]["rows"] / 2, abs=1e-6)
    three, entity = r["models"]["three_dimension"], r["models"]["entity_only"]
    assert entity["features"] < three["features"]  # the entity model sees the entity features only
    for m in (three, entity):
        assert set(m["test"]) == {"champion", "scorecard", "challenger"}  # both of the toolkit's models, each
        for t in m["test"].values():
            assert 0.0 <= t["auc"] <= 1.0 and 0.0 <= t["ks"] <= 1.0 and 0.0 < t["mean_pd"] < 1.0
            assert 0.0 <= t["approvable_share_realised"] <= 1.0 and 0.0 <= t["approvable_share_expected"] <= 1.0
    # the simulator makes its defaults visible in IoT and trade data: the three dimensions rank better than chance
    assert 0.5 < three["test"]["champion"]["auc"] <= 1.0
    assert r["difference"]["auc"] == pytest.approx(three["test"]["champion"]["auc"] - entity["test"]["champion"]["auc"], abs=1e-3)


def test_training_and_test_seeds_must_differ(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ValidationError, match="both training and test seeds"):
        compare([1, 2], [2], tmp_path)
    with pytest.raises(ValidationError, match="at least one"):
        compare([], [3], tmp_path)
    with pytest.raises(ValidationError, match="max-bad-rate"):
        compare([1], [3], tmp_path, max_bad_rate=1.5)
    assert not any(tmp_path.iterdir())  # refused before anything was simulated
