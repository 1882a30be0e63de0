"""Monitoring a model in use: population stability (PSI) of the score and of every scorecard feature
against the training sample, and the realised bad rate by grade once outcomes are known. Drift over a
threshold raises an alert, returned and appended to the model's alert log (DIR/monitoring/alerts.jsonl)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotfin.core.errors import ValidationError
from iotfin.risk import data as rdata
from iotfin.risk.grades import GRADE_NAMES, band, grade_index
from iotfin.risk.metrics import psi
from iotfin.risk.models.bundle import RiskModel
from iotfin.risk.prepare import prepare, require_columns
from iotfin.risk.scoring import _tables, score_columns

PSI_WATCH = 0.10  # industry convention: < 0.10 stable, 0.10-0.25 watch, > 0.25 shifted
PSI_ALERT = 0.25
MIN_GRADE_ROWS = 30  # realised bad rates on fewer rows say little
BAD_RATE_P = 0.01  # one-sided binomial test: realised bad rate above the grade's band


@dataclass(frozen=True, slots=True)
class Alert:
    model: str
    kind: str  # "psi_score" | "psi_feature" | "bad_rate"
    subject: str
    value: float
    threshold: float
    severity: str  # "watch" | "alert"
    en: str
    zh: str
    at: str


def _severity(value: float) -> str | None:
    return "alert" if value > PSI_ALERT else "watch" if value > PSI_WATCH else None


def monitor(model: RiskModel, frame: pd.DataFrame, outcome: str | None = None, bad: str | None = None,
            persist: bool = True) -> dict[str, Any]:
    """Compare a scored population (and, with `outcome`, what happened to it) with the training sample."""
    numeric, categorical = model.inputs
    require_columns(list(map(str, frame.columns)), [*numeric, *categorical])
    now = datetime.now(UTC).isoformat(timespec="seconds")
    columns = {n: frame[n] for n in (*numeric, *categorical)}
    scored = score_columns(model, columns, top=0)
    base = model.baseline
    alerts: list[Alert] = []

    edges = np.asarray(base["score_edges"])
    counts = np.bincount(np.searchsorted(edges, scored["score"], side="right"), minlength=len(edges) + 1)
    score_psi = psi(base["score_counts"], counts)
    sev = _severity(score_psi)
    if sev:
        alerts.append(Alert(model.model_id, "psi_score", "score", score_psi, PSI_WATCH if sev == "watch" else PSI_ALERT, sev,
                            f"score distribution shifted: PSI {score_psi:.3f}", f"评分分布偏移：PSI {score_psi:.3f}", now))

    linear = _tables(model)["linear"]
    idx = linear.indices(prepare(columns, numeric, categorical))
    feature_psi = {}
    for j, f in enumerate(linear.features):
        value = psi(base["features"][f.name], np.bincount(idx[:, j], minlength=f.n_bins + 2))
        feature_psi[f.name] = value
        sev = _severity(value)
        if sev:
            label = model.label(f.name)
            alerts.append(Alert(model.model_id, "psi_feature", f.name, value, PSI_WATCH if sev == "watch" else PSI_ALERT, sev,
                                f"{label['en']}: distribution shifted, PSI {value:.3f}",
                                f"{label['zh']}：分布偏移，PSI {value:.3f}", now))

    grades = grade_index(scored["pd"])
    by_grade = []
    if outcome is not None:
        from scipy.stats import binomtest  # lazy: SciPy loads only when this runs

        if outcome not in frame.columns:
            raise ValidationError(f"no outcome column {outcome!r}")
        known = frame[outcome].notna().to_numpy()
        y = np.zeros(len(frame), dtype=np.int8)
        if known.any():
            y[known] = rdata.binary_target(frame[outcome][known], bad)
        for g, name in enumerate(GRADE_NAMES):
            rows = known & (grades == g)
            n, bads = int(rows.sum()), int(y[rows].sum())
            if not n:
                continue
            upper = band(name)[1]
            entry = {"grade": name, "rows": n, "bads": bads, "bad_rate": bads / n,
                     "mean_pd": float(scored["pd"][rows].mean()), "pd_band_upper": upper}
            if n >= MIN_GRADE_ROWS and upper < 1.0:
                p = binomtest(bads, n, upper, alternative="greater").pvalue
                entry["p_value_above_band"] = float(p)
                if p < BAD_RATE_P:
                    alerts.append(Alert(model.model_id, "bad_rate", name, bads / n, upper, "alert",
                                        f"grade {name}: realised bad rate {bads / n:.2%} above its band (≤ {upper:.2%}), "
                                        f"{bads} of {n}",
                                        f"等级 {name}：实际不良率 {bads / n:.2%} 超出其区间上限 {upper:.2%}（{n} 户中 {bads} 户）", now))
            by_grade.append(entry)
    report = {"model": model.model_id, "at": now, "rows": int(len(frame)), "training_rows": base["rows"],
              "psi": {"score": score_psi, "features": feature_psi},
              "grade_mix": {"training": dict(zip(GRADE_NAMES, base["grade_counts"], strict=True)),
                            "current": dict(zip(GRADE_NAMES, np.bincount(grades, minlength=len(GRADE_NAMES)).tolist(), strict=True))},
              "bad_rate_by_grade": by_grade, "alerts": [asdict(a) for a in alerts],
              "thresholds": {"psi_watch": PSI_WATCH, "psi_alert": PSI_ALERT, "bad_rate_p": BAD_RATE_P}}
    if persist:
        _persist(model.path, report)
    return report


def _persist(vdir: Path, report: dict[str, Any]) -> None:
    folder = vdir / "monitoring"
    folder.mkdir(exist_ok=True)
    stamp = report["at"].replace(":", "").replace("-", "")
    (folder / f"report-{stamp}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    with open(folder / "alerts.jsonl", "a", encoding="utf-8") as fh:
        for alert in report["alerts"]:
            fh.write(json.dumps(alert, ensure_ascii=False) + "\n")


def alerts(model: RiskModel) -> Sequence[dict[str, Any]]:
    """Every alert raised for this model version so far, oldest first."""
    path = model.path / "monitoring" / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
