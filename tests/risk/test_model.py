"""The generic toolkit through its Python API: training, the model folder, scoring, reasons."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from iotfin.core.errors import NotFound, ValidationError
from iotfin.risk import TrainConfig, load_model, score_frame, score_one, train
from iotfin.risk.grades import band
from iotfin.risk.models.train import _optb_input
from iotfin.risk.prepare import prepare
from iotfin.risk.woe import BinnedFeature, Scaling, WoeLinear, sigmoid
from tests.risk.conftest import FAST
from tests.risk.synth import enterprises


def test_training_summary_and_model_folder(scorecard_model) -> None:
    summary, model = scorecard_model
    vdir = model.path
    assert vdir.name == "v0001" and (vdir.parent / "LATEST").read_text().strip() == "v0001"
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert set(manifest["artefacts"]) == {"scorecard.json", "catalogue.json", "baseline.json", "challenger.txt", "report.html"}
    assert manifest["training_data"]["rows"] == 4000 and len(manifest["training_data"]["sha256"]) == 64
    # out-of-time: the latest 20 % of dates, never trained on
    assert manifest["splits"]["oot"] == pytest.approx(800, abs=40) and "oot_from" in manifest["splits"]
    ev = summary["evaluation"]
    for part in ("test", "oot"):
        for name in ("scorecard", "challenger"):
            assert ev[part][name]["auc"] > 0.70, (part, name, ev[part][name])
    # the signal-carrying features are in the scorecard, the identifier is not a feature
    assert {"on_time_rate", "collateral_cover", "tax_grade"} <= set(summary["selected"])
    assert "enterprise_id" not in manifest["inputs"]["numeric"] + manifest["inputs"]["categorical"]
    # monotone constraints follow the scorecard's trends: risk falls with on-time rate, rises with DSO
    assert model.challenger.monotone["on_time_rate"] == -1 and model.challenger.monotone["dso_days"] == 1
    # read back from the folder, both models give the out-of-time figures measured in training
    from iotfin.risk.metrics import auc

    frame = enterprises(4000, seed=1)
    oot = frame[frame["as_of"] >= manifest["splits"]["oot_from"]]
    scored = score_frame(model, oot)
    for name in ("scorecard", "challenger"):
        assert auc(oot["default"].to_numpy(), scored[f"pd_{name}"].to_numpy()) == pytest.approx(ev["oot"][name]["auc"], abs=1e-12)
    report = (vdir / "report.html").read_text()
    for needle in ("<svg", "ROC", "Calibration", "Score distribution", "Information value", "Out-of-time",
                   "按时付款率", "Scorecard bins"):
        assert needle in report, needle


def test_tables_reproduce_optbinning(synth_train) -> None:
    """Our vectorised tables give optbinning's own PD and points, missing values and unseen categories included."""
    from optbinning import BinningProcess, Scorecard
    from sklearn.linear_model import LogisticRegression

    frame = synth_train.iloc[:2000]
    y = frame["default"].to_numpy()
    numeric = ["age_years", "collateral_cover", "utilisation", "on_time_rate", "dso_days"]
    categorical = ["sector", "tax_grade"]
    x = _optb_input(frame, numeric, categorical)
    card = Scorecard(BinningProcess([*numeric, *categorical], categorical_variables=categorical),
                     LogisticRegression(max_iter=1000), scaling_method="pdo_odds",
                     scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        card.fit(x, y, metric_special="empirical", metric_missing="empirical")
    bp = card.binning_process_
    names = list(bp.get_support(names=True))
    linear = WoeLinear([BinnedFeature.from_optbinning(n, "categorical" if n in categorical else "numeric",
                                                      bp.get_binned_variable(n)) for n in names],
                       card.estimator_.coef_.ravel(), float(card.estimator_.intercept_[0]))
    other = _optb_input(enterprises(500, seed=9), numeric, categorical)
    other.loc[:20, "sector"] = "mining"  # never seen in training
    other.loc[20:40, "on_time_rate"] = np.nan
    prep = prepare({n: other[n].to_numpy() for n in names}, [n for n in names if n in numeric],
                   [n for n in names if n in categorical])
    idx = linear.indices(prep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(sigmoid(linear.lp(idx)), card.predict_proba(other)[:, 1], rtol=1e-9)
        np.testing.assert_allclose(Scaling().score(linear.lp(idx)), card.score(other), rtol=1e-9)
        points = linear.points_table(Scaling())[np.arange(len(names)), idx].sum(axis=1)
        np.testing.assert_allclose(points, card.score(other), rtol=1e-9)


def test_scores_every_row_in_input_order_batch_equals_online(scorecard_model) -> None:
    _, model = scorecard_model
    frame = enterprises(300, seed=5).sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame.loc[7, "sector"] = "space tourism"  # unseen category
    frame.loc[8, "on_time_rate"] = np.nan
    out = score_frame(model, frame, keep=["enterprise_id"])
    assert len(out) == len(frame) and out["enterprise_id"].tolist() == frame["enterprise_id"].tolist()
    assert out["pd"].between(0, 1, inclusive="neither").all()
    # the grade is the master-scale band of the PD
    for pd_, grade in zip(out["pd"], out["grade"], strict=True):
        lo, hi = band(grade)
        assert lo < pd_ <= hi
    # champion PD, and the score is its ln-odds on the points scale
    champ = out["pd_challenger"] if model.champion == "challenger" else out["pd_scorecard"]
    np.testing.assert_allclose(out["pd"], champ)
    s = model.scaling
    np.testing.assert_allclose(out["score"], s.offset - s.factor * np.log(out["pd"] / (1 - out["pd"])))
    for i in (0, 7, 8, 123):
        online = score_one(model, {k: (None if pd.isna(v) else v) for k, v in frame.iloc[i].to_dict().items()})
        assert online["pd"] == pytest.approx(out["pd"][i], rel=1e-12)
        assert online["grade"] == out["grade"][i]
        assert [r["code"] for r in online["reasons"]] == [c for c in out.loc[i, ["reason_1", "reason_2", "reason_3"]] if c]


def test_reason_codes_bilingual_and_explain_the_points(scorecard_model) -> None:
    _, model = scorecard_model
    frame = enterprises(400, seed=6)
    out = score_frame(model, frame)
    worst = out.sort_values("pd").iloc[-1]
    assert worst["reason_1"] and worst["reason_1_points"] >= worst["reason_2_points"] >= worst["reason_3_points"] > 0
    labelled = out[out["reason_1"].str.startswith("on_time_rate#")]
    # sentences, not bins: the label, low or high, and the line (iotfin.risk.wording)
    assert len(labelled) and labelled["reason_1_zh"].str.match(r"^按时付款率(偏低（低于|偏高（|缺少)").all()
    assert labelled["reason_1_en"].str.match(r"^(On-time payment rate was (low \(below|high \()|On-time payment rate: no data)").all()
    assert not out["reason_1_en"].astype(str).str.contains(r"\[|inf\b|\{").any()
    assert not out["reason_1_zh"].astype(str).str.contains(r"\[|inf|\{").any()
    # unlabelled feature: the column name stands in, in both languages
    row = score_one(model, {"top_buyer_share": 0.99, "on_time_rate": 1.0, "collateral_cover": 3.0})
    by_code = {r["code"].split("#")[0]: r for r in row["reasons"]}
    if "top_buyer_share" in by_code:
        assert by_code["top_buyer_share"]["en"].startswith("top_buyer_share was ")
    # missing values are named as such
    row = score_one(model, {"tax_grade": None})
    assert any("no data" in r["en"] and r["zh"].startswith("缺少") for r in row["reasons"]) or \
        all(not r["code"].startswith("tax_grade") for r in row["reasons"])
    # shortfalls are exactly points: best possible total minus this row's scorecard points
    from iotfin.risk.scoring import _tables

    tables = _tables(model)
    linear = tables["linear"]
    prep = prepare({n: frame[n].to_numpy() for n in sum(model.inputs, [])}, *model.inputs)
    idx = linear.indices(prep)
    pts = tables["reasons"].points[np.arange(len(linear.features)), idx]
    shortfall = np.maximum(tables["reasons"].best - pts, 0).sum(axis=1)
    assert shortfall.min() >= 0 and (shortfall > 0).mean() > 0.9


def test_versions_never_overwrite_and_altered_files_are_refused(tmp_path, synth_train) -> None:
    small = synth_train.iloc[:1500]
    first = train(small, "default", tmp_path / "m", exclude=["enterprise_id", "as_of"], config=FAST)
    second = train(small, "default", tmp_path / "m", exclude=["enterprise_id", "as_of"],
                   config=TrainConfig(report=False, challenger=False))
    assert first["path"].endswith("v0001") and second["path"].endswith("v0002")
    assert load_model(tmp_path / "m").manifest["version"] == "v0002"
    old = load_model(tmp_path / "m" / "v0001")
    assert old.challenger is not None and load_model(tmp_path / "m").challenger is None
    # same data, same fingerprint; different models
    assert first["training_data_sha256"] == second["training_data_sha256"]
    assert first["model_sha256"] != second["model_sha256"]
    card = tmp_path / "m" / "v0001" / "scorecard.json"
    card.write_text(card.read_text() + " ")  # one byte more: no longer the file that was trained
    with pytest.raises(ValidationError, match="altered"):
        load_model(tmp_path / "m" / "v0001")
    with pytest.raises(NotFound):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns=["default"]), "no target column"),
    (lambda f: f.assign(default=np.where(np.arange(len(f)) % 3 == 0, 2, f["default"])), "exactly two classes"),
    (lambda f: f.assign(default=f["default"].astype(float).where(np.arange(len(f)) != 5)), "have no value"),
    (lambda f: f.assign(default=np.where(f["default"] == 1, "late", "ok")), "pass --bad"),
    (lambda f: f.iloc[:20], "at least 50"),
    (lambda f: f.assign(default=0).assign(default=lambda g: (np.arange(len(g)) < 3).astype(int)), "at least 10"),
])
def test_bad_training_input_is_refused_with_a_reason(tmp_path, synth_train, mutate, message) -> None:
    with pytest.raises(ValidationError, match=message):
        train(mutate(synth_train.iloc[:600]), "default", tmp_path / "m", exclude=["enterprise_id", "as_of"], config=FAST)
    assert not (tmp_path / "m" / "LATEST").exists()  # nothing half-written


def test_bad_scoring_input_is_refused_with_a_reason(scorecard_model) -> None:
    _, model = scorecard_model
    frame = enterprises(50, seed=4)
    with pytest.raises(ValidationError, match="lacks 1 model feature column"):
        score_frame(model, frame.drop(columns=["on_time_rate"]))
    bad = frame.astype({"dso_days": object})
    bad.loc[3, "dso_days"] = "forty"
    with pytest.raises(ValidationError, match=r"'dso_days' must be numeric: row 3 has 'forty'"):
        score_frame(model, bad)
    with pytest.raises(ValidationError, match="must be numeric"):
        score_one(model, {"dso_days": "n/a"})
    # the string spelling of a number is a number
    assert score_one(model, {"dso_days": "45"})["pd"] == score_one(model, {"dso_days": 45})["pd"]


def test_challenger_fast_paths_give_lightgbms_own_scores(scorecard_model, monkeypatch, tmp_path) -> None:
    """The single-row C fast path (online) and the two-thread halves are LightGBM's own
    `Booster.predict`, bit for bit; large batches go through the forest compiled by lleaves, which
    gives the same raw scores up to the order of summing the trees (and the same grades)."""
    from iotfin.risk.models import challenger as chmod
    from iotfin.risk.models.challenger import COMPILED_FROM, PARALLEL_FROM, Challenger
    from iotfin.risk.prepare import prepare

    monkeypatch.setenv("IOTFIN_CACHE_DIR", str(tmp_path / "cache"))
    _, model = scorecard_model
    ch = model.challenger
    numeric, categorical = model.inputs
    frame = enterprises(max(PARALLEL_FROM, COMPILED_FROM) + 1001, seed=9)
    prepared = prepare({n: frame[n] for n in (*numeric, *categorical)}, numeric, categorical)
    direct = ch.booster.predict(ch.matrix(prepared), raw_score=True, num_threads=1)
    fresh = Challenger(ch.booster, ch.numeric, ch.categorical, ch.platt, ch.monotone)
    compiled = fresh.margin(prepared)
    assert fresh._compiled, "lleaves is a dependency: large batches must use the compiled forest"
    assert list((tmp_path / "cache" / "lleaves").glob("*.so"))  # compiled once, cached for the next process
    np.testing.assert_allclose(compiled, direct, rtol=0, atol=1e-12)
    again = Challenger(ch.booster, ch.numeric, ch.categorical, ch.platt, ch.monotone)
    np.testing.assert_array_equal(again.margin(prepared), compiled)  # loaded from the cache: the same code
    monkeypatch.setattr(chmod, "COMPILED_FROM", 10**12)  # the LightGBM halves, as without lleaves
    np.testing.assert_array_equal(Challenger(ch.booster, ch.numeric, ch.categorical, ch.platt, ch.monotone)
                                  .margin(prepared), direct)
    for i in (0, 1, 777, PARALLEL_FROM + 1000):
        one = prepare({n: frame[n].iloc[i:i + 1] for n in (*numeric, *categorical)}, numeric, categorical)
        assert ch.margin(one)[0] == direct[i]
