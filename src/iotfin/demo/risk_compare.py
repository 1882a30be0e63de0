"""The simulator comparison of issue 5: the three-dimension model against an entity-only model,
trained on the histories of some simulator seeds and tested on the histories of OTHER seeds.

For every seed, a fresh economy is generated, loaded into its own workspace, and turned into
point-in-time training rows exactly as the demo does (`demo_step._plan`: weekly as-of dates, each
labelled with a default in the following horizon, unscoped features). Both models are trained with
the same toolkit (`train_enterprise_model`: WoE scorecards per dimension + a LightGBM challenger)
on the training seeds' rows; the entity-only model sees only the entity (主体) features — what a bank
has without IoT and trade data. On the test seeds' rows (enterprise × as-of date, i.e. credit
applications at those dates) it reports AUC, KS and the share approvable at the same bad rate:
best PD first, the largest share whose expected bad rate (mean PD) — and, separately, whose
realised bad rate — stays within the limit.

What it measures is a property of the simulator: how much of the default process the simulator
makes visible in its IoT and trade data. It is not evidence about real enterprises (docs/risk.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotfin.app.workspace import Workspace
from iotfin.core.errors import ValidationError
from iotfin.core.settings import Settings
from iotfin.demo.loader import load_master_data, load_telemetry
from iotfin.demo.risk import _plan
from iotfin.risk import load_model, metrics, rate
from iotfin.risk.features.catalogue import CATALOGUE
from iotfin.risk.features.engine import training_set
from iotfin.risk.models.train import TrainConfig, train_enterprise_model
from iotfin.sim import SimConfig, SimDataset, generate

MIN_PRESENT = 0.1  # as in the demo: a feature present in under 10 % of the training rows is left out
MODELS = {"three_dimension": ("entity", "asset", "transaction"), "entity_only": ("entity",)}


@contextmanager
def seeded_workspace(seed: int, root: Path, *, enterprises: int, days: int, devices: int | None, start: date,
                     shocks: bool = False) -> Iterator[tuple[Workspace, SimDataset, pd.DataFrame, list[date]]]:
    """One seed's economy simulated and loaded into a workspace of its own, with its training rows
    (features at weekly as-of dates and the default label) and those dates; closed afterwards."""
    base = root / f"seed-{seed}"
    generate(SimConfig(enterprises=enterprises, days=days, seed=seed, start_date=start, devices=devices, shocks=shocks),
             base / "sim", workers=1)
    ds = SimDataset(base / "sim")
    ws = Workspace(Settings(data_dir=base, database_url=f"sqlite:///{base / 'iotfin.db'}", telemetry_dir=base / "telemetry"))
    try:
        ws.initialise()
        load_master_data(ws, ds)
        load_telemetry(ws, ds)
        dates, horizon = _plan(start, start + timedelta(days=days - 1))
        if not dates:
            raise ValidationError(f"{days} simulated days leave no as-of date with a whole outcome horizon")
        yield ws, ds, training_set(ws.features, ds, dates, horizon).to_pandas(), dates
    finally:
        ws.close()


def seed_history(seed: int, root: Path, *, enterprises: int, days: int, devices: int, start: date) -> pd.DataFrame:
    """One seed's economy as training rows: features at weekly as-of dates and the default label."""
    with seeded_workspace(seed, root, enterprises=enterprises, days=days, devices=devices, start=start) as (_, _, frame, _):
        pass
    frame.insert(0, "seed", seed)
    return frame


def _labels() -> dict[str, dict[str, str]]:
    return {f.name: {"zh": f.zh, "en": f.en} for f in CATALOGUE}


def _dimensions(train: pd.DataFrame, dims: Sequence[str]) -> dict[str, str]:
    present = train.notna().mean()
    return {f.name: f.dimension for f in CATALOGUE if f.dimension in dims and present.get(f.name, 0.0) >= MIN_PRESENT}


def _evaluate(y: np.ndarray, scored: pd.DataFrame, max_bad_rate: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("pd", "pd_scorecard", "pd_challenger"):
        if name not in scored:
            continue
        p = scored[name].to_numpy(dtype=float)
        out["champion" if name == "pd" else name.removeprefix("pd_")] = {
            "auc": round(metrics.auc(y, p), 4), "ks": round(metrics.ks(y, p), 4), "mean_pd": round(float(p.mean()), 4),
            "approvable_share_expected": round(metrics.approvable_share(p, max_bad_rate), 4),
            "approvable_share_realised": round(metrics.approvable_share(p, max_bad_rate, y), 4)}
    return out


def compare(train_seeds: Sequence[int], test_seeds: Sequence[int], workdir: Path | str, *, enterprises: int = 200,
            days: int = 240, devices: int | None = None, start: date = date(2026, 1, 1),
            max_bad_rate: float | None = None) -> dict[str, Any]:
    """Train both models on `train_seeds`' histories, test them on `test_seeds`'; one JSON-able dict."""

    train_seeds, test_seeds = [int(s) for s in train_seeds], [int(s) for s in test_seeds]
    if not train_seeds or not test_seeds:
        raise ValidationError("give at least one training seed and one test seed")
    if set(train_seeds) & set(test_seeds):
        raise ValidationError(f"seeds {sorted(set(train_seeds) & set(test_seeds))} are both training and test seeds: "
                              "the test must be on other economies")
    if max_bad_rate is not None and not 0 < max_bad_rate < 1:
        raise ValidationError("--max-bad-rate must lie strictly between 0 and 1")
    started, cpu = time.perf_counter(), time.process_time()
    root = Path(workdir)
    devices = devices or 2 * enterprises
    histories = {s: seed_history(s, root, enterprises=enterprises, days=days, devices=devices, start=start)
                 for s in dict.fromkeys([*train_seeds, *test_seeds])}
    simulated_s = time.perf_counter() - started
    train = pd.concat([histories[s] for s in train_seeds], ignore_index=True)
    test = pd.concat([histories[s] for s in test_seeds], ignore_index=True)
    y_test = test["default"].to_numpy(dtype=int)
    if not 0 < y_test.sum() < len(y_test):
        raise ValidationError(f"the test seeds' histories hold {int(y_test.sum())} defaults: nothing to discriminate; "
                              "use more or larger test economies")
    limit = float(max_bad_rate) if max_bad_rate is not None else round(float(y_test.mean()) / 2, 6)
    result: dict[str, Any] = {
        "economy": {"enterprises": enterprises, "days": days, "devices": devices, "start": start.isoformat()},
        "train": {"seeds": train_seeds, "rows": int(len(train)), "bads": int(train["default"].sum())},
        "test": {"seeds": test_seeds, "rows": int(len(test)), "bads": int(y_test.sum()), "bad_rate": round(float(y_test.mean()), 4)},
        "max_bad_rate": limit, "models": {}}
    for name, dims in MODELS.items():
        mapping = _dimensions(train, dims)
        frame = train[[*mapping, "as_of", "default"]]
        summary = train_enterprise_model(frame, "default", mapping, root / "models" / name, labels=_labels(),
                                         date_col="as_of", config=TrainConfig(report=False))
        model = load_model(summary["path"])
        scored = rate(model, test[[*mapping]])
        result["models"][name] = {"model": summary["model"], "features": len(summary["selected"]),
                                  "champion": summary["champion"], "test": _evaluate(y_test, scored, limit)}
    a, b = (result["models"][m]["test"]["champion"] for m in MODELS)
    result["difference"] = {k: round(a[k] - b[k], 4) for k in ("auc", "ks", "approvable_share_expected", "approvable_share_realised")}
    result["seconds"] = {"simulate_and_features": round(simulated_s, 1), "total": round(time.perf_counter() - started, 1),
                         "cpu": round(time.process_time() - cpu, 1)}
    result["note"] = ("a property of the simulator, not evidence about real enterprises / "
                      "此结果仅反映模拟器的性质，不构成对真实企业的证据")
    return result
