"""The bootstrap scorecard: how the platform rates before it has a model trained on its own book.
Pure: no I/O (the shipped content is read from package data).

An expert-set points scorecard over the three dimensions (entity 主体, asset 资产, transaction 交易),
shipped as data in `iotfin/risk/data/bootstrap_scorecard.json` and published, versioned and
activated like decision strategies (`iotfin.risk.scorecards`). It scores the same online feature
snapshot the trained enterprise model does (the features the lender's consent lets it read; the
others are missing) and gives the same output: PD, score and grade overall and per dimension, and
the three reasons that cost the most points, as sentences in zh-CN and en (`iotfin.risk.wording`).

Content (see the shipped file, which documents itself):
- `mapping`: {points, odds, pdo} — score = points + pdo·log2(odds'/odds) for good:bad odds odds';
  `grade_floors` (optional) the lowest score of each grade, checked against the master scale;
- `dimensions`: {entity|asset|transaction: {weight, base, features: {name: bins}}}; weights sum
  to 1; a dimension's score is base + its features' points, the combined score the weighted mean;
- numeric bins: {edges (ascending), points (one more than edges), missing, why}; bin i is
  [edges[i-1], edges[i]); categorical (string features): {categories: {value: points}, other,
  missing, why}.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.risk import wording
from iotfin.risk.features.catalogue import BY_NAME, CATALOGUE
from iotfin.risk.grades import MASTER_SCALE, grade_of
from iotfin.risk.woe import Scaling

FORMAT = "iotfin-bootstrap-scorecard/1"
NAME = "bootstrap"
DIMENSIONS = ("entity", "asset", "transaction")
DIMENSION_LABELS = {"entity": ("entity credit", "主体信用"), "asset": ("asset credit", "资产信用"),
                    "transaction": ("transaction credit", "交易信用")}
TOP_REASONS = 3
MAX_POINTS = 1000.0


def shipped_text() -> str:
    """The scorecard shipped with this release (published as a new version on first use)."""
    return resources.files("iotfin.risk").joinpath("data/bootstrap_scorecard.json").read_text(encoding="utf-8")


def canonical_sha256(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Bins:
    name: str
    dimension: str
    kind: str  # numeric | categorical
    edges: tuple[float, ...] = ()
    points: tuple[float, ...] = ()  # numeric: one per bin
    categories: tuple[tuple[str, float], ...] = ()  # categorical: (value, points) in order
    other: float = 0.0
    missing: float = 0.0

    def bin_of(self, value: Any) -> int:
        """Numeric: 0..n-1, then n for missing. Categorical: the category's position, then other, missing."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return len(self.points) if self.kind == "numeric" else len(self.categories) + 1
        if self.kind == "numeric":
            return bisect.bisect_right(self.edges, float(value))
        text = str(value).strip()
        for i, (cat, _) in enumerate(self.categories):
            if cat == text:
                return i
        return len(self.categories)

    def points_of(self, b: int) -> float:
        if self.kind == "numeric":
            return self.points[b] if b < len(self.points) else self.missing
        if b < len(self.categories):
            return self.categories[b][1]
        return self.other if b == len(self.categories) else self.missing

    @property
    def best(self) -> float:
        """The most points a value (not a missing one) can get: the reference for reasons."""
        if self.kind == "numeric":
            return max(self.points)
        return max([p for _, p in self.categories] + [self.other])

    def reason(self, b: int, value: Any) -> tuple[str, str]:
        """(zh, en) why bin `b` (holding `value`) costs points."""
        label = {"zh": BY_NAME[self.name].zh, "en": BY_NAME[self.name].en}
        if self.kind == "numeric":
            if b == len(self.points):
                return wording.missing(self.name, label)
            bests = [i for i, p in enumerate(self.points) if p == self.best]
            nearest = min(bests, key=lambda i: (abs(i - b), i))
            lower = self.edges[b - 1] if b > 0 else -math.inf
            upper = self.edges[b] if b < len(self.edges) else math.inf
            return wording.numeric(self.name, lower, upper, nearest > b, label)
        if b == len(self.categories) + 1:
            return wording.missing(self.name, label)
        return wording.categorical(self.name, [str(value).strip()], label)


@dataclass(frozen=True, slots=True)
class BootstrapScorecard:
    scaling: Scaling
    weights: dict[str, float]
    bases: dict[str, float]
    features: tuple[Bins, ...]
    content: dict[str, Any]
    not_scored: tuple[str, ...]  # catalogue features the scorecard leaves out
    revenue_per_kwh: dict[str, float] = field(default_factory=dict)  # sector ("" any) -> yuan of sales per kWh

    @property
    def sha256(self) -> str:
        return canonical_sha256(self.content)


def _number(value: Any, where: str, *, limit: float = MAX_POINTS) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValidationError(f"{where}: must be a number, not {value!r}")
    if abs(float(value)) > limit:
        raise ValidationError(f"{where}: {value} is out of range (at most {limit:g} in size)")
    return float(value)


def _score_of_pd(scaling: Scaling, pd: float) -> float:
    return scaling.offset - scaling.factor * math.log(pd / (1 - pd))


def pd_of_score(scaling: Scaling, score: float) -> float:
    lp = (scaling.offset - score) / scaling.factor
    return 1.0 / (1.0 + math.exp(-lp))


def grade_floors(scaling: Scaling) -> dict[str, float | None]:
    """The lowest score of each grade under `scaling` (the score at the grade's PD upper bound)."""
    return {g.name: (round(_score_of_pd(scaling, g.pd_upper), 1) if g.pd_upper < 1 else None) for g in MASTER_SCALE}


def _bins(name: str, dim: str, spec: Any) -> Bins:
    where = f"dimensions.{dim}.features.{name}"
    feature = BY_NAME.get(name)
    if feature is None:
        raise ValidationError(f"{where}: {name!r} is not a feature of the enterprise feature catalogue")
    if feature.dimension != dim:
        raise ValidationError(f"{where}: {name} is a feature of the {feature.dimension} dimension, not {dim}")
    if not isinstance(spec, Mapping):
        raise ValidationError(f"{where}: expected an object with the feature's bins")
    categorical = feature.kind == "string"
    allowed = {"categories", "other", "missing", "why"} if categorical else {"edges", "points", "missing", "why"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValidationError(f"{where}: unknown key(s) {', '.join(unknown)}; a "
                              f"{'categorical' if categorical else 'numeric'} feature takes {', '.join(sorted(allowed))}")
    if "missing" not in spec:
        raise ValidationError(f"{where}.missing: the points of a missing (or withheld) value are required")
    missing = _number(spec["missing"], f"{where}.missing")
    if categorical:
        cats = spec.get("categories", {})
        if not isinstance(cats, Mapping):
            raise ValidationError(f"{where}.categories: expected {{value: points}}")
        pairs = tuple((str(k).strip(), _number(v, f"{where}.categories.{k}")) for k, v in cats.items())
        return Bins(name, dim, "categorical", categories=pairs, other=_number(spec.get("other", 0), f"{where}.other"),
                    missing=missing)
    edges, points = spec.get("edges"), spec.get("points")
    if not isinstance(edges, list) or not isinstance(points, list):
        raise ValidationError(f"{where}: edges and points must be lists")
    edge_values = [_number(e, f"{where}.edges[{i}]", limit=1e15) for i, e in enumerate(edges)]
    if any(b <= a for a, b in zip(edge_values, edge_values[1:], strict=False)):
        raise ValidationError(f"{where}.edges: must be strictly ascending, got {edges}")
    if len(points) != len(edges) + 1:
        raise ValidationError(f"{where}.points: {len(edges)} edges make {len(edges) + 1} bins, "
                              f"but {len(points)} points are given")
    pts = tuple(_number(p, f"{where}.points[{i}]") for i, p in enumerate(points))
    return Bins(name, dim, "numeric", edges=tuple(edge_values), points=pts, missing=missing)


def parse(content: str | bytes | Mapping[str, Any]) -> BootstrapScorecard:
    """Validate scorecard content; ValidationError names the field (and feature) that is wrong."""
    if isinstance(content, (str, bytes)):
        try:
            content = json.loads(content)
        except ValueError as exc:
            raise ValidationError(f"content: not JSON ({exc})") from None
    if not isinstance(content, Mapping):
        raise ValidationError("content: expected a JSON object")
    content = json.loads(json.dumps(content))  # a plain, detached copy
    if content.get("format") != FORMAT:
        raise ValidationError(f"format: must be {FORMAT!r}, not {content.get('format')!r}")
    mapping = content.get("mapping")
    if not isinstance(mapping, Mapping):
        raise ValidationError("mapping: expected {points, odds, pdo}")
    points = _number(mapping.get("points"), "mapping.points", limit=10_000)
    odds = _number(mapping.get("odds"), "mapping.odds", limit=1e6)
    pdo = _number(mapping.get("pdo"), "mapping.pdo", limit=1_000)
    if odds <= 0 or pdo <= 0:
        raise ValidationError("mapping: odds and pdo must be positive")
    scaling = Scaling(pdo=pdo, odds=odds, points=points)
    floors = mapping.get("grade_floors")
    if floors is not None:
        if not isinstance(floors, Mapping):
            raise ValidationError("mapping.grade_floors: expected {grade: lowest score}")
        expected = grade_floors(scaling)
        for grade, floor in floors.items():
            if grade not in expected:
                raise ValidationError(f"mapping.grade_floors.{grade}: not a grade of the master scale")
            want = expected[grade]
            if (want is None) != (floor is None) or (want is not None and abs(_number(floor, f"mapping.grade_floors.{grade}", limit=1e5) - want) > 0.5):
                raise ValidationError(f"mapping.grade_floors.{grade}: {floor} disagrees with the master scale "
                                      f"under this mapping ({want})")
    dims = content.get("dimensions")
    if not isinstance(dims, Mapping):
        raise ValidationError("dimensions: expected {entity, asset, transaction}")
    missing_dims = [d for d in DIMENSIONS if d not in dims]
    extra_dims = sorted(set(dims) - set(DIMENSIONS))
    if missing_dims or extra_dims:
        raise ValidationError(f"dimensions: need exactly {', '.join(DIMENSIONS)}"
                              + (f"; missing {', '.join(missing_dims)}" if missing_dims else "")
                              + (f"; unknown {', '.join(extra_dims)}" if extra_dims else ""))
    weights, bases, feats = {}, {}, []
    for dim in DIMENSIONS:
        spec = dims[dim]
        if not isinstance(spec, Mapping) or not isinstance(spec.get("features"), Mapping):
            raise ValidationError(f"dimensions.{dim}: expected {{weight, base, features}}")
        weights[dim] = _number(spec.get("weight"), f"dimensions.{dim}.weight", limit=1)
        if weights[dim] <= 0:
            raise ValidationError(f"dimensions.{dim}.weight: must be above 0")
        bases[dim] = _number(spec.get("base"), f"dimensions.{dim}.base", limit=10_000)
        feats += [_bins(str(n), dim, s) for n, s in spec["features"].items()]
    if abs(sum(weights.values()) - 1) > 1e-6:
        raise ValidationError(f"dimensions: the weights must add up to 1, not {sum(weights.values()):g}")
    per_kwh = content.get("revenue_per_kwh", {})
    if not isinstance(per_kwh, Mapping):
        raise ValidationError("revenue_per_kwh: expected {sector: yuan of sales per kWh}")
    revenue_per_kwh = {}
    for sector, value in per_kwh.items():
        if sector == "why":
            continue
        revenue_per_kwh[str(sector)] = _number(value, f"revenue_per_kwh.{sector}", limit=10_000)
        if revenue_per_kwh[str(sector)] < 0:
            raise ValidationError(f"revenue_per_kwh.{sector}: must not be negative")
    scored = {f.name for f in feats}
    not_scored = tuple(f.name for f in CATALOGUE if f.name not in scored)
    return BootstrapScorecard(scaling, weights, bases, tuple(feats), content, not_scored, revenue_per_kwh)


def score(card: BootstrapScorecard, features: Mapping[str, Any], top: int = TOP_REASONS) -> dict[str, Any]:
    """One enterprise's rating from its features (absent, None or withheld = missing), as the flat
    row a trained model's `score_row` gives: `pd`, `score`, `grade`, `<dim>_pd|_score|_grade`,
    `reason_i`, `reason_i_zh`, `reason_i_en`, `reason_i_points` (i = 1..top; "" / 0 when none)."""
    dim_scores = dict(card.bases)
    lost: list[tuple[float, int, str, str, str]] = []
    for order, f in enumerate(card.features):
        value = features.get(f.name)
        b = f.bin_of(value)
        pts = f.points_of(b)
        dim_scores[f.dimension] += pts
        shortfall = (f.best - pts) * card.weights[f.dimension]  # what it cost the combined score
        if shortfall > 1e-9:
            zh, en = f.reason(b, value)
            lost.append((shortfall, order, f"{f.name}#{b}", zh, en))
    row: dict[str, Any] = {}
    for dim, s in dim_scores.items():
        pd = pd_of_score(card.scaling, s)
        row |= {f"{dim}_pd": pd, f"{dim}_score": s, f"{dim}_grade": grade_of(pd).name}
    total = sum(card.weights[d] * s for d, s in dim_scores.items())
    pd = pd_of_score(card.scaling, total)
    row |= {"pd": pd, "score": total, "grade": grade_of(pd).name}
    lost.sort(key=lambda x: (-x[0], x[1]))
    for i in range(1, top + 1):
        if i <= len(lost):
            pts, _, code, zh, en = lost[i - 1]
            row |= {f"reason_{i}": code, f"reason_{i}_zh": zh, f"reason_{i}_en": en, f"reason_{i}_points": pts}
        else:
            row |= {f"reason_{i}": "", f"reason_{i}_zh": "", f"reason_{i}_en": "", f"reason_{i}_points": 0.0}
    return row


def profile(model_id: str, row: Mapping[str, Any], top: int = TOP_REASONS) -> dict[str, Any]:
    """The structured profile (the shape `iotfin.risk.scoring.score_one` gives) of a `score` row."""
    return {"model": model_id, "pd": row["pd"], "score": round(row["score"], 1), "grade": row["grade"],
            "dimensions": {d: {"pd": row[f"{d}_pd"], "score": round(row[f"{d}_score"], 1), "grade": row[f"{d}_grade"],
                               "en": DIMENSION_LABELS[d][0], "zh": DIMENSION_LABELS[d][1]} for d in DIMENSIONS},
            "reasons": [{"code": row[f"reason_{i}"], "en": row[f"reason_{i}_en"], "zh": row[f"reason_{i}_zh"],
                         "points": round(row[f"reason_{i}_points"], 1)} for i in range(1, top + 1) if row[f"reason_{i}"]]}


def model_id(version: int) -> str:
    return f"{NAME}-v{version}"
