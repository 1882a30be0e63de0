"""Reason codes: the factors that cost a row the most points, in zh-CN and en. Pure: no I/O.

The method is the usual adverse-action one for points scorecards: for every feature, the points the
row's bin gets against the best points any observed bin of that feature gets; the features with
the largest shortfall are the reasons, in that order. Features that cost nothing give no reason.
Reasons always come from the WoE model (the scorecard, or the enterprise three-dimension model):
its points are additive, so a reason's shortfall is exactly what it cost in the score. When the
LightGBM challenger is the champion its PD is reported, and the reasons still come from the
scorecard, which shares its monotone directions (docs/risk.md).

Texts are sentences (`iotfin.risk.wording`): "近30天设备数据完整率偏低（低于98.5%）", never a bin
label. Text is precomputed per (feature, bin), so a million rows need only array look-ups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iotfin.risk import wording
from iotfin.risk.woe import Scaling, WoeLinear

SMALL = 64  # up to this many rows (online requests), reason texts are plain strings, not Categoricals


@dataclass(frozen=True, slots=True)
class ReasonTable:
    points: np.ndarray  # (features, bins)
    best: np.ndarray  # (features,)
    # "code"/"en"/"zh" -> (distinct texts, (feature, bin) position -> text, the distinct texts as an array)
    texts: dict[str, tuple[pd.CategoricalDtype, np.ndarray, np.ndarray]]

    @classmethod
    def build(cls, linear: WoeLinear, scaling: Scaling, label: Callable[[str], Mapping[str, str]],
              dimension_of: Mapping[str, str] | None = None) -> ReasonTable:
        """Texts per (feature, bin): sentences naming the fact and the line (`iotfin.risk.wording`).
        A numeric bin is "low" when the feature's best-scoring observed bin lies above it, "high"
        when below. `dimension_of` is kept for callers; the sentence names the fact, not the dimension."""
        points = linear.points_table(scaling)
        width = points.shape[1] if points.ndim == 2 else 2
        shape = (len(linear.features), width)
        code, en, zh = (np.full(shape, "", dtype=object) for _ in range(3))
        for j, f in enumerate(linear.features):
            names = label(f.name)
            seen = [b for b in range(f.n_bins) if f.count[b] > 0] or list(range(f.n_bins))
            best = max(seen, key=lambda b: (points[j, b], -b)) if seen else 0
            edges = [-math.inf, *f.splits, math.inf]
            for b in range(len(f.labels)):
                if b == f.missing_bin:
                    v_zh, v_en = wording.missing(f.name, names)
                elif b == f.unknown_bin:
                    v_zh, v_en = wording.unknown(f.name, names)
                elif f.kind == "numeric":
                    v_zh, v_en = wording.numeric(f.name, edges[b], edges[b + 1], best > b, names)
                else:
                    v_zh, v_en = wording.categorical(f.name, f.groups[b], names)
                code[j, b] = f"{f.name}#{b}"
                en[j, b] = v_en
                zh[j, b] = v_zh
        texts = {}
        for name, table in (("code", code), ("en", en), ("zh", zh)):
            distinct, position = np.unique(table.ravel().astype(str), return_inverse=True)
            texts[name] = (pd.CategoricalDtype(pd.Index(distinct, dtype=object)), position.astype(np.int64),
                           np.asarray(distinct, dtype=object))
        return cls(points, linear.best_points(scaling), texts)

    def top(self, idx: np.ndarray, k: int) -> dict[str, Any]:
        """reason_1..k (code), reason_i_en, reason_i_zh, reason_i_points (points lost) per row.

        Text columns are pandas Categoricals over the (feature, bin) texts: a million rows share a
        few hundred strings instead of holding a million (empty where no reason is given)."""
        n, m = idx.shape
        width = self.points.shape[1]
        shortfall = np.maximum(self.best - WoeLinear.lookup(self.points, idx), 0.0)
        rows = np.arange(n)
        flat = (np.arange(m) * width)[None, :] + idx  # (feature, bin) position in the text tables
        out: dict[str, Any] = {}
        for r in range(1, k + 1):
            if r <= m:
                j = shortfall.argmax(axis=1)  # first of equals, so reasons are stable
                lost = shortfall[rows, j]
                pos = np.where(lost > 1e-9, flat[rows, j], -1)
                shortfall[rows, j] = -1.0
            else:
                lost, pos = np.zeros(n), np.full(n, -1)
            for name, suffix in (("code", ""), ("en", "_en"), ("zh", "_zh")):
                distinct, text_of, plain = self.texts[name]
                codes = np.where(pos >= 0, text_of[pos], -1)
                if n <= SMALL:  # an online request: plain strings, no pandas objects to build
                    out[f"reason_{r}{suffix}"] = np.where(codes >= 0, plain[codes], "")
                else:
                    out[f"reason_{r}{suffix}"] = pd.Categorical.from_codes(codes, dtype=distinct, validate=False)
            out[f"reason_{r}_points"] = np.where(pos >= 0, lost, 0.0)
        return out
