"""Peers for the model-quality comparisons (issue 23), written the way a data scientist would with
the libraries alone, independent of iotfin's own search code: LightGBM with its defaults, and
LightGBM tuned by Optuna (TPE, same time budget) on 5-fold CV with early stopping."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


def lgb_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas categories (LightGBM's native categorical handling)."""
    out = frame.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype("category")
    return out


def untuned(x: pd.DataFrame, y: np.ndarray, x_test: pd.DataFrame, seed: int = 7) -> np.ndarray:
    import lightgbm as lgb

    return lgb.LGBMClassifier(verbose=-1, n_jobs=1, random_state=seed).fit(x, y).predict_proba(x_test)[:, 1]


def tuned(x: pd.DataFrame, y: np.ndarray, x_test: pd.DataFrame, budget_s: float, seed: int = 7,
          folds: list[tuple[np.ndarray, np.ndarray]] | None = None, n_trials: int | None = None) -> np.ndarray:
    """`folds`: the inner CV folds (e.g. the very folds iotfin's search uses, so that both are judged
    on the same rows); default LightGBM's own stratified 5-fold split. `n_trials`: that many trials
    instead of `budget_s` seconds."""
    import lightgbm as lgb
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = lgb.Dataset(x, y, free_raw_data=False, params={"feature_pre_filter": False, "verbosity": -1})
    rounds: dict[int, int] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {"objective": "binary", "metric": "auc", "verbosity": -1, "num_threads": 1, "seed": seed,
                  "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
                  "num_leaves": trial.suggest_int("num_leaves", 3, 63, log=True),
                  "max_depth": trial.suggest_int("max_depth", 2, 8),
                  "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, max(10, min(400, len(y) // 10)), log=True),
                  "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
                  "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0), "bagging_freq": 1,
                  "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 50.0, log=True),
                  "lambda_l1": trial.suggest_float("lambda_l1", 1e-3, 10.0, log=True),
                  "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 100.0, log=True)}
        cv = lgb.cv(params, data, num_boost_round=1000, nfold=5, stratified=True, seed=seed, folds=folds,
                    callbacks=[lgb.early_stopping(50, verbose=False)])
        rounds[trial.number] = len(cv["valid auc-mean"])
        trial.set_user_attr("params", params)
        return float(cv["valid auc-mean"][-1])

    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=None if n_trials else budget_s, n_trials=n_trials)
    best = study.best_trial
    booster = lgb.train(best.user_attrs["params"], lgb.Dataset(x, y), num_boost_round=rounds[best.number])
    tuned.last = {"trials": len(study.trials), "seconds": round(time.perf_counter() - started, 2)}  # type: ignore[attr-defined]
    return booster.predict(x_test)
