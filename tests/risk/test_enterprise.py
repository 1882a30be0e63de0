"""The enterprise three-dimension model on generated tables tagged entity / asset / transaction."""

from __future__ import annotations

import numpy as np
import pytest

from iotfin.core.errors import ValidationError
from iotfin.risk import rate, score_frame, train_enterprise_model
from iotfin.risk.grades import band
from iotfin.risk.metrics import auc
from tests.risk.conftest import FAST
from tests.risk.synth import DIMENSIONS, LABELS, enterprises


def test_profile_has_three_dimensions_combined_grade_and_bilingual_reasons(enterprise_model) -> None:
    summary, model = enterprise_model
    assert summary["kind"] == "enterprise" and set(model.dimensions) == {"entity", "asset", "transaction"}
    # every dimension carries signal in the generator, so each weighs positively in the combination
    assert all(d["weight"] > 0 for d in model.dimensions.values())
    row = enterprises(1, seed=11).iloc[0].to_dict()
    profile = rate(model, row)
    assert set(profile["dimensions"]) == {"entity", "asset", "transaction"}
    assert profile["dimensions"]["asset"]["zh"] == "资产信用" and profile["dimensions"]["entity"]["en"] == "entity credit"
    lo, hi = band(profile["grade"])
    assert lo < profile["pd"] <= hi
    for dim in profile["dimensions"].values():
        lo, hi = band(dim["grade"])
        assert lo < dim["pd"] <= hi
    # the combined ln-odds is the weighted sum of the dimensions' ln-odds
    logit = {d: np.log(v["pd"] / (1 - v["pd"])) for d, v in profile["dimensions"].items()}
    combined = model.bias + sum(model.dimensions[d]["weight"] * logit[d] for d in logit)
    assert np.log(profile["pd"] / (1 - profile["pd"])) == pytest.approx(combined, rel=1e-9)
    # a weak enterprise: reasons are sentences naming the feature, low or high, and the line, in both
    # languages (iotfin.risk.wording); the code names the feature, whose dimension the model knows
    weak = row | {"on_time_rate": 0.55, "collateral_cover": 0.1, "tax_grade": "D"}
    reasons = rate(model, weak)["reasons"]
    assert reasons and any(r["zh"].startswith("按时付款率偏低（低于") for r in reasons)
    assert any(r["en"].startswith("IoT-verified collateral cover was low (below ") for r in reasons)
    assert {model.feature_dimension[r["code"].split("#")[0]] for r in reasons} <= {"entity", "asset", "transaction"}
    assert not any("[" in r["en"] or "inf" in r["en"] or "[" in r["zh"] for r in reasons)


def test_three_dimensions_beat_entity_only_on_held_out_firms(enterprise_model, tmp_path, synth_train) -> None:
    _, model = enterprise_model
    entity_only = {k: v for k, v in DIMENSIONS.items() if v == "entity"}
    train_enterprise_model(synth_train, "default", entity_only, tmp_path / "entity", labels=LABELS, config=FAST)
    from iotfin.risk import load_model

    held_out = enterprises(3000, seed=2)
    y = held_out["default"].to_numpy()
    full = score_frame(model, held_out)
    ent = score_frame(load_model(tmp_path / "entity"), held_out)
    assert set(ent.columns) >= {"entity_score", "entity_grade"} and "asset_score" not in ent.columns
    auc_full, auc_ent = auc(y, full["pd"].to_numpy()), auc(y, ent["pd"].to_numpy())
    assert auc_full > auc_ent + 0.05, (auc_full, auc_ent)
    # more firms approvable at the same bad rate (realised, on held-out firms; a property of the generator)
    from iotfin.risk.metrics import approvable_share

    target = float(y.mean()) * 0.5
    assert approvable_share(full["pd"].to_numpy(), target, y) > approvable_share(ent["pd"].to_numpy(), target, y)
    assert approvable_share(np.array([0.01, 0.02, 0.5]), 0.02) == pytest.approx(2 / 3)
    # each dimension's own sub-score ranks risk too
    for dim in ("entity", "asset", "transaction"):
        assert auc(y, -full[f"{dim}_score"].to_numpy()) > 0.55, dim


def test_batch_rating_keeps_order_and_refuses_bad_mappings(enterprise_model, tmp_path, synth_train) -> None:
    _, model = enterprise_model
    frame = enterprises(200, seed=12).iloc[::-1].reset_index(drop=True)
    out = rate(model, frame, keep=["enterprise_id"])
    assert out["enterprise_id"].tolist() == frame["enterprise_id"].tolist()
    one = rate(model, frame.iloc[17].to_dict())
    assert one["pd"] == pytest.approx(out["pd"][17], rel=1e-12)
    assert one["dimensions"]["transaction"]["score"] == pytest.approx(out["transaction_score"][17], abs=0.05)
    with pytest.raises(ValidationError, match="unknown dimension"):
        train_enterprise_model(synth_train, "default", {"age_years": "governance"}, tmp_path / "x", config=FAST)
    with pytest.raises(ValidationError, match="not in the data"):
        train_enterprise_model(synth_train, "default", {"no_such_feature": "asset"}, tmp_path / "x", config=FAST)
