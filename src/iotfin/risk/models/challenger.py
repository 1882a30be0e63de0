"""The gradient-boosting challenger: LightGBM with monotone constraints taken from the scorecard's
binning, and Platt calibration of its margin on data it was not fitted on."""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iotfin.risk.prepare import Prepared
from iotfin.risk.woe import sigmoid

PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": 5,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "cat_smooth": 10.0,
    "min_data_per_group": 20,
    "monotone_constraints_method": "advanced",
    "num_threads": 1,  # OpenMP spin-waits make 2 threads 10× slower on a shared 2-core machine (measured)
    "verbosity": -1,
    "seed": 7,
}


SMALL_SAMPLE = 20_000
PARALLEL_FROM = 50_000  # rows from which a batch is predicted in two halves on two threads
COMPILED_FROM = 50_000  # rows from which a batch is predicted by the compiled forest (lleaves), when it compiles
C_API_PREDICT_RAW_SCORE, C_API_DTYPE_FLOAT64 = 1, 1  # LightGBM's c_api.h


class SingleRowPredictor:
    """LightGBM's own single-row fast path (`LGBM_BoosterPredictForMatSingleRowFast` with a
    `FastConfig` set up once), which the Python package does not wrap. `Booster.predict` spends
    ~0.5–1 ms per call building a predictor and checking arrays before the C call; for one online
    request this is one C call (~20 µs). The result is LightGBM's own raw score, bit for bit (the
    tests compare it with `Booster.predict`). One FastConfig is not safe to share between threads
    mid-call, hence the lock."""

    def __init__(self, booster: Any, ncol: int):
        from lightgbm.basic import _LIB, _c_str, _safe_call  # lazy: LightGBM loads only when this runs

        self._lib, self._check, self._booster = _LIB, _safe_call, booster  # the booster outlives the config
        self._handle = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(C_API_PREDICT_RAW_SCORE), ctypes.c_int(0), ctypes.c_int(-1),
            ctypes.c_int(C_API_DTYPE_FLOAT64), ctypes.c_int32(ncol), _c_str("num_threads=1"), ctypes.byref(self._handle)))
        self._out = np.empty(1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._len = ctypes.c_int64(0)
        self._lock = threading.Lock()

    def __call__(self, row: np.ndarray) -> float:
        row = np.ascontiguousarray(row, dtype=np.float64)
        with self._lock:
            self._check(self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle, row.ctypes.data_as(ctypes.c_void_p), ctypes.byref(self._len), self._out_ptr))
            return float(self._out[0])

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None and self._handle.value:
            self._lib.LGBM_FastConfigFree(self._handle)


def compiled_forest(booster: Any) -> Any:
    """The booster compiled to native code by lleaves (LLVM), for large batches; None when lleaves is
    not installed or cannot compile this model.

    Why: LightGBM's `Booster.predict` walks each tree per row through generic node arrays and turns
    every row into (index, value) pairs first; on 1,000,000 rows and ~120 trees that was 9.1 s of CPU
    of a 12 s batch (cProfile, bench/risk_search.py). The compiled forest (each tree's splits as
    branches, trees cache-blocked) gave the same raw scores (largest difference 9e-15, the order of
    summing the trees) in 1.7 s of CPU. Online requests keep LightGBM's single-row fast path.

    The compiled library is cached by the model text's SHA-256 and the host CPU under
    `$IOTFIN_CACHE_DIR/lleaves` (default `~/.cache/iotfin/lleaves`), so a model compiles once per
    machine (seconds); it is written to a temporary name and renamed, so concurrent scorers never
    load a half-written file."""
    try:
        import lleaves  # lazy and optional: the LightGBM path works without it
        from llvmlite import binding  # lazy: comes with lleaves
    except ImportError:
        return None
    text = booster.model_to_string()
    from importlib.metadata import version  # lazy: only for the cache key

    key = hashlib.sha256(f"{text}\n{binding.get_host_cpu_name()}\n{version('lleaves')}\n{version('llvmlite')}".encode()).hexdigest()
    cache = Path(os.environ.get("IOTFIN_CACHE_DIR") or Path.home() / ".cache" / "iotfin") / "lleaves"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / f"{key}.so"
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(text)
            model = lleaves.Model(model_file=str(model_file))
            if target.is_file():
                model.compile(cache=str(target), raw_score=True)
            else:
                fresh = Path(tmp) / "forest.so"
                model.compile(cache=str(fresh), raw_score=True)
                os.replace(fresh, target)
        return model
    except Exception:  # noqa: BLE001 - any compile failure falls back to LightGBM's own predict
        return None


@dataclass(slots=True)
class Challenger:
    booster: Any  # lightgbm.Booster
    numeric: list[str]
    categorical: dict[str, list[str]]  # feature -> categories in code order
    platt: tuple[float, float]  # pd = sigmoid(a × margin + b)
    monotone: dict[str, int]
    # categoricals whose categories have a declared order (pandas ordered categoricals): their rank in
    # that order is one more numeric column, after the categorical columns; the trees then choose
    # between a categorical split and a threshold on the order. Out of sample on German credit, where
    # 12 of the 13 text columns are ordered, both beat either alone (issue 23, fixed parameters: +0.0043
    # mean AUC over 10 outer folds against categorical alone, ahead on 8; ranks alone +0.0030).
    ordinal: dict[str, list[str]] = field(default_factory=dict)
    _single: SingleRowPredictor | None = field(default=None, repr=False, compare=False)
    _compiled: Any = field(default=None, repr=False, compare=False)  # lleaves model, False: tried, unavailable

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def matrix(self, prepared: Prepared) -> np.ndarray:
        out = np.empty((prepared.n, self.width), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            out[:, j] = prepared.numeric[name]
        for j, (name, cats) in enumerate(self.categorical.items(), start=len(self.numeric)):
            codes = prepared.categorical[name].lookup({c: i for i, c in enumerate(cats)}, -1, -1)
            out[:, j] = np.where(codes < 0, np.nan, codes)  # unseen category = missing
        for j, (name, order) in enumerate(self.ordinal.items(), start=len(self.numeric) + len(self.categorical)):
            ranks = prepared.categorical[name].lookup({c: i for i, c in enumerate(order)}, -1, -1)
            out[:, j] = np.where(ranks < 0, np.nan, ranks)  # a value outside the declared order = missing
        return out

    @property
    def width(self) -> int:
        """Columns of the matrix: numeric, categorical codes, ordinal ranks."""
        return len(self.numeric) + len(self.categorical) + len(self.ordinal)

    def margin(self, prepared: Prepared, compile_large: bool = True) -> np.ndarray:
        """Raw scores. `compile_large=False`: no compiled forest even for a large batch — for one-off
        scoring such as training's own evaluation, where compiling the new model (tens of seconds
        for a large forest, measured on 150,000 rows) costs more than it saves."""
        x = self.matrix(prepared)
        if prepared.n == 1:  # an online request
            if self._single is None:
                self._single = SingleRowPredictor(self.booster, x.shape[1])
            return np.array([self._single(x[0])])
        if prepared.n >= COMPILED_FROM and compile_large:
            if self._compiled is None:
                self._compiled = compiled_forest(self.booster) or False
            if self._compiled:
                return self._compiled.predict(x, n_jobs=2)  # two threads, each its half (ctypes releases the GIL)
        if prepared.n < PARALLEL_FROM:
            return self.booster.predict(x, raw_score=True, num_threads=1)
        # Two halves on two Python threads, each LightGBM call single-threaded (ctypes releases the
        # GIL): both cores without OpenMP, whose spin-waiting threads lose badly to other processes
        # on a shared 2-core machine (measured: 2 OpenMP threads 2-3× slower than this under load).
        halves = np.array_split(np.arange(prepared.n), 2)
        with ThreadPoolExecutor(2) as pool:
            parts = list(pool.map(lambda rows: self.booster.predict(x[rows[0]:rows[-1] + 1], raw_score=True,
                                                                    num_threads=1), halves))
        return np.concatenate(parts)

    def pd(self, prepared: Prepared, compile_large: bool = True) -> np.ndarray:
        a, b = self.platt
        return sigmoid(a * self.margin(prepared, compile_large) + b)

    def to_json(self) -> dict[str, Any]:
        # categoricals as [name, categories] pairs: their order is the matrix's column order, which a
        # JSON object written with sorted keys would not keep
        return {"numeric": self.numeric, "categorical": [[k, v] for k, v in self.categorical.items()], "platt": list(self.platt),
                "monotone": self.monotone, "ordinal": [[k, v] for k, v in self.ordinal.items()],
                "best_iteration": self.booster.current_iteration()}

    @classmethod
    def load(cls, meta: Mapping[str, Any], model_text: str) -> Challenger:
        import lightgbm as lgb  # lazy: LightGBM loads only when this runs

        return cls(lgb.Booster(model_str=model_text), list(meta["numeric"]), {k: list(v) for k, v in meta["categorical"]},
                   (float(meta["platt"][0]), float(meta["platt"][1])), dict(meta["monotone"]),
                   {k: list(v) for k, v in meta.get("ordinal", [])})  # models from before issue 23 have none


def fit_challenger(train: Prepared, y: np.ndarray, numeric: Sequence[str], categorical: Sequence[str],
                   monotone: Mapping[str, int], seed: int = 7, max_rounds: int = 500,
                   ordinal: Mapping[str, Sequence[str]] | None = None) -> Challenger:
    """Fit on the training rows; early stopping and Platt calibration on rows the trees did not see.

    Small samples (< 20,000 rows): 5-fold cross-validation picks the number of rounds and gives
    out-of-fold margins for the calibration, then one model is fitted on all rows — a single 20 %
    hold-out of a few hundred rows is too noisy to stop on. Larger samples: 80/20 hold-out."""
    import lightgbm as lgb  # lazy: LightGBM loads only when this runs
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn loads only when this runs
    from sklearn.model_selection import (  # lazy: scikit-learn loads only when this runs
        StratifiedKFold,
        train_test_split,
    )

    cats = {name: sorted(set(train.categorical[name].uniques)) for name in categorical}
    model = Challenger(None, list(numeric), cats, (1.0, 0.0), {n: int(monotone.get(n, 0)) for n in numeric},
                       {k: list(v) for k, v in (ordinal or {}).items()})
    x = model.matrix(train)
    params = dict(PARAMS)
    small = len(y) < SMALL_SAMPLE
    # Smaller steps on small samples; larger ones keep big models (and their prediction time) in check.
    params["learning_rate"] = 0.05 if small else 0.1
    params["min_data_in_leaf"] = int(max(20, min(200, len(y) // 200)))
    params["monotone_constraints"] = [model.monotone[n] for n in numeric] + [0] * (model.width - len(numeric))
    cat_idx = list(range(len(numeric), len(numeric) + len(cats)))
    stop = lgb.early_stopping(50, verbose=False)
    if small:
        folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y))
        data = lgb.Dataset(x, y, categorical_feature=cat_idx, free_raw_data=False)
        cv = lgb.cv(params, data, num_boost_round=max_rounds, folds=folds, callbacks=[stop], return_cvbooster=True)
        rounds = len(next(iter(v for k, v in cv.items() if k.endswith("-mean"))))
        margin = np.empty(len(y))
        for (_, held), booster in zip(folds, cv["cvbooster"].boosters, strict=True):
            margin[held] = booster.predict(x[held], raw_score=True, num_iteration=rounds)
        y_cal = y
        model.booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=cat_idx), num_boost_round=rounds)
    else:
        fit, cal = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
        dfit = lgb.Dataset(x[fit], y[fit], categorical_feature=cat_idx)
        dcal = lgb.Dataset(x[cal], y[cal], categorical_feature=cat_idx, reference=dfit)
        booster = lgb.train(params, dfit, num_boost_round=max_rounds, valid_sets=[dcal], callbacks=[stop])
        if booster.best_iteration > 0:
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        model.booster = booster
        margin, y_cal = booster.predict(x[cal], raw_score=True), y[cal]
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), y_cal)
    model.platt = (float(lr.coef_[0, 0]), float(lr.intercept_[0]))
    return model
