"""`iotfin risk …` end to end in real subprocesses: train (anchored in a workspace ledger), score,
monitor, the three-dimension model, bad input, and the ledger evidence for the model fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.ledger.evidence import verify_bundle
from tests.risk.synth import DIMENSIONS, LABELS, enterprises


def iotfin(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "iotfin", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_train_score_monitor_and_prove_through_the_cli(tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    ws = Workspace(Settings(data_dir=ws_dir))
    ws.initialise()
    ws.close()
    enterprises(2000, seed=31).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "labels.json").write_text(json.dumps(LABELS, ensure_ascii=False))
    trained = json.loads(iotfin("risk", "train", "train.csv", "--target", "default", "--model", "models/credit",
                                "--date-col", "as_of", "--exclude", "enterprise_id", "--catalogue", "labels.json",
                                "--budget-s", "8", "--data-dir", str(ws_dir), "--json", cwd=tmp_path).stdout)
    assert trained["model"].startswith("credit@v0001-") and set(trained["evaluation"]) == {"train", "test", "oot"}
    # searched within its budget (issue 23), the champion chosen on cross-validation, and still anchored below
    assert set(trained["search"]) == {"scorecard", "challenger", "blend"} and trained["seconds"] < 8 * 1.1 + 5
    model_dir = Path(trained["path"]) if Path(trained["path"]).is_absolute() else tmp_path / trained["path"]
    assert (model_dir / "report.html").stat().st_size > 10_000
    # the fingerprint is in the ledger and provable offline
    assert trained["anchor"]["record"] == f"model_fingerprint:{trained['model']}"
    iotfin("ledger", "prove", trained["anchor"]["record"], "--out", "evidence.json", "--data-dir", str(ws_dir), cwd=tmp_path)
    bundle = json.loads((tmp_path / "evidence.json").read_text())
    assert bundle["record"]["body"]["model_sha256"] == trained["model_sha256"]
    assert bundle["record"]["body"]["training_data_sha256"] == trained["training_data_sha256"]
    ws = Workspace(Settings(data_dir=ws_dir))
    assert verify_bundle(bundle, ws.ledger.verifier_key)["record_id"] == trained["model"]
    ws.close()

    new = enterprises(500, seed=32).sample(frac=1.0, random_state=1)
    new.to_csv(tmp_path / "new.csv", index=False)
    scored = json.loads(iotfin("risk", "score", "new.csv", "--model", "models/credit", "--out", "scored.csv",
                               "--keep", "enterprise_id", "--json", cwd=tmp_path).stdout)
    assert scored["rows"] == 500
    out = pd.read_csv(tmp_path / "scored.csv")
    assert out["enterprise_id"].tolist() == new["enterprise_id"].tolist()
    assert {"pd", "score", "grade", "reason_1", "reason_1_en", "reason_1_zh"} <= set(out.columns)
    assert out["reason_1_zh"].dropna().str.contains("偏低|偏高|为|缺少").all()  # sentences (iotfin.risk.wording)
    assert not out["reason_1_en"].dropna().str.contains(r"\[|\binf\b").any()

    drifted = enterprises(1500, seed=33, shift=0.6)
    drifted.to_parquet(tmp_path / "drifted.parquet")
    proc = iotfin("risk", "monitor", "drifted.parquet", "--model", "models/credit", "--outcome", "default", "--json",
                  "--fail-on-alert", cwd=tmp_path, ok=False)
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert any(a["kind"] == "psi_score" for a in report["alerts"]) and report["bad_rate_by_grade"]
    assert (model_dir / "monitoring" / "alerts.jsonl").read_text().count("\n") == len(report["alerts"])


def test_enterprise_model_and_bad_input_through_the_cli(tmp_path: Path) -> None:
    enterprises(1500, seed=41).to_parquet(tmp_path / "train.parquet")
    catalogue = [{"name": k, "dimension": v, **LABELS.get(k, {})} for k, v in DIMENSIONS.items()]
    (tmp_path / "catalogue.json").write_text(json.dumps(catalogue, ensure_ascii=False))
    trained = json.loads(iotfin("risk", "train", "train.parquet", "--target", "default", "--model", "ent",
                                "--catalogue", "catalogue.json", "--enterprise", "--no-anchor", "--budget-s", "0",
                                "--json", cwd=tmp_path).stdout)
    assert trained["kind"] == "enterprise" and "anchor" not in trained
    enterprises(100, seed=42).to_csv(tmp_path / "firms.csv", index=False)
    iotfin("risk", "score", "firms.csv", "--model", "ent", "--out", "rated.parquet", "--keep", "enterprise_id", cwd=tmp_path)
    rated = pd.read_parquet(tmp_path / "rated.parquet")
    assert len(rated) == 100
    for dim in ("entity", "asset", "transaction"):
        assert {f"{dim}_score", f"{dim}_pd", f"{dim}_grade"} <= set(rated.columns)

    # bad input: one line on stderr, exit 65, nothing written
    proc = iotfin("risk", "train", "train.parquet", "--target", "nope", "--model", "bad", cwd=tmp_path, ok=False)
    assert proc.returncode == 65 and proc.stderr.count("\n") == 1 and "no target column 'nope'" in proc.stderr
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    pd.read_csv(tmp_path / "firms.csv").drop(columns=["dso_days"]).to_csv(tmp_path / "short.csv", index=False)
    proc = iotfin("risk", "score", "short.csv", "--model", "ent", "--out", "y.csv", cwd=tmp_path, ok=False)
    assert proc.returncode == 65 and "dso_days" in proc.stderr and not (tmp_path / "y.csv").exists()
