"""The master scale: one grade per probability-of-default band. Pure: no I/O.

Bands are half-open on the left, closed on the right: a PD of exactly 0.25 % is an A, the next
representable PD above it a BBB. The scale is the same for every model so that grades from the generic
scorecard, the challenger and the enterprise three-dimension model can be compared and fed to one
decision model. Upper bounds follow the usual agency-style spacing (roughly ×2.5-3 per notch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Grade:
    name: str
    pd_upper: float  # inclusive upper bound of the band (1.0 for the last)
    en: str
    zh: str


MASTER_SCALE: tuple[Grade, ...] = (
    Grade("AAA", 0.0003, "minimal risk", "风险极低"),
    Grade("AA", 0.0010, "very low risk", "风险很低"),
    Grade("A", 0.0025, "low risk", "风险低"),
    Grade("BBB", 0.0075, "moderate risk", "风险适中"),
    Grade("BB", 0.0200, "elevated risk", "风险偏高"),
    Grade("B", 0.0500, "high risk", "风险高"),
    Grade("CCC", 0.1200, "very high risk", "风险很高"),
    Grade("CC", 0.2500, "severe risk", "风险严重"),
    Grade("C", 1.0, "near default", "接近违约"),
)
GRADE_NAMES: tuple[str, ...] = tuple(g.name for g in MASTER_SCALE)
_UPPER = np.array([g.pd_upper for g in MASTER_SCALE[:-1]])


def grade_index(pd: np.ndarray) -> np.ndarray:
    """Index into MASTER_SCALE for each PD (vectorised; a PD on a bound belongs to the better grade)."""
    return np.searchsorted(_UPPER, np.asarray(pd, dtype=float), side="left")


def grades_of(pd: np.ndarray) -> np.ndarray:
    """Grade names for an array of PDs."""
    return np.asarray(GRADE_NAMES, dtype=object)[grade_index(pd)]


def grade_of(pd: float) -> Grade:
    return MASTER_SCALE[int(grade_index(np.array([pd]))[0])]


def band(name: str) -> tuple[float, float]:
    """(lower exclusive, upper inclusive) PD bounds of a grade."""
    for i, g in enumerate(MASTER_SCALE):
        if g.name == name:
            return (MASTER_SCALE[i - 1].pd_upper if i else 0.0, g.pd_upper)
    raise KeyError(name)


def scale_table() -> list[dict[str, object]]:
    """The master scale as rows (for docs, reports and the API)."""
    return [{"grade": g.name, "pd_from": band(g.name)[0], "pd_to": g.pd_upper, "en": g.en, "zh": g.zh}
            for g in MASTER_SCALE]
