"""Discrimination and calibration measures (thin wrappers over scikit-learn). Pure: no I/O."""

from __future__ import annotations

import numpy as np


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # lazy: scikit-learn loads only when this runs

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def ks(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the bads' and goods' cumulative distributions."""
    from sklearn.metrics import roc_curve  # lazy: scikit-learn loads only when this runs

    if not 0 < y.sum() < len(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"rows": int(len(y)), "bad_rate": float(y.mean()) if len(y) else float("nan"), "auc": auc(y, p),
            "ks": ks(y, p), "brier": brier(y, p), "mean_pd": float(p.mean()) if len(p) else float("nan")}


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index between two distributions over the same bins (shares or counts)."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e = np.maximum(e / max(e.sum(), 1e-300), eps)
    a = np.maximum(a / max(a.sum(), 1e-300), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def approvable_share(pd_: np.ndarray, max_bad_rate: float, y: np.ndarray | None = None) -> float:
    """The largest share of applicants a lender can approve, best PD first, while the bad rate of
    those approved stays at or below `max_bad_rate`: the expected bad rate (mean PD) by default, the
    realised one when outcomes `y` are given. Compares models "at the same bad rate" (issue 5)."""
    order = np.argsort(np.asarray(pd_, dtype=float), kind="stable")
    bads = (np.asarray(y, dtype=float) if y is not None else np.asarray(pd_, dtype=float))[order]
    rate = np.cumsum(bads) / np.arange(1, len(bads) + 1)
    ok = np.flatnonzero(rate <= max_bad_rate)
    return float((ok[-1] + 1) / len(bads)) if len(ok) else 0.0
