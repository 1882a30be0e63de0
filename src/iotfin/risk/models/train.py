"""Training: a monotonic WoE scorecard (optbinning) and a LightGBM challenger on any table with a
binary target, or the enterprise three-dimension model; validated, versioned, fingerprinted and,
when a workspace is given, anchored in the ledger."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotfin.core.errors import ValidationError
from iotfin.risk import data as rdata
from iotfin.risk import metrics
from iotfin.risk.grades import GRADE_NAMES, grade_index, scale_table
from iotfin.risk.models.bundle import DIMENSIONS, FORMAT, combined_linear, load_model, write_version
from iotfin.risk.models.challenger import fit_challenger
from iotfin.risk.prepare import Prepared, prepare
from iotfin.risk.woe import BinnedFeature, Scaling, WoeLinear, logit, sigmoid

MAX_CATEGORIES = 200
SCORE_BINS = 10


@dataclass(frozen=True, slots=True)
class TrainConfig:
    scaling: Scaling = Scaling()
    min_iv: float = 0.02
    test_share: float = 0.3
    oot_share: float = 0.2
    champion: str = "auto"  # "auto" | "scorecard" | "challenger"
    seed: int = 7
    challenger: bool = True
    report: bool = True


def _load(data: pd.DataFrame | Path | str) -> tuple[pd.DataFrame, str, str | None]:
    if isinstance(data, pd.DataFrame):
        return data, rdata.frame_sha256(data), None
    path = Path(data)
    return rdata.read_table(path), rdata.file_sha256(path), str(path)


def _usable(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> tuple[list[str], list[str], dict[str, str]]:
    """Drop columns no model can learn from, saying why."""
    dropped: dict[str, str] = {}
    for name in [*numeric, *categorical]:
        col = frame[name]
        if col.isna().all():
            dropped[name] = "all values missing"
        elif col.nunique(dropna=True) < 2:
            dropped[name] = "constant"
        elif name in categorical and col.nunique(dropna=True) > MAX_CATEGORIES:
            dropped[name] = f"more than {MAX_CATEGORIES} categories (an identifier?)"
    return [n for n in numeric if n not in dropped], [n for n in categorical if n not in dropped], dropped


def _splits(frame: pd.DataFrame, y: np.ndarray, date_col: str | None, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Row positions of train / test (random, stratified) and out-of-time (latest dates)."""
    from sklearn.model_selection import train_test_split  # lazy: scikit-learn loads only when this runs

    rows = np.arange(len(frame))
    parts: dict[str, np.ndarray] = {}
    if date_col:
        when = rdata.dates(frame, date_col)
        cut = when.quantile(1 - cfg.oot_share)
        oot = (when >= cut).to_numpy()
        if oot.all() or not oot.any():
            raise ValidationError(f"date column {date_col!r}: too few distinct dates for an out-of-time sample")
        parts["oot"] = rows[oot]
        rows = rows[~oot]
        parts["oot_from"] = np.array([str(cut.date())])
    train, test = train_test_split(rows, test_size=cfg.test_share, stratify=y[rows], random_state=cfg.seed)
    parts["train"], parts["test"] = np.sort(train), np.sort(test)
    return parts


def _binning(numeric: list[str], categorical: list[str], cfg: TrainConfig):  # noqa: ANN202
    from optbinning import BinningProcess  # lazy: optbinning loads only when this runs

    names = [*numeric, *categorical]
    return BinningProcess(
        names, categorical_variables=categorical or None, selection_criteria={"iv": {"min": cfg.min_iv}},
        # Monotonic WoE for every numeric feature, ascending or descending as the data says.
        binning_fit_params={n: {"monotonic_trend": "auto_asc_desc"} for n in numeric}, n_jobs=1)


def _optb_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Categoricals as stripped text (the form scoring compares against), numerics as floats."""
    out = {}
    for n in numeric:
        out[n] = pd.to_numeric(frame[n], errors="coerce").astype(np.float64)
    for n in categorical:
        col = frame[n].astype(object)
        out[n] = col.where(col.isna(), col.astype(str).str.strip()).astype(object)
    return pd.DataFrame(out, index=frame.index)


def _features(bp: Any, names: Sequence[str], categorical: Sequence[str]) -> dict[str, BinnedFeature]:
    return {n: BinnedFeature.from_optbinning(n, "categorical" if n in categorical else "numeric", bp.get_binned_variable(n))
            for n in names}


def _prepared(frame: pd.DataFrame, rows: np.ndarray, numeric: list[str], categorical: list[str]) -> Prepared:
    sub = frame.iloc[rows]
    return prepare({n: sub[n].to_numpy() for n in (*numeric, *categorical)}, numeric, categorical)


def _baseline(linear: WoeLinear, idx: np.ndarray, score: np.ndarray, pd_: np.ndarray) -> dict[str, Any]:
    """Training-sample distributions that monitoring compares new data with (PSI)."""
    edges = np.unique(np.quantile(score, np.linspace(0, 1, SCORE_BINS + 1)[1:-1]))
    score_counts = np.bincount(np.searchsorted(edges, score, side="right"), minlength=len(edges) + 1)
    feats = {}
    for j, f in enumerate(linear.features):
        feats[f.name] = np.bincount(idx[:, j], minlength=f.n_bins + 2).tolist()
    return {"rows": int(len(score)), "score_edges": edges.tolist(), "score_counts": score_counts.tolist(),
            "features": feats, "grade_counts": np.bincount(grade_index(pd_), minlength=len(GRADE_NAMES)).tolist()}


def _anchor(workspace: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    body = {"model": manifest["model_id"], "model_sha256": manifest["model_sha256"], "kind": manifest["kind"],
            "training_data_sha256": manifest["training_data"]["sha256"], "training_rows": manifest["training_data"]["rows"],
            "target": manifest["target"], "created_at": manifest["created_at"], "artefacts": manifest["artefacts"]}
    leaf = workspace.ledger.anchor("model_fingerprint", [(manifest["model_id"], body)], checkpoint=True)
    return {"record": f"model_fingerprint:{manifest['model_id']}", "leaf_index": leaf}


def _catalogue(catalogue: Mapping[str, Mapping[str, str]] | None, names: Sequence[str]) -> dict[str, dict[str, str]]:
    out = {}
    for n in names:
        entry = dict((catalogue or {}).get(n, {}))
        out[n] = {"en": str(entry.get("en") or n), "zh": str(entry.get("zh") or entry.get("en") or n)}
        if entry.get("dimension"):
            out[n]["dimension"] = str(entry["dimension"])
    return out


def train(data: pd.DataFrame | Path | str, target: str, model_dir: Path | str, *, date_col: str | None = None,
          exclude: Sequence[str] = (), catalogue: Mapping[str, Mapping[str, str]] | None = None,
          bad: str | None = None, dimensions: Mapping[str, str] | None = None, config: TrainConfig = TrainConfig(),
          workspace: Any = None) -> dict[str, Any]:
    """Train and write a new model version under `model_dir`; returns a summary (the manifest's gist).

    With `dimensions` ({feature: entity|asset|transaction}) the enterprise three-dimension model is
    built instead of the generic scorecard + challenger (see `train_enterprise_model`)."""
    started = time.perf_counter()
    frame, data_sha, source = _load(data)
    if target not in frame.columns:
        raise ValidationError(f"no target column {target!r} (columns: {', '.join(map(str, frame.columns[:20]))})")
    y_all = rdata.binary_target(frame[target], bad)
    if dimensions is not None:
        unknown_dims = sorted({d for d in dimensions.values() if d not in DIMENSIONS})
        if unknown_dims:
            raise ValidationError(f"unknown dimension(s) {unknown_dims}; use {', '.join(DIMENSIONS)}")
        absent = [n for n in dimensions if n not in frame.columns]
        if absent:
            raise ValidationError(f"dimension mapping names columns not in the data: {', '.join(absent[:10])}")
        exclude = [*exclude, *(c for c in frame.columns if c not in dimensions and c not in (target, date_col))]
    numeric, categorical = rdata.feature_columns(frame, target, exclude, date_col)
    rdata.check_rows(frame, y_all)
    numeric, categorical, dropped = _usable(frame, numeric, categorical)
    if not numeric and not categorical:
        raise ValidationError(f"no usable feature: {dropped}")
    parts = _splits(frame, y_all, date_col, config)
    tr = parts["train"]
    y_tr = y_all[tr]
    x_tr = _optb_input(frame.iloc[tr], numeric, categorical)
    timings: dict[str, float] = {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optbinning/sklearn chatter on small bins; the report shows the bins
        t0 = time.perf_counter()
        bp = _binning(numeric, categorical, config)
        enterprise: dict[str, Any] = {}
        if dimensions is None:
            from optbinning import Scorecard  # lazy: optbinning loads only when this runs
            from sklearn.linear_model import (
                LogisticRegression,  # lazy: scikit-learn loads only when this runs
            )

            card = Scorecard(bp, LogisticRegression(max_iter=1000), scaling_method="pdo_odds",
                             scaling_method_params={"pdo": config.scaling.pdo, "odds": config.scaling.odds,
                                                    "scorecard_points": config.scaling.points})
            card.fit(x_tr, y_tr, metric_special="empirical", metric_missing="empirical")
            bp = card.binning_process_
            selected = list(bp.get_support(names=True))
            binned = _features(bp, [*numeric, *categorical], categorical)
            linear = WoeLinear([binned[n] for n in selected], card.estimator_.coef_.ravel().astype(float),
                               float(card.estimator_.intercept_[0]))
        else:
            bp.fit(x_tr, y_tr)
            selected = list(bp.get_support(names=True))
            binned = _features(bp, [*numeric, *categorical], categorical)
            linear, enterprise = _fit_dimensions(binned, selected, dimensions, _prepared(frame, tr, numeric, categorical), y_tr)
        timings["scorecard_s"] = time.perf_counter() - t0
        if not linear.features:
            raise ValidationError(f"no feature has information value ≥ {config.min_iv} on the training rows")

        challenger = None
        if config.challenger:  # the enterprise model gets one too: same monotone LightGBM path
            t0 = time.perf_counter()
            monotone = {n: binned[n].trend for n in numeric}
            challenger = fit_challenger(_prepared(frame, tr, numeric, categorical), y_tr, numeric, categorical,
                                        monotone, seed=config.seed)
            timings["challenger_s"] = time.perf_counter() - t0

    eff = _effective(linear, enterprise)
    scaling = config.scaling
    evaluation: dict[str, dict[str, Any]] = {}
    predictions: dict[str, dict[str, np.ndarray]] = {}
    for part in ("train", "test", "oot"):
        if part not in parts:
            continue
        rows = parts[part]
        prep = _prepared(frame, rows, numeric, categorical)
        preds = {"scorecard": sigmoid(eff.lp(eff.indices(prep)))}
        if challenger is not None:
            preds["challenger"] = challenger.pd(prep)
        predictions[part] = preds
        evaluation[part] = {name: metrics.summary(y_all[rows], p) for name, p in preds.items()}
    judge = "oot" if "oot" in evaluation else "test"
    champion = config.champion
    if champion == "auto":
        champion = "scorecard"
        if challenger is not None and evaluation[judge]["challenger"]["auc"] > evaluation[judge]["scorecard"]["auc"]:
            champion = "challenger"
    elif champion == "challenger" and challenger is None:
        raise ValidationError("champion 'challenger' asked for, but no challenger was trained")

    prep_tr = _prepared(frame, tr, numeric, categorical)
    idx_tr = eff.indices(prep_tr)
    pd_tr = predictions["train"][champion]
    baseline = _baseline(linear, idx_tr, scaling.score(logit(pd_tr)), pd_tr)
    kind = "enterprise" if dimensions is not None else "scorecard"
    labels = _catalogue(catalogue, [*numeric, *categorical])
    if dimensions is not None:
        for n, d in dimensions.items():
            if n in labels:
                labels[n]["dimension"] = d
    manifest: dict[str, Any] = {
        "format": FORMAT, "kind": kind, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": target, "bad_value": bad, "date_column": date_col, "champion": champion,
        "training_data": {"sha256": data_sha, "source": source, "rows": int(len(frame)), "bad_rate": float(y_all.mean())},
        "inputs": {"numeric": numeric, "categorical": categorical}, "dropped": dropped,
        "selected": linear.names, "scaling": scaling.to_json(), "master_scale": scale_table(),
        "splits": {k: int(len(v)) for k, v in parts.items() if k != "oot_from"} | (
            {"oot_from": str(parts["oot_from"][0])} if "oot_from" in parts else {}),
        "evaluation": evaluation, "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    card_json: dict[str, Any] = {"linear": linear.to_json(), "scaling": scaling.to_json()}
    if enterprise:
        card_json |= enterprise
        manifest["dimensions"] = {d: {"weight": v["weight"], "features": [n for n in linear.names if dimensions[n] == d]}
                                  for d, v in enterprise["dimensions"].items()}
    files = {"scorecard.json": _json(card_json), "catalogue.json": _json(labels), "baseline.json": _json(baseline)}
    if challenger is not None:
        manifest["challenger"] = challenger.to_json()
        files["challenger.txt"] = challenger.booster.model_to_string().encode()
    if config.report:
        from iotfin.risk.report import render_report  # lazy: the risk engine brings pandas and LightGBM

        files["report.html"] = render_report(manifest, linear, binned, y_all, parts, predictions, scaling, labels).encode()
    vdir, manifest = write_version(Path(model_dir), files, manifest)
    summary = {"model": manifest["model_id"], "path": str(vdir), "kind": kind, "champion": champion,
               "training_data_sha256": data_sha, "model_sha256": manifest["model_sha256"],
               "selected": linear.names, "dropped": dropped, "evaluation": evaluation,
               "seconds": round(time.perf_counter() - started, 2)}
    if workspace is not None:
        anchored = _anchor(workspace, manifest)
        (vdir / "anchor.json").write_text(json.dumps(anchored) + "\n")  # not an artefact: written after hashing
        summary["anchor"] = anchored
    return summary


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode()


def _effective(linear: WoeLinear, enterprise: dict[str, Any]) -> WoeLinear:
    if not enterprise:
        return linear
    return combined_linear(linear, enterprise["dimensions"], enterprise["bias"], enterprise["feature_dimension"])


def _fit_dimensions(binned: dict[str, BinnedFeature], selected: list[str], dimensions: Mapping[str, str],
                    prep: Prepared, y: np.ndarray) -> tuple[WoeLinear, dict[str, Any]]:
    """One logistic WoE model per dimension, then a logistic combination of the three ln-odds.

    The combination is fitted on the same training rows as the dimension models (no cross-fitting):
    three coefficients on well-regularised inputs overfit little; the test/out-of-time metrics show it."""
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn loads only when this runs

    feats: list[BinnedFeature] = []
    coefs: list[float] = []
    dims: dict[str, dict[str, float]] = {}
    lps = []
    for dim in DIMENSIONS:
        names = [n for n in selected if dimensions.get(n) == dim]
        if not names:
            continue
        sub = WoeLinear([binned[n] for n in names], np.zeros(len(names)), 0.0)
        woe = sub.woe_of(sub.indices(prep))
        lr = LogisticRegression(max_iter=1000).fit(woe, y)
        feats += sub.features
        coefs += lr.coef_.ravel().tolist()
        dims[dim] = {"intercept": float(lr.intercept_[0])}
        lps.append(lr.intercept_[0] + woe @ lr.coef_.ravel())
    if not dims:
        return WoeLinear([], np.zeros(0), 0.0), {}
    combiner = LogisticRegression(max_iter=1000).fit(np.column_stack(lps), y)
    for w, dim in zip(combiner.coef_.ravel(), dims, strict=True):
        dims[dim]["weight"] = float(w)
    enterprise = {"dimensions": dims, "bias": float(combiner.intercept_[0]),
                  "feature_dimension": {f.name: dimensions[f.name] for f in feats}}
    return WoeLinear(feats, np.asarray(coefs), 0.0), enterprise


def train_enterprise_model(data: pd.DataFrame | Path | str, target: str, dimensions: Mapping[str, str],
                           model_dir: Path | str, labels: Mapping[str, Mapping[str, str]] | None = None,
                           **kwargs: Any) -> dict[str, Any]:
    """The enterprise three-dimension model: a WoE scorecard per dimension (entity / asset /
    transaction) whose ln-odds a logistic model combines; scoring gives a sub-score, PD and grade per
    dimension, the combined PD, score and grade, and reasons naming feature and dimension."""
    return train(data, target, model_dir, dimensions=dimensions, catalogue=labels, **kwargs)


__all__ = ["TrainConfig", "load_model", "train", "train_enterprise_model"]
