"""The demo's rating step: train the enterprise three-dimension model on the simulator's history and
rate every enterprise today, for the lender its chain works with, within that lender's consent.

Training rows are point-in-time feature snapshots at several past dates, each labelled with the
simulator's ground truth (a default within the following `HORIZON_DAYS`), so no snapshot sees its
own outcome. The features are unscoped for training (the simulated enterprises are nobody's data;
see `training_set`); today's ratings use `compute_features` for each lender, so what a lender was
not granted is NULL (the model treats it as missing) and every read is in the access log.

Each rating is stored (`credit_ratings`, with the consent reads it drew on) for the credit-profile
view of the API and console. What `assess` returns is the credit decision's input
(`iotfin.decision.assessment.RiskAssessment`), filled from the enterprise's own features: days with
device data, IoT-verified collateral, annualised verified sales, and the revenue its electricity use
supports at its sector's sales per kWh in the history (`iotfin.app.assessment.to_assessment`, which the
online assessor of the decision API shares; the sales-per-kWh table is saved beside the model).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from iotfin.app.assessment import to_assessment
from iotfin.decision.assessment import RiskAssessment
from iotfin.risk import load_model, rate, train_enterprise_model
from iotfin.risk.assess import consent_ok, save_revenue_per_kwh
from iotfin.risk.features.catalogue import CATALOGUE
from iotfin.risk.features.engine import compute_features, training_set

HORIZON_DAYS = 90
MIN_PRESENT = 0.1  # share of training rows a feature must be present in to be used
MIN_BADS = 5  # fewer defaults in the history than this: no model is trained (too little to learn from)
SNAPSHOT_EVERY_DAYS = 7
FIRST_SNAPSHOT_DAY = 45  # the first 45 days give the 30-day features a full window


def _plan(start: date, end: date) -> tuple[list[date], int]:
    """As-of dates whose whole outcome horizon lies inside the simulated calendar, and the horizon:
    90 days, or a third of a shorter calendar (the tests' small economies)."""
    span = (end - start).days
    horizon = min(HORIZON_DAYS, max(7, span // 3))
    day = start + timedelta(days=min(FIRST_SNAPSHOT_DAY, max(1, span // 3)))
    out = []
    while day <= end - timedelta(days=horizon):
        out.append(day)
        day += timedelta(days=SNAPSHOT_EVERY_DAYS)
    return out, horizon


def _revenue_per_kwh(history: Any) -> dict[str, float]:
    """Yuan of sales per kWh by sector ("" = all sectors), the median over the training snapshots
    that have both sales and electricity: what an enterprise's electricity use supports in revenue
    when it has no verified trade of its own (the decision's `capacity_revenue_12m`)."""
    import pandas as pd  # lazy: pandas loads only when this runs

    sales = pd.to_numeric(history["t_sales_90d"], errors="coerce").astype(float) / 90
    kwh = pd.to_numeric(history["a_energy_kwh_30d"], errors="coerce").astype(float) / 30
    ok = (sales > 0) & (kwh > 0)
    ratio = (sales[ok] / kwh[ok])
    out = {"": float(ratio.median())} if ok.any() else {}
    if "e_sector" in history:
        out |= {str(k): float(v) for k, v in ratio.groupby(history["e_sector"][ok]).median().items()}
    return out


def rate_enterprises(ws: Any, ds: Any, start: date, end: date, model_dir: Path,
                     lender_of: Mapping[int, str]) -> tuple[dict[str, Any], Callable[[int], RiskAssessment] | None]:
    """Train on the history, rate every enterprise in `lender_of` as of `end` for its lender.
    Returns the step's summary and `assess(enterprise_id)` for the decision service (None when the
    history holds too few defaults to train on)."""

    dates, horizon = _plan(start, end)
    history = training_set(ws.features, ds, dates, horizon) if dates else None
    bads = 0 if history is None else int(pc.sum(history["default"]).as_py() or 0)
    if bads < MIN_BADS:
        return {"trained": False, "reason": f"{bads} defaults in the simulated history (at least {MIN_BADS} needed): "
                "run a longer or larger economy", "snapshots": [d.isoformat() for d in dates]}, None
    dimensions = {f.name: f.dimension for f in CATALOGUE}
    labels = {f.name: {"zh": f.zh, "en": f.en} for f in CATALOGUE}
    # a feature almost nobody in the history has (livestock in a small economy, say) has too little
    # to bin: optbinning's pre-binning fails on a training split with no value at all
    empty = [f.name for f in CATALOGUE if history.num_rows - history[f.name].null_count < MIN_PRESENT * history.num_rows]
    frame = history.drop_columns(["enterprise_id", *empty]).to_pandas()
    dimensions = {k: v for k, v in dimensions.items() if k not in empty}
    trained = train_enterprise_model(frame, "default", dimensions, model_dir, labels=labels,
                                     date_col="as_of", workspace=ws)
    model = load_model(trained["path"])
    # training never makes a model champion: the demo promotes it explicitly (ledger-anchored), so the
    # decision API rates with it rather than with the bootstrap scorecard
    if model_dir == ws.enterprise_model_dir:
        trained["promotion"] = ws.promote_model(Path(trained["path"]).name, by="demo",
                                                note="the demo's model, trained on the simulated history")

    revenue_per_kwh = _revenue_per_kwh(history.select(["e_sector", "t_sales_90d", "a_energy_kwh_30d"]).to_pandas())
    save_revenue_per_kwh(model_dir, revenue_per_kwh)  # the online assessor reads it beside the model
    by_lender: dict[str, list[int]] = {}
    for eid, lender in lender_of.items():
        by_lender.setdefault(lender, []).append(eid)
    as_of = datetime.combine(end, time(23, 59, 59), tzinfo=UTC)
    profiles: dict[int, dict[str, Any]] = {}
    withheld = stored = 0
    for lender, ids in sorted(by_lender.items()):
        table: pa.Table = compute_features(ws.features, end, lender, ids)
        if table.num_rows == 0:
            continue
        held_names = [list(w or ()) for w in table["withheld"].to_pylist()]
        withheld += sum(len(w) for w in held_names)
        features = table.drop_columns(["withheld"]).to_pandas()
        scored = rate(model, features, keep=["enterprise_id"])
        stored += ws.ratings.record_ratings(model, lender, end, scored,
                                            dict(zip(table["enterprise_id"].to_pylist(), held_names, strict=True)))
        for row, feats, names in zip(scored.to_dict("records"), features.to_dict("records"), held_names, strict=True):
            profiles[int(row["enterprise_id"])] = {"score": row, "features": feats, "lender": lender,
                                                   "consent_ok": consent_ok(names)}

    def assess(enterprise_id: int) -> RiskAssessment:
        p = profiles[enterprise_id]
        return to_assessment(enterprise_id, p["score"], p["features"], p["consent_ok"], as_of, revenue_per_kwh,
                             model=model.model_id)

    grades = Counter(str(p["score"]["grade"]) for p in profiles.values())
    example_id = min(profiles) if profiles else None
    summary = {
        "trained": True,
        "training": {"snapshots": [d.isoformat() for d in dates], "rows": history.num_rows,
                     "bads": bads, "horizon_days": horizon,
                     "model": {k: trained.get(k) for k in ("model", "champion", "selected", "evaluation", "anchor", "seconds")}},
        "rated": len(profiles), "ratings_stored": stored, "grades": dict(sorted(grades.items())),
        "features_withheld": withheld,
        "example": None if example_id is None else {
            "enterprise_id": example_id, "lender": profiles[example_id]["lender"],
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in profiles[example_id]["score"].items()
               if k in ("pd", "score", "grade") or k.endswith(("_grade", "_score")) or k.startswith("reason_")}},
    }
    return summary, assess
