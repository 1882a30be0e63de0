"""The model fingerprint anchored in the workspace ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

from iotfin.ledger.evidence import verify_bundle
from iotfin.risk import TrainConfig, train
from iotfin.risk.data import frame_sha256
from tests.risk.synth import enterprises


def test_model_fingerprint_is_anchored_and_provable(workspace, tmp_path) -> None:
    frame = enterprises(1200, seed=51)
    summary = train(frame, "default", tmp_path / "m", exclude=["enterprise_id", "as_of"],
                    config=TrainConfig(report=False, challenger=False), workspace=workspace)
    assert summary["training_data_sha256"] == frame_sha256(frame)
    record_type, record_id = summary["anchor"]["record"].split(":", 1)
    bundle = workspace.ledger.prove(record_type, record_id)
    proved = verify_bundle(bundle, workspace.ledger.verifier_key)
    assert proved["record_id"] == summary["model"] and proved["leaf_index"] == summary["anchor"]["leaf_index"]
    assert bundle["record"]["body"]["model_sha256"] == summary["model_sha256"]
    # a different table gives a different fingerprint
    assert frame_sha256(frame.assign(dso_days=frame["dso_days"] + 1)) != summary["training_data_sha256"]
