"""Reason codes: the factors that cost a row the most points, in zh-CN and en. Pure: no I/O.

The method is the usual adverse-action one for points scorecards: for every feature, the points the
row's bin gets against the best points any observed bin of that feature gets; the features with
the largest shortfall are the reasons, in that order. Features that cost nothing give no reason.
Reasons always come from the WoE model (the scorecard, or the enterprise three-dimension model):
its points are additive, so a reason's shortfall is exactly what it cost in the score. When the
LightGBM challenger is the champion its PD is reported, and the reasons still come from the
scorecard, which shares its monotone directions (docs/risk.md).

Text is precomputed per (feature, bin), so a million rows need only array look-ups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from iotfin.risk.models.bundle import DIMENSION_LABELS
from iotfin.risk.woe import Scaling, WoeLinear

_MISSING = {"en": "not reported", "zh": "未提供"}
_UNKNOWN = {"en": "a value not seen in training", "zh": "训练中未出现的取值"}


@dataclass(frozen=True, slots=True)
class ReasonTable:
    points: np.ndarray  # (features, bins)
    best: np.ndarray  # (features,)
    code: np.ndarray  # (features, bins) object
    en: np.ndarray
    zh: np.ndarray

    @classmethod
    def build(cls, linear: WoeLinear, scaling: Scaling, label: Callable[[str], Mapping[str, str]],
              dimension_of: Mapping[str, str] | None = None) -> ReasonTable:
        points = linear.points_table(scaling)
        width = points.shape[1] if points.ndim == 2 else 2
        shape = (len(linear.features), width)
        code, en, zh = (np.full(shape, "", dtype=object) for _ in range(3))
        for j, f in enumerate(linear.features):
            names = label(f.name)
            dim = (dimension_of or {}).get(f.name)
            dim_en = f" ({DIMENSION_LABELS[dim][0]})" if dim in DIMENSION_LABELS else ""
            dim_zh = f"（{DIMENSION_LABELS[dim][1]}）" if dim in DIMENSION_LABELS else ""
            for b, bin_label in enumerate(f.labels):
                if b == f.missing_bin:
                    v_en, v_zh = _MISSING["en"], _MISSING["zh"]
                elif b == f.unknown_bin:
                    v_en, v_zh = _UNKNOWN["en"], _UNKNOWN["zh"]
                else:
                    v_en = v_zh = bin_label
                code[j, b] = f"{f.name}#{b}"
                en[j, b] = f"{names['en']}{dim_en}: {v_en}"
                zh[j, b] = f"{names['zh']}{dim_zh}：{v_zh}"
        return cls(points, linear.best_points(scaling), code, en, zh)

    def top(self, idx: np.ndarray, k: int) -> dict[str, np.ndarray]:
        """reason_1..k (code), reason_i_en, reason_i_zh, reason_i_points (points lost) per row."""
        n, m = idx.shape
        feat = np.arange(m)
        shortfall = np.maximum(self.best - self.points[feat, idx], 0.0) if m else np.zeros((n, 0))
        k_eff = min(k, m)
        order = np.argsort(-shortfall, axis=1, kind="stable")[:, :k_eff]
        rows = np.arange(n)
        out: dict[str, np.ndarray] = {}
        for r in range(k):
            if r < k_eff:
                j = order[:, r]
                b = idx[rows, j]
                lost = shortfall[rows, j]
                given = lost > 1e-9
                out[f"reason_{r + 1}"] = np.where(given, self.code[j, b], "")
                out[f"reason_{r + 1}_en"] = np.where(given, self.en[j, b], "")
                out[f"reason_{r + 1}_zh"] = np.where(given, self.zh[j, b], "")
                out[f"reason_{r + 1}_points"] = np.where(given, lost, 0.0)
            else:
                empty = np.full(n, "", dtype=object)
                out.update({f"reason_{r + 1}": empty, f"reason_{r + 1}_en": empty, f"reason_{r + 1}_zh": empty,
                            f"reason_{r + 1}_points": np.zeros(n)})
        return out
