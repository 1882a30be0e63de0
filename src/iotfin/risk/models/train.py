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
    # Issue 23. budget_s > 0: binning search for the scorecard, Optuna search for the challenger, the
    # monotone policy measured, and the champion (scorecard, challenger or their blend) chosen on
    # cross-validated AUC, all within about budget_s seconds. 0: the fixed parameters (fast; what
    # library callers such as the demo get), monotone constraints on every trended feature.
    budget_s: float = 0.0
    monotone: str = "measured"  # "all" | "measured" | "none"
    monotone_tolerance: float = 0.002  # AUC a constraint may cost on CV (mean + 1 standard error) and still be applied
    cv_folds: int | None = None  # default 5 (3 from 20,000 rows)
    cv_repeats: int | None = None  # default 2 (1 from 20,000 rows)
    max_trials: int | None = None  # cap the search (with a seed: the same trials every run)
    on_unusable: str = "drop"  # "drop" (noted in the manifest) or "error" for constant / empty / text columns


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
            dropped[name] = f"constant (every row {col.dropna().iloc[0]!r})"
        elif name in categorical and (text := _text_in_numbers(col)):
            dropped[name] = text
        elif name in categorical and col.nunique(dropna=True) > MAX_CATEGORIES:
            dropped[name] = f"text or an identifier ({col.nunique(dropna=True):,} distinct values, more than {MAX_CATEGORIES})"
    return [n for n in numeric if n not in dropped], [n for n in categorical if n not in dropped], dropped


def _text_in_numbers(col: pd.Series) -> str | None:
    """A column of numbers with some text in it (read as text): name the first offending row."""
    values = col.dropna()
    parsed = pd.to_numeric(values, errors="coerce")
    if parsed.notna().mean() < 0.9 or parsed.notna().all():
        return None
    row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
    return f"numbers with text in them (row {values.index[row]}: {values.iloc[row]!r})"


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
    if cfg.test_share == 0:  # searched training only: held-out figures come from the out-of-fold predictions
        parts["train"] = np.sort(rows)
        return parts
    train, test = train_test_split(rows, test_size=cfg.test_share, stratify=y[rows], random_state=cfg.seed)
    parts["train"], parts["test"] = np.sort(train), np.sort(test)
    return parts


# Candidate binning settings for the scorecard, tried in this order within the budget and chosen by
# cross-validated AUC (issue 23). "default" is what training used before; a setting changes the
# optbinning OptimalBinning options of the numeric features and the logistic regression's C.
CARD_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {"binning": {"monotonic_trend": "auto_asc_desc"}, "C": 1.0},
    "regularised": {"binning": {"monotonic_trend": "auto_asc_desc"}, "C": 0.1},  # default's binning, reused
    # optbinning's own defaults (trend "auto", every feature kept): what its Scorecard does out of the box
    "optbinning_defaults": {"binning": {"monotonic_trend": "auto"}, "C": 1.0, "min_iv": 0.0},
    "peak_valley": {"binning": {"monotonic_trend": "auto"}, "C": 1.0},  # optbinning_defaults' binning, IV ≥ min_iv
    "coarse": {"binning": {"monotonic_trend": "auto_asc_desc", "max_n_bins": 5, "min_bin_size": 0.05}, "C": 1.0},
    "mip": {"binning": {"monotonic_trend": "auto_asc_desc", "solver": "mip", "max_n_prebins": 30}, "C": 1.0},
}


_IV_BINNING: Any = None


def _iv_binning_process() -> Any:
    """optbinning's BinningProcess without the per-variable statistics its selection criteria use.

    Why a subclass: `BinningProcess.fit` builds and analyses every variable's binning table (IV, Gini,
    quality score, chi² and Bayesian tests between neighbouring bins) only to fill the statistics
    for its selection criteria; we select on IV ourselves (`BinnedFeature.iv`, from the same counts).
    On German credit (640 rows, 20 features) that was ~40 % of a fit (0.42 s → 0.20–0.26 s with the
    analysis skipped, measured; bins and WoE identical). The binning search fits dozens of these
    within the budget (issue 23)."""
    global _IV_BINNING
    if _IV_BINNING is None:
        from optbinning import BinningProcess  # lazy: optbinning loads only when this runs

        class IvBinningProcess(BinningProcess):
            def _binning_selection_criteria(self) -> None:
                assert self.selection_criteria is None  # we select on BinnedFeature.iv (`_fit_card`)
                for name in self.variable_names:
                    optb = self._binned_variables[name]
                    self._variable_stats[name] = {"dtype": optb.dtype, "status": optb.status,
                                                  "n_bins": len(optb.splits) + (1 if optb.dtype == "numerical" else 0)}
                self._support_selection_criteria()

        _IV_BINNING = IvBinningProcess
    return _IV_BINNING


def _binning(numeric: list[str], categorical: list[str], setting: str = "default"):  # noqa: ANN202
    """The binning process of a setting, without selection: `_fit_card` selects on IV (so settings that
    differ only in the IV threshold share one fitted binning)."""
    return _iv_binning_process()(
        [*numeric, *categorical], categorical_variables=categorical or None,
        # Monotonic WoE for every numeric feature, ascending or descending as the data says (by default).
        binning_fit_params={n: dict(CARD_SETTINGS[setting]["binning"]) for n in numeric}, n_jobs=1)


CardCache = dict[tuple[str, bytes], tuple[Any, Any]]
"""Fitted binnings within one training, by (binning options, rows): settings that differ only in the
logistic regression's C, the other repeats' champion figures and the interaction search reuse the
folds' binnings instead of refitting them (issue 23: the binning, not the boosting, was what left
the challenger's search with a third of the tuned peer's trials)."""


def _fit_card(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, numeric: list[str], categorical: list[str],
              dimensions: Mapping[str, str] | None, cfg: TrainConfig, setting: str = "default",
              cache: CardCache | None = None) -> tuple[WoeLinear, dict[str, BinnedFeature], dict[str, Any]]:
    """The WoE scorecard (or the three-dimension model) fitted on `rows`: (linear, binned features, enterprise).

    The generic card is what optbinning's `Scorecard` fits (the binning process's WoE transform with
    empirical WoE for missing values, then the logistic regression), written out so that a fitted
    binning can be reused from `cache` across settings that differ only in C."""
    x = _optb_input(frame.iloc[rows], numeric, categorical)
    key = (json.dumps(CARD_SETTINGS[setting]["binning"], sort_keys=True), np.asarray(rows).tobytes())
    if cache is not None and key in cache:
        bp, binned = cache[key]
    else:
        bp = _binning(numeric, categorical, setting)
        bp.fit(x, y)
        binned = _features(bp, [*numeric, *categorical], categorical)
        if cache is not None:
            cache[key] = (bp, binned)
    # optbinning's selection criterion {"iv": {"min": min_iv}}: the binning table's IV, kept in BinnedFeature
    min_iv = CARD_SETTINGS[setting].get("min_iv", cfg.min_iv)
    selected = [n for n in [*numeric, *categorical] if binned[n].iv >= min_iv]
    enterprise: dict[str, Any] = {}
    if dimensions is None:
        from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn loads only when this runs

        if not selected:
            return WoeLinear([], np.zeros(0), 0.0), binned, enterprise
        woe = bp.transform(x, metric="woe", metric_special="empirical", metric_missing="empirical")[selected]
        lr = LogisticRegression(max_iter=1000, C=CARD_SETTINGS[setting]["C"]).fit(woe, y)
        linear = WoeLinear([binned[n] for n in selected], lr.coef_.ravel().astype(float), float(lr.intercept_[0]))
    else:
        linear, enterprise = _fit_dimensions(binned, selected, dimensions, _prepared(frame, rows, numeric, categorical), y)
    return linear, binned, enterprise


def _card_oof(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, numeric: list[str], categorical: list[str],
              dimensions: Mapping[str, str] | None, cfg: TrainConfig, setting: str,
              folds: list[tuple[np.ndarray, np.ndarray]], cache: CardCache | None = None) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold PD of one binning setting on `folds` (positions within `rows`) and the fold AUCs;
    ValueError when optbinning refuses the setting on this data (e.g. too few rows per bin)."""
    pred = np.full(len(y), np.nan)
    aucs = []
    for tr, te in folds:
        linear, _, enterprise = _fit_card(frame, rows[tr], y[tr], numeric, categorical, dimensions, cfg, setting, cache)
        if not linear.features:
            raise ValueError(f"no feature selected on a fold with setting {setting!r}")
        eff = _effective(linear, enterprise)
        pred[te] = sigmoid(eff.lp(eff.indices(_prepared(frame, rows[te], numeric, categorical))))
        aucs.append(metrics.auc(y[te], pred[te]))
    return pred, aucs


def _card_search(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, numeric: list[str], categorical: list[str],
                 dimensions: Mapping[str, str] | None, cfg: TrainConfig, folds: list[tuple[np.ndarray, np.ndarray]],
                 deadline: float, cache: CardCache | None = None) -> tuple[str, dict[str, Any], np.ndarray]:
    """Cross-validated AUC of each binning setting on `folds` (positions within `rows`), in order until
    the deadline ("default" always); returns (best setting, record, its out-of-fold PD)."""
    record: dict[str, Any] = {}
    oof: dict[str, np.ndarray] = {}
    settings = list(CARD_SETTINGS) if dimensions is None else [s for s in CARD_SETTINGS if CARD_SETTINGS[s]["C"] == 1.0]
    for setting in settings:
        if setting != "default" and time.perf_counter() > deadline:
            record[setting] = {"skipped": "budget"}
            continue
        t0 = time.perf_counter()
        try:
            pred, aucs = _card_oof(frame, rows, y, numeric, categorical, dimensions, cfg, setting, folds, cache)
        except ValueError:  # optbinning refuses a setting on this data (e.g. too few rows per bin)
            record[setting] = {"skipped": "optbinning refused the setting"}
            continue
        record[setting] = {"cv_auc": float(np.mean(aucs)), "cv_fold_auc": aucs, "seconds": round(time.perf_counter() - t0, 3),
                           **CARD_SETTINGS[setting]}
        oof[setting] = pred
    best = max(oof, key=lambda k: record[k]["cv_auc"])
    return best, record, oof[best]


INTERACTION_TOLERANCE = 0.005  # CV AUC an interaction or a segmentation must gain to pay


def _interaction_search(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, numeric: list[str], categorical: list[str],
                        cfg: TrainConfig, setting: str, binned: Mapping[str, BinnedFeature], selected: list[str],
                        folds: list[tuple[np.ndarray, np.ndarray]], deadline: float,
                        cache: CardCache | None = None) -> dict[str, Any]:
    """Item 3 of issue 23: do an interaction or a segmented scorecard pay on validation? On the same
    folds as the binning search, against the scorecard's own logistic regression on WoE:

    - **2D interaction**: optbinning's `OptimalBinning2D` of the two numeric features with the highest
      information value (fitted on each fold's training part), its WoE added as one more term;
    - **segmented scorecard**: one logistic regression on the same WoE per segment, the segments
      being the two sides of the highest-IV feature (WoE ≥ 0: its better-than-average bins).

    Each pays when its mean out-of-fold AUC gain exceeds `INTERACTION_TOLERANCE`. The result is
    recorded and reported; the shipped scorecard stays the one-dimensional WoE card (scoring a 2D
    or segmented card is not implemented: docs/risk.md, Limitations)."""
    from optbinning import OptimalBinning2D  # lazy: optbinning loads only when this runs
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn loads only when this runs

    ranked = sorted(selected, key=lambda n: -binned[n].iv)
    pair = [n for n in ranked if n in numeric][:2]
    out: dict[str, Any] = {"tolerance": INTERACTION_TOLERANCE, "segment_by": ranked[0] if ranked else None,
                           "pair": pair if len(pair) == 2 else None}
    if not ranked:
        return out | {"skipped": "no selected feature"}
    c = CARD_SETTINGS[setting]["C"]
    base, inter, seg = [], [], []
    t0 = time.perf_counter()
    for tr, te in folds:
        if time.perf_counter() > deadline:
            return out | {"skipped": "budget", "folds_done": len(base)}
        linear, _, _ = _fit_card(frame, rows[tr], y[tr], numeric, categorical, None, cfg, setting, cache)
        if not linear.features:
            return out | {"skipped": "no feature selected on a fold"}
        w_tr = linear.woe_of(linear.indices(_prepared(frame, rows[tr], numeric, categorical)))
        w_te = linear.woe_of(linear.indices(_prepared(frame, rows[te], numeric, categorical)))
        lr = LogisticRegression(max_iter=1000, C=c).fit(w_tr, y[tr])
        base.append(metrics.auc(y[te], lr.decision_function(w_te)))
        if out["pair"] is not None:
            a, b = (pd.to_numeric(frame[n].iloc[rows], errors="coerce").to_numpy(dtype=np.float64) for n in pair)
            optb = OptimalBinning2D(pair[0], pair[1], min_bin_size=0.05).fit(a[tr], b[tr], y[tr])
            z_tr = optb.transform(a[tr], b[tr], metric="woe", metric_missing="empirical")
            z_te = optb.transform(a[te], b[te], metric="woe", metric_missing="empirical")
            lr2 = LogisticRegression(max_iter=1000, C=c).fit(np.column_stack([w_tr, z_tr]), y[tr])
            inter.append(metrics.auc(y[te], lr2.decision_function(np.column_stack([w_te, z_te]))))
        j = linear.names.index(ranked[0]) if ranked[0] in linear.names else 0
        s_tr, s_te = w_tr[:, j] >= 0, w_te[:, j] >= 0
        score = lr.decision_function(w_te)
        for side in (True, False):
            ok = s_tr == side
            if ok.sum() >= 50 and 0 < y[tr][ok].sum() < ok.sum() and (s_te == side).any():
                score[s_te == side] = LogisticRegression(max_iter=1000, C=c).fit(w_tr[ok], y[tr][ok]).decision_function(
                    w_te[s_te == side])
        seg.append(metrics.auc(y[te], score))  # scores of two segment models ranked together, as a segmented card is
    for name, aucs in (("interaction_2d", inter), ("segmented", seg)):
        if aucs:
            gain = float(np.mean(aucs) - np.mean(base))
            out[name] = {"cv_auc": float(np.mean(aucs)), "cv_auc_base": float(np.mean(base)), "gain": gain,
                         "cv_fold_auc": aucs, "pays": gain > INTERACTION_TOLERANCE}
    return out | {"seconds": round(time.perf_counter() - t0, 3)}


def _declared_orders(frame: pd.DataFrame, categorical: list[str]) -> dict[str, list[str]]:
    """The categorical columns whose categories have a declared order (pandas ordered categoricals),
    with that order; the challenger also sees their rank (iotfin.risk.models.challenger.Challenger)."""
    out = {}
    for name in categorical:
        dtype = frame[name].dtype
        if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered:
            out[name] = [str(c).strip() for c in dtype.categories]  # compared as stripped text (iotfin.risk.prepare)
    return out


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
    built instead of the generic scorecard + challenger (see `train_enterprise_model`).

    BLAS runs on one thread meanwhile (threadpoolctl, which scikit-learn brings): the logistic
    regressions of the binning search are small, and OpenBLAS's second thread spin-waiting on a busy
    2-core machine made each fit 0.09–0.25 s instead of 0.01 s (measured, German credit, load 8;
    same coefficients). LightGBM already runs on one thread (challenger.PARAMS)."""
    from threadpoolctl import threadpool_limits  # lazy: comes with scikit-learn

    with threadpool_limits(limits=1):
        return _train(data, target, model_dir, date_col=date_col, exclude=exclude, catalogue=catalogue, bad=bad,
                      dimensions=dimensions, config=config, workspace=workspace)


def _train(data: pd.DataFrame | Path | str, target: str, model_dir: Path | str, *, date_col: str | None,
           exclude: Sequence[str], catalogue: Mapping[str, Mapping[str, str]] | None, bad: str | None,
           dimensions: Mapping[str, str] | None, config: TrainConfig, workspace: Any) -> dict[str, Any]:
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
    if dropped and config.on_unusable == "error":
        name, why = next(iter(dropped.items()))
        raise ValidationError(f"column {name!r}: {why}; exclude it (--exclude {name}) or fix the data"
                              + (f" ({len(dropped) - 1} more such column(s))" if len(dropped) > 1 else ""))
    if not numeric and not categorical:
        raise ValidationError(f"no usable feature: {dropped}")
    if config.test_share == 0 and config.budget_s <= 0:
        raise ValidationError("a test share of 0 needs a search budget (the held-out figures are then out-of-fold)")
    parts = _splits(frame, y_all, date_col, config)
    tr = parts["train"]
    y_tr = y_all[tr]
    timings: dict[str, float] = {}

    searched = config.budget_s > 0
    search_record: dict[str, Any] = {}
    blend: dict[str, float] | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optbinning/sklearn chatter on small bins; the report shows the bins
        t0 = time.perf_counter()
        card_setting = "default"
        if searched:
            small = len(tr) < 20_000
            k = config.cv_folds or (5 if small else 3)
            repeats = config.cv_repeats or (2 if small else 1)
            from iotfin.risk.models import search as rsearch  # lazy: Optuna loads only when this runs

            folds = rsearch.folds_for(y_tr, k, repeats, config.seed)
            budget = config.budget_s
            if config.max_trials is not None:  # a fixed amount of work, not a clock: the same model on any machine
                budget = float("inf")
            cache: CardCache = {}
            card_setting, card_record, card_oof = _card_search(frame, tr, y_tr, numeric, categorical, dimensions, config,
                                                               folds[:k], started + 0.2 * budget, cache)
            card_oofs = [card_oof]
            # the chosen setting on the other repeats too, while the clock allows: the champion is then
            # chosen on every repeat of the folds, not on one (less noise in a choice between close models)
            for r in range(1, repeats):
                if time.perf_counter() > started + 0.25 * budget:
                    break
                card_oofs.append(_card_oof(frame, tr, y_tr, numeric, categorical, dimensions, config, card_setting,
                                           folds[r * k:(r + 1) * k], cache)[0])
            search_record["scorecard"] = {"chosen": card_setting, "settings": card_record,
                                          "repeats_for_champion": len(card_oofs)}
        linear, binned, enterprise = _fit_card(frame, tr, y_tr, numeric, categorical, dimensions, config, card_setting)
        timings["scorecard_s"] = time.perf_counter() - t0
        if not linear.features:
            raise ValidationError(f"no feature has information value ≥ {config.min_iv} on the training rows")
        if searched and dimensions is None:
            t0 = time.perf_counter()
            search_record["interactions"] = _interaction_search(frame, tr, y_tr, numeric, categorical, config, card_setting,
                                                                binned, linear.names, folds[:k], started + 0.3 * budget,
                                                                cache)
            timings["interactions_s"] = time.perf_counter() - t0

        challenger = None
        if config.challenger:  # the enterprise model gets one too: same monotone LightGBM path
            t0 = time.perf_counter()
            trends = {n: binned[n].trend for n in numeric}
            prep_fit = _prepared(frame, tr, numeric, categorical)
            ordinal = _declared_orders(frame, categorical)
            if searched:
                now = time.perf_counter()
                # what follows the search (refit, blend, figures, report) takes a second or two on small
                # samples and tens of seconds from 100,000 rows (measured): keep that much of the budget
                end = started + (0.93 if small else 0.85) * budget
                challenger, record, chal_oof = rsearch.fit_searched(
                    prep_fit, y_tr, numeric, categorical, trends, policy=config.monotone,
                    tolerance=config.monotone_tolerance, folds=folds, k=k, deadline=end,
                    monotone_deadline=now + 0.25 * max(end - now, 0.0), seed=config.seed,
                    max_trials=config.max_trials, ordinal=ordinal)
                search_record["challenger"] = record
                search_record["cv"] = {"folds": k, "repeats": repeats, "rows": int(len(tr)), "seed": config.seed}
            else:
                if config.monotone == "none":
                    trends = {n: 0 for n in numeric}
                challenger = fit_challenger(prep_fit, y_tr, numeric, categorical, trends, seed=config.seed,
                                            ordinal=ordinal)
            timings["challenger_s"] = time.perf_counter() - t0
        if searched:
            # out-of-fold PD per repeat of the folds, for the repeats every candidate has
            reps = len(card_oofs) if challenger is None else min(len(card_oofs), len(chal_oof))
            by_rep: dict[str, list[np.ndarray]] = {"scorecard": card_oofs[:reps]}
            if challenger is not None:
                by_rep["challenger"] = chal_oof[:reps]
                by_rep["blend"] = [_blend(card_oofs[r], chal_oof[r], y_tr, folds[r * k:(r + 1) * k])[0] for r in range(reps)]
                blend = _blend_weights(card_oofs[:reps], chal_oof[:reps], y_tr)
            cands = {name: preds[0] for name, preds in by_rep.items()}  # the first repeat: the held-out figures
            search_record["candidates"] = {
                name: {"cv_auc": float(np.mean(f := [metrics.auc(y_tr[te], preds[i // k][te])
                                                     for i, (_, te) in enumerate(folds[:reps * k])])),
                       "cv_auc_sd": float(np.std(f, ddof=1)) if len(f) > 1 else 0.0, "cv_fold_auc": f, "repeats": reps}
                for name, preds in by_rep.items()}

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
            preds["challenger"] = challenger.pd(prep, compile_large=False)  # scored once: compiling costs more
        if blend is not None:
            preds["blend"] = _blend_pd(blend, preds["scorecard"], preds["challenger"])
        predictions[part] = preds
        evaluation[part] = {name: metrics.summary(y_all[rows], p) for name, p in preds.items()}
    if searched and "test" not in parts:  # out-of-fold predictions of the first repeat: the held-out figures
        parts["cv"], predictions["cv"] = tr, cands
        evaluation["cv"] = {name: metrics.summary(y_tr, p) for name, p in cands.items()}
    judge = "oot" if "oot" in evaluation else "test" if "test" in evaluation else "cv"
    champion = config.champion
    if champion == "auto" and searched:
        champion = _cv_champion(search_record["candidates"])
    elif champion == "auto":
        champion = "scorecard"
        if challenger is not None and evaluation[judge]["challenger"]["auc"] > evaluation[judge]["scorecard"]["auc"]:
            champion = "challenger"
    elif champion in ("challenger", "blend") and champion not in evaluation[judge]:
        raise ValidationError(f"champion {champion!r} asked for, but no {champion} was trained"
                              + (" (the blend needs --budget-s > 0)" if champion == "blend" else ""))

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
        "splits": {k: int(len(v)) for k, v in parts.items() if k not in ("oot_from", "cv")} | (
            {"oot_from": str(parts["oot_from"][0])} if "oot_from" in parts else {}),
        "evaluation": evaluation, "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    if blend is not None:
        manifest["blend"] = blend
    if searched:
        manifest["search"] = search_record | {"budget_s": config.budget_s, "monotone_policy": config.monotone,
                                              "seed": config.seed, "max_trials": config.max_trials}
        manifest["calibration"] = {name: metrics.calibration(y_all[parts[judge]], p)
                                   for name, p in predictions[judge].items()} | {"sample": judge}
        manifest["intervals"] = {name: metrics.intervals(y_all[parts[judge]], p, seed=config.seed)
                                 for name, p in predictions[judge].items()} | {"sample": judge}
    card_json: dict[str, Any] = {"linear": linear.to_json(), "scaling": scaling.to_json()}
    if enterprise:
        card_json |= enterprise
        manifest["dimensions"] = {d: {"weight": v["weight"], "features": [n for n in linear.names if dimensions[n] == d]}
                                  for d, v in enterprise["dimensions"].items()}
    files = {"scorecard.json": _json(card_json), "catalogue.json": _json(labels), "baseline.json": _json(baseline)}
    if challenger is not None:
        manifest["challenger"] = challenger.to_json()
        files["challenger.txt"] = challenger.booster.model_to_string().encode()
    if searched:  # up to here: the report takes a second or two more, which the summary's seconds include
        manifest["search"]["seconds_total"] = round(time.perf_counter() - started, 3)
    if config.report:
        from iotfin.risk.report import render_report  # lazy: the risk engine brings pandas and LightGBM

        files["report.html"] = render_report(manifest, linear, binned, y_all, parts, predictions, scaling, labels).encode()
    vdir, manifest = write_version(Path(model_dir), files, manifest)
    summary = {"model": manifest["model_id"], "path": str(vdir), "kind": kind, "champion": champion,
               "training_data_sha256": data_sha, "model_sha256": manifest["model_sha256"],
               "selected": linear.names, "dropped": dropped, "evaluation": evaluation,
               "seconds": round(time.perf_counter() - started, 2)}
    if searched:
        summary["search"] = {k: {"cv_auc": v["cv_auc"], "cv_auc_sd": v["cv_auc_sd"]}
                             for k, v in search_record["candidates"].items()}
    if workspace is not None:
        anchored = _anchor(workspace, manifest)
        (vdir / "anchor.json").write_text(json.dumps(anchored) + "\n")  # not an artefact: written after hashing
        summary["anchor"] = anchored
    return summary


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode()


def _cv_champion(cv: Mapping[str, Mapping[str, Any]]) -> str:
    """The best mean out-of-fold AUC, except that the blend stays champion unless the best beats it by
    more than one standard error of their paired fold differences: the challenger's figure is the
    best of many search trials (optimistic), and stacking both models is the more robust choice out
    of sample (the one-standard-error rule, applied in the blend's favour)."""
    best = max(cv, key=lambda name: cv[name]["cv_auc"])
    if "blend" not in cv or best == "blend":
        return best
    diff = np.asarray(cv[best]["cv_fold_auc"]) - np.asarray(cv["blend"]["cv_fold_auc"])
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return best if diff.mean() > se else "blend"


def _blend(card: np.ndarray, chal: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
           ) -> tuple[np.ndarray, dict[str, float]]:
    """Logistic stacking of the two models' ln-odds: cross-fitted out-of-fold PD (each fold's blend
    weights learnt on the other folds' out-of-fold predictions) and the weights learnt on all rows."""
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn loads only when this runs

    z = np.column_stack([logit(card), logit(chal)])
    out = np.full(len(y), np.nan)
    for tr, te in folds:
        lr = LogisticRegression(max_iter=1000).fit(z[tr], y[tr])
        out[te] = lr.predict_proba(z[te])[:, 1]
    lr = LogisticRegression(max_iter=1000).fit(z, y)
    return out, {"scorecard": float(lr.coef_[0, 0]), "challenger": float(lr.coef_[0, 1]), "intercept": float(lr.intercept_[0])}


def _blend_weights(cards: list[np.ndarray], chals: list[np.ndarray], y: np.ndarray) -> dict[str, float]:
    """The blend's weights learnt on every repeat's out-of-fold predictions stacked."""
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn loads only when this runs

    z = np.vstack([np.column_stack([logit(c), logit(h)]) for c, h in zip(cards, chals, strict=True)])
    lr = LogisticRegression(max_iter=1000).fit(z, np.tile(y, len(cards)))
    return {"scorecard": float(lr.coef_[0, 0]), "challenger": float(lr.coef_[0, 1]), "intercept": float(lr.intercept_[0])}


def _blend_pd(blend: Mapping[str, float], pd_card: np.ndarray, pd_chal: np.ndarray) -> np.ndarray:
    return sigmoid(blend["intercept"] + blend["scorecard"] * logit(pd_card) + blend["challenger"] * logit(pd_chal))


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
