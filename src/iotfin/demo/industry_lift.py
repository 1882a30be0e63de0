"""Issue 24: does the enterprise model gain from relative-activity features? Trained on some simulator
seeds' histories, tested on OTHER seeds' (as `iotfin.demo.risk_compare`): the three-dimension model
against the same model plus the industry indices' relative-activity features (a firm's energy trend
and operating rate against its sector peers, point-in-time: only firm-days up to each as-of date,
and only where the peers reach the privacy threshold). Reports both AUCs and the lift.

A property of the simulator, not evidence about real enterprises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from iotfin.analytics.model import RELATIVE_FEATURES, day_number, relative_features
from iotfin.analytics.service import IndustryService
from iotfin.core.errors import ValidationError
from iotfin.demo.risk_compare import _dimensions, _evaluate, _labels, seeded_workspace
from iotfin.risk import load_model, rate
from iotfin.risk.models.train import TrainConfig, train_enterprise_model

DIMS = ("entity", "asset", "transaction")
MIN_HISTORY_DAYS = 150


def seed_history(seed: int, root: Path, *, enterprises: int, days: int, devices: int, start: date,
                 min_firms: int, shocks: bool) -> pd.DataFrame:
    """Training rows of one seed (the risk features at weekly as-of dates) with the relative-activity
    features of each row's as-of date joined on."""
    with seeded_workspace(seed, root, enterprises=enterprises, days=days, devices=devices, start=start,
                          shocks=shocks) as (ws, ds, frame, dates):
        industry = IndustryService(ws.engine, ws.telemetry, ws.data_dir)
        industry.update()
        firm_days = industry._firm_days(-10**7, 10**7)
        sectors = {int(e): str(s) for e, s in zip(ds.table("enterprises")["enterprise_id"].to_pylist(),
                                                   ds.table("enterprises")["sector"].to_pylist(), strict=True)}
        # as of a date: firm-days up to the day before (that day's telemetry is not complete yet)
        rel = relative_features(firm_days, sectors, [day_number(d) - 1 for d in dates], min_firms)
    rel["as_of"] = [date(1970, 1, 1) + timedelta(days=int(d) + 1) for d in rel["as_of_day"]]
    as_of = pd.to_datetime(frame["as_of"]).dt.date
    frame = frame.assign(_as_of=as_of).merge(rel.drop(columns=["as_of_day"]).rename(columns={"as_of": "_as_of"}),
                                             on=["enterprise_id", "_as_of"], how="left").drop(columns=["_as_of"])
    frame.insert(0, "seed", seed)
    return frame


def lift(train_seeds: Sequence[int], test_seeds: Sequence[int], workdir: Path | str, *, enterprises: int = 200,
         days: int = 240, devices: int | None = None, start: date = date(2026, 1, 1), min_firms: int = 5,
         shocks: bool = True) -> dict[str, Any]:
    """Both models trained on `train_seeds`, each scored on every test seed's rows: the AUCs pooled over
    the test seeds and per seed, and the lift (champion against champion, and like for like)."""
    if not train_seeds or not test_seeds:
        raise ValidationError("at least one training seed and one test seed")
    if set(train_seeds) & set(test_seeds):
        raise ValidationError("the test must be on other seeds than the training")
    if days < MIN_HISTORY_DAYS:
        raise ValidationError(f"{days} days: the relative-activity features need at least {MIN_HISTORY_DAYS} "
                              "simulated days (a 30-day window against the 60 before, and a whole outcome horizon)")
    started = time.perf_counter()
    root = Path(workdir)
    devices = devices or 2 * enterprises
    histories = {s: seed_history(s, root, enterprises=enterprises, days=days, devices=devices, start=start,
                                 min_firms=min_firms, shocks=shocks) for s in dict.fromkeys([*train_seeds, *test_seeds])}
    train = pd.concat([histories[s] for s in train_seeds], ignore_index=True)
    test = pd.concat([histories[s] for s in test_seeds], ignore_index=True)
    y = test["default"].to_numpy(dtype=int)
    if not 0 < y.sum() < len(y):
        raise ValidationError("the test seeds hold no defaults (or only defaults): use larger economies")
    limit = round(float(y.mean()) / 2, 6)
    labels = _labels() | {k: {"zh": zh, "en": en} for k, (zh, en) in RELATIVE_FEATURES.items()}
    result: dict[str, Any] = {"economy": {"enterprises": enterprises, "days": days, "devices": devices, "shocks": shocks},
                              "train": {"seeds": list(train_seeds), "rows": len(train), "bads": int(train["default"].sum())},
                              "test": {"seeds": list(test_seeds), "rows": len(test), "bads": int(y.sum())},
                              "relative_present": {k: round(float(train[k].notna().mean()), 3) for k in RELATIVE_FEATURES},
                              "models": {}}
    base_map = _dimensions(train, DIMS)
    for name, mapping in (("three_dimension", base_map),
                          ("with_relative_activity", base_map | {k: "asset" for k in RELATIVE_FEATURES})):
        summary = train_enterprise_model(train[[*mapping, "as_of", "default"]], "default", mapping,
                                         root / "models" / name, labels=labels, date_col="as_of",
                                         config=TrainConfig(report=False))
        scored = rate(load_model(summary["path"]), test[[*mapping]])
        per_seed = {}
        for seed in test_seeds:
            mine = (test["seed"] == seed).to_numpy()
            if 0 < y[mine].sum() < mine.sum():  # a seed without a default (or only defaults) has no AUC
                per_seed[str(seed)] = _evaluate(y[mine], scored[mine].reset_index(drop=True), limit)
        result["models"][name] = {"features": len(summary["selected"]), "champion": summary["champion"],
                                  "selected_relative": sorted(set(summary["selected"]) & set(RELATIVE_FEATURES)),
                                  "test": _evaluate(y, scored, limit), "test_per_seed": per_seed}
    with_rel, base = result["models"]["with_relative_activity"], result["models"]["three_dimension"]
    result["auc_lift"] = round(with_rel["test"]["champion"]["auc"] - base["test"]["champion"]["auc"], 4)  # champion against champion
    result["auc_lift_per_seed"] = {s: round(with_rel["test_per_seed"][s]["champion"]["auc"] - base["test_per_seed"][s]["champion"]["auc"], 4)
                                   for s in base["test_per_seed"]}
    result["auc_lift_like_for_like"] = {
        kind: round(result["models"]["with_relative_activity"]["test"][kind]["auc"]
                    - result["models"]["three_dimension"]["test"][kind]["auc"], 4)
        for kind in ("scorecard", "challenger")
        if kind in result["models"]["three_dimension"]["test"] and kind in result["models"]["with_relative_activity"]["test"]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["note"] = "a property of the simulator, not evidence about real enterprises / 此结果仅反映模拟器的性质"
    return result


def main() -> None:  # pragma: no cover - `python -m iotfin.demo.industry_lift WORKDIR`
    import json  # local: only the script entry prints
    import sys  # local: only the script entry reads argv

    print(json.dumps(lift([1, 2], [3, 4, 5], Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/industry-lift")),
                     indent=2, ensure_ascii=False, default=str))


if __name__ == "__main__":  # pragma: no cover
    main()
