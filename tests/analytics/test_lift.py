"""The enterprise model with and without relative-activity features on shocked simulator economies,
trained on some seeds and tested on others (`iotfin industry lift`). The figures themselves are a
property of the simulator (docs/industry.md reports them at full size); here: both models are trained
on the same rows, the relative features reach the training rows, every test seed is reported, and
the lift is the difference of what was measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iotfin.analytics.model import RELATIVE_FEATURES


def lift_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotfin", "industry", "lift", *args], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_lift_is_measured_on_every_held_out_seed(tmp_path: Path) -> None:
    result = lift_cli("--train-seeds", "6", "--test-seeds", "5,8", "--enterprises", "120", "--days", "150",
                      "--workdir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    r = json.loads(result.stdout)
    assert r["train"]["seeds"] == [6] and r["test"]["seeds"] == [5, 8] and r["economy"]["shocks"] is True
    assert r["train"]["bads"] > 0 and 0 < r["test"]["bads"] < r["test"]["rows"]
    # the relative features reach the training rows (NaN only before a window fills or for too few peers)
    assert r["relative_present"]["a_rel_energy_7d"] > 0.5 and r["relative_present"]["a_rel_energy_30d"] > 0.5
    base, rel = r["models"]["three_dimension"], r["models"]["with_relative_activity"]
    assert not base["selected_relative"] and set(rel["selected_relative"]) <= set(RELATIVE_FEATURES)
    for m in (base, rel):
        assert m["champion"] in ("scorecard", "challenger")
        assert m["test"]["champion"] == m["test"][m["champion"]]  # the champion is one of the two, as scored
        assert set(m["test_per_seed"]) == {"5", "8"}
        for t in [m["test"], *m["test_per_seed"].values()]:
            assert 0.5 < t["champion"]["auc"] <= 1.0  # both rank defaults better than chance on unseen economies
    assert r["auc_lift"] == pytest.approx(rel["test"]["champion"]["auc"] - base["test"]["champion"]["auc"], abs=2e-4)
    for seed, value in r["auc_lift_per_seed"].items():
        assert value == pytest.approx(rel["test_per_seed"][seed]["champion"]["auc"]
                                      - base["test_per_seed"][seed]["champion"]["auc"], abs=2e-4)
    for kind, value in r["auc_lift_like_for_like"].items():
        assert value == pytest.approx(rel["test"][kind]["auc"] - base["test"][kind]["auc"], abs=2e-4)


@pytest.mark.parametrize(("args", "message"), [
    (["--train-seeds", "1,2", "--test-seeds", "2"], "other seeds than the training"),
    (["--train-seeds", "1", "--test-seeds", "x"], "--test-seeds: comma-separated seed numbers"),
    (["--train-seeds", "", "--test-seeds", "3"], "--train-seeds: at least one seed"),
])
def test_lift_refuses_bad_seeds_before_simulating(tmp_path: Path, args: list[str], message: str) -> None:
    result = lift_cli(*args, "--workdir", str(tmp_path))
    assert result.returncode != 0 and message in result.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was simulated
