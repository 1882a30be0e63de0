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


def hosmer_lemeshow(y: np.ndarray, p: np.ndarray, groups: int = 10) -> tuple[float, float]:
    """Hosmer–Lemeshow statistic over PD deciles and its p-value (chi-square, groups − 2 degrees of
    freedom). Hand-written: neither scikit-learn nor statsmodels (not a dependency) offers it."""
    from scipy.stats import chi2  # lazy: SciPy loads only when this runs

    order = np.argsort(p, kind="stable")
    stat = 0.0
    used = 0
    for part in np.array_split(order, groups):
        if len(part) == 0:
            continue
        n, obs, exp = len(part), float(y[part].sum()), float(p[part].sum())
        mean = exp / n
        if 0 < mean < 1:
            stat += (obs - exp) ** 2 / (n * mean * (1 - mean))
            used += 1
    return float(stat), float(chi2.sf(stat, max(used - 2, 1)))


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, object]:
    """Brier score, Hosmer–Lemeshow test and the calibration curve (mean PD vs bad rate per PD decile)."""
    order = np.argsort(p, kind="stable")
    curve = [{"mean_pd": float(p[part].mean()), "bad_rate": float(y[part].mean()), "rows": int(len(part))}
             for part in np.array_split(order, bins) if len(part)]
    stat, pval = hosmer_lemeshow(y, p, bins)
    return {"brier": brier(y, p), "hosmer_lemeshow": stat, "hosmer_lemeshow_p": pval, "curve": curve}


def delong(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong standard error (DeLong, DeLong & Clarke-Pearson 1988), via the midranks of
    Sun & Xu (2014). Hand-written: scikit-learn gives the AUC but no interval (about 20 lines)."""
    from scipy.stats import rankdata  # lazy: SciPy loads only when this runs

    pos, neg = p[y == 1], p[y == 0]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return float("nan"), float("nan")
    both = np.concatenate([pos, neg])
    r_all = rankdata(both)
    r_pos, r_neg = rankdata(pos), rankdata(neg)
    auc_ = (r_all[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (r_all[:m] - r_pos) / n  # structural components of the bads
    v01 = 1 - (r_all[m:] - r_neg) / m  # and of the goods
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n
    return float(auc_), float(np.sqrt(var))


def intervals(y: np.ndarray, p: np.ndarray, level: float = 0.95, boots: int = 200, seed: int = 7) -> dict[str, float]:
    """AUC and Gini with DeLong intervals; KS with a percentile bootstrap interval (seeded)."""
    from scipy.stats import norm  # lazy: SciPy loads only when this runs

    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    a, se = delong(y, p)
    z = float(norm.ppf(0.5 + level / 2))
    lo, hi = max(a - z * se, 0.0), min(a + z * se, 1.0)
    rng = np.random.default_rng(seed)
    ks_boot = []
    for _ in range(boots):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            ks_boot.append(ks(y[i], p[i]))
    q = (1 - level) / 2
    return {"auc": a, "auc_lo": lo, "auc_hi": hi, "gini": 2 * a - 1, "gini_lo": 2 * lo - 1, "gini_hi": 2 * hi - 1,
            "ks": ks(y, p), "ks_lo": float(np.quantile(ks_boot, q)) if ks_boot else float("nan"),
            "ks_hi": float(np.quantile(ks_boot, 1 - q)) if ks_boot else float("nan"), "level": level}
