"""`iotfin monitor ...` as a user runs it: the evaluation end to end against the simulator's ground
truth through the real ingest path, and bad input refused with exit 65 and one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from iotfin.demo.monitor_eval import DETECTABLE


def _iotfin(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=timeout)


def test_evaluate_meets_the_detection_targets_on_a_small_economy(tmp_path: Path) -> None:
    done = _iotfin("monitor", "evaluate", "--enterprises", "40", "--days", "12", "--seed", "5", "--json",
                   "--workdir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    per = r["per_incident_type"]
    assert set(DETECTABLE) <= set(per)
    for kind in set(DETECTABLE) - {"fabricated_trade"}:  # at least two of each on a horizon of 4+ days
        assert per[kind]["incidents"] >= 2, kind
        assert per[kind]["recall"] >= 0.95, (kind, per[kind])
        assert 0 <= per[kind]["ttd_median_h"] <= per[kind]["ttd_p95_h"] <= 12, (kind, per[kind])
    assert r["false_alerts_per_1000_device_days"] <= 1.0, r["false_alert_examples"]
    assert r["ingest"]["accepted"] == r["monitor"]["readings_seen"] > 100_000  # every committed reading, once
    assert r["ingest"]["rejected"] == 0 and r["alert_latency_s"]["p99"] < 2.0
    # reported honestly, not hidden: only fabricated trades with a delivery note naming an idle truck are seen
    assert per["fabricated_trade"]["note"] and 0 <= per["fabricated_trade"]["recall"] <= 1
    assert r["monitor"]["state_bytes"]["per_device"] < 400


def test_rules_check_refuses_a_model_that_does_not_compile(tmp_path: Path) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text('{"nodes": [], "metadata": {"version": "x"}, "edges": [{"id": "e", "sourceId": "a"}]}')
    done = _iotfin("monitor", "rules-check", str(bad))
    assert done.returncode == 65 and done.stderr.count("\n") == 1 and "does not compile" in done.stderr
    good = Path(__file__).parents[2] / "src/iotfin/monitor/rules/warning_rules.json"
    ok = _iotfin("monitor", "rules-check", str(good), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True


def test_prices_import_refuses_negative_prices_and_gaps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _iotfin("db", "upgrade", "--data-dir", str(data)).returncode == 0
    neg = tmp_path / "neg.csv"
    neg.write_text("day,commodity,price\n2026-01-01,coal,-850\n")
    done = _iotfin("monitor", "prices-import", str(neg), "--data-dir", str(data))
    assert done.returncode == 65 and "price must be positive" in done.stderr
    good = tmp_path / "coal.csv"
    good.write_text("day,commodity,price\n2026-01-01,coal,850\n2026-01-02,coal,845.5\n")
    assert json.loads(_iotfin("monitor", "prices-import", str(good), "--data-dir", str(data), "--json").stdout) == {
        "imported": 2, "days_by_commodity": {"coal": 2}}
    gap = tmp_path / "gap.csv"
    gap.write_text("day,commodity,price\n2026-01-05,coal,800\n")  # 3rd and 4th missing after what is stored
    done = _iotfin("monitor", "prices-import", str(gap), "--data-dir", str(data))
    assert done.returncode == 65 and "no price for 2026-01-03, 2026-01-04" in done.stderr
    missing = _iotfin("monitor", "alerts", "resolve", "7", "--by", "o1", "--reason", "x", "--data-dir", str(data))
    assert missing.returncode == 66 and "no alert 7" in missing.stderr
