"""Scoring: PD, points, grade and reason codes for every row — one code path for a batch of a
million rows and for one online request (`score_one` is `score_columns` on one-row columns)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from iotfin.core.errors import ValidationError
from iotfin.risk.grades import grades_of
from iotfin.risk.models.bundle import DIMENSION_LABELS, RiskModel, enterprise_effective
from iotfin.risk.prepare import columns_from_record, prepare, require_columns
from iotfin.risk.reasons import ReasonTable
from iotfin.risk.woe import logit, sigmoid

TOP_REASONS = 3


def _tables(model: RiskModel) -> dict[str, Any]:
    if not model.cache:
        linear = enterprise_effective(model) if model.dimensions else model.linear
        model.cache["linear"] = linear
        model.cache["reasons"] = ReasonTable.build(linear, model.scaling, model.label, model.feature_dimension)
        if model.dimensions:
            model.cache["dim_masks"] = {d: np.array([model.feature_dimension[n] == d for n in model.linear.names])
                                        for d in model.dimensions}
    return model.cache


def score_columns(model: RiskModel, columns: Mapping[str, np.ndarray], top: int = TOP_REASONS) -> dict[str, np.ndarray]:
    """Score rows given as columns (name -> 1-D array); returns output columns in row order."""
    tables = _tables(model)
    numeric, categorical = model.inputs
    prepared = prepare(columns, numeric, categorical)
    idx = tables["linear"].indices(prepared)
    out: dict[str, np.ndarray] = {}
    if model.dimensions:
        sub = model.linear.contributions(idx)
        for dim, params in model.dimensions.items():
            lp_d = params["intercept"] + sub[:, tables["dim_masks"][dim]].sum(axis=1)
            out[f"{dim}_pd"] = sigmoid(lp_d)
            out[f"{dim}_score"] = model.scaling.score(lp_d)
            out[f"{dim}_grade"] = grades_of(out[f"{dim}_pd"])
    pd_card = sigmoid(tables["linear"].lp(idx))
    if model.challenger is not None:
        pd_chal = model.challenger.pd(prepared)
        out["pd_scorecard"], out["pd_challenger"] = pd_card, pd_chal
        pd_ = pd_chal if model.champion == "challenger" else pd_card
        if model.champion == "blend":  # issue 23: logistic stacking of both models' ln-odds
            b = model.manifest["blend"]
            pd_ = sigmoid(b["intercept"] + b["scorecard"] * logit(pd_card) + b["challenger"] * logit(pd_chal))
    else:
        pd_ = pd_card
    result = {"pd": pd_, "score": model.scaling.score(logit(pd_)), "grade": grades_of(pd_)}
    result.update(out)
    result.update(tables["reasons"].top(idx, top))
    return result


def score_frame(model: RiskModel, frame: pd.DataFrame, keep: list[str] | None = None, top: int = TOP_REASONS) -> pd.DataFrame:
    """Score every row of a table, in input order; `keep` columns are copied through first."""
    numeric, categorical = model.inputs
    require_columns(list(map(str, frame.columns)), [*numeric, *categorical])
    keep = keep or []
    require_columns(list(map(str, frame.columns)), keep)
    scored = score_columns(model, {name: frame[name] for name in (*numeric, *categorical)}, top)
    data = {name: frame[name].to_numpy() for name in keep} | scored
    return pd.DataFrame(data, index=pd.RangeIndex(len(frame)))


def score_one(model: RiskModel, record: Mapping[str, Any], top: int = TOP_REASONS) -> dict[str, Any]:
    """One online request (a dict of feature values; absent or null = missing), same path as a batch."""
    return _structured(model, score_row(model, record, top), top)


def score_row(model: RiskModel, record: Mapping[str, Any], top: int = TOP_REASONS) -> dict[str, Any]:
    """One request's flat result: the columns a `score_frame` row has (`pd`, `grade`, `<dim>_pd`,
    `reason_i`, `reason_i_zh` …), missing values as ""."""
    numeric, categorical = model.inputs
    scored = score_columns(model, columns_from_record(record, [*numeric, *categorical]), top)
    return {k: _scalar(v[0]) for k, v in scored.items()}


def profile_of_row(model: RiskModel, row: Mapping[str, Any], top: int = TOP_REASONS) -> dict[str, Any]:
    """The structured profile (as `score_one` gives) of one row of a `score_frame` / `rate` table."""
    return _structured(model, {k: _scalar(v) for k, v in row.items()}, top)


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return "" if value is None or (isinstance(value, float) and value != value) else value


def _structured(model: RiskModel, row: dict[str, Any], top: int) -> dict[str, Any]:
    result: dict[str, Any] = {"model": model.model_id, "pd": row["pd"], "score": round(row["score"], 1),
                              "grade": row["grade"]}
    if model.challenger is not None:
        result["pd_scorecard"], result["pd_challenger"] = row["pd_scorecard"], row["pd_challenger"]
    if model.dimensions:
        result["dimensions"] = {
            dim: {"pd": row[f"{dim}_pd"], "score": round(row[f"{dim}_score"], 1), "grade": row[f"{dim}_grade"],
                  "en": DIMENSION_LABELS[dim][0], "zh": DIMENSION_LABELS[dim][1]}
            for dim in model.dimensions}
    result["reasons"] = [{"code": row[f"reason_{i}"], "en": row[f"reason_{i}_en"], "zh": row[f"reason_{i}_zh"],
                          "points": round(row[f"reason_{i}_points"], 1)}
                         for i in range(1, top + 1) if row[f"reason_{i}"]]
    return result


def rate(model: RiskModel, data: pd.DataFrame | Mapping[str, Any], keep: list[str] | None = None) -> Any:
    """Enterprise three-dimension rating: a table gives a table, one enterprise's features a profile
    (sub-score, PD and grade per dimension, the combined grade and PD, and reasons in zh-CN and en)."""
    if not model.dimensions:
        raise ValidationError(f"{model.model_id} is not an enterprise three-dimension model")
    if isinstance(data, pd.DataFrame):
        return score_frame(model, data, keep)
    return score_one(model, data)
