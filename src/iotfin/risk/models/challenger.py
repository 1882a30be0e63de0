"""The gradient-boosting challenger: LightGBM with monotone constraints taken from the scorecard's
binning, and Platt calibration of its margin on data it was not fitted on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(slots=True)
class Challenger:
    booster: Any  # lightgbm.Booster
    numeric: list[str]
    categorical: dict[str, list[str]]  # feature -> categories in code order
    platt: tuple[float, float]  # pd = sigmoid(a × margin + b)
    monotone: dict[str, int]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def matrix(self, prepared: Prepared) -> np.ndarray:
        out = np.empty((prepared.n, len(self.numeric) + len(self.categorical)), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            out[:, j] = prepared.numeric[name]
        for j, (name, cats) in enumerate(self.categorical.items(), start=len(self.numeric)):
            codes = prepared.categorical[name].lookup({c: i for i, c in enumerate(cats)}, -1, -1)
            out[:, j] = np.where(codes < 0, np.nan, codes)  # unseen category = missing
        return out

    def margin(self, prepared: Prepared) -> np.ndarray:
        return self.booster.predict(self.matrix(prepared), raw_score=True, num_threads=PARAMS["num_threads"])

    def pd(self, prepared: Prepared) -> np.ndarray:
        a, b = self.platt
        return sigmoid(a * self.margin(prepared) + b)

    def to_json(self) -> dict[str, Any]:
        # categoricals as [name, categories] pairs: their order is the matrix's column order, which a
        # JSON object written with sorted keys would not keep
        return {"numeric": self.numeric, "categorical": [[k, v] for k, v in self.categorical.items()], "platt": list(self.platt),
                "monotone": self.monotone, "best_iteration": self.booster.current_iteration()}

    @classmethod
    def load(cls, meta: Mapping[str, Any], model_text: str) -> Challenger:
        import lightgbm as lgb

        return cls(lgb.Booster(model_str=model_text), list(meta["numeric"]), {k: list(v) for k, v in meta["categorical"]},
                   (float(meta["platt"][0]), float(meta["platt"][1])), dict(meta["monotone"]))


def fit_challenger(train: Prepared, y_train: np.ndarray, valid: Prepared, y_valid: np.ndarray,
                   numeric: Sequence[str], categorical: Sequence[str], monotone: Mapping[str, int],
                   rounds: int = 1000) -> Challenger:
    """Fit on `train` with early stopping on `valid`, then calibrate the margin on `valid` (Platt)."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    cats = {name: sorted({u for u in train.categorical[name].uniques}) for name in categorical}
    model = Challenger(None, list(numeric), cats, (1.0, 0.0), {n: int(monotone.get(n, 0)) for n in numeric})
    x_train, x_valid = model.matrix(train), model.matrix(valid)
    params = dict(PARAMS)
    params["min_data_in_leaf"] = int(max(20, min(200, len(y_train) // 200)))
    params["monotone_constraints"] = [model.monotone[n] for n in numeric] + [0] * len(cats)
    cat_idx = list(range(len(numeric), len(numeric) + len(cats)))
    dtrain = lgb.Dataset(x_train, y_train, categorical_feature=cat_idx, free_raw_data=True)
    dvalid = lgb.Dataset(x_valid, y_valid, categorical_feature=cat_idx, reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(50, verbose=False)])
    booster = booster if booster.best_iteration <= 0 else lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    model.booster = booster
    margin = booster.predict(x_valid, raw_score=True)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), y_valid)
    model.platt = (float(lr.coef_[0, 0]), float(lr.intercept_[0]))
    return model
