from __future__ import annotations

import numpy as np

from iotfin.risk.grades import GRADE_NAMES, MASTER_SCALE, band, grade_of, grades_of, scale_table


def test_master_scale_bands_are_contiguous_and_bounds_belong_to_the_better_grade() -> None:
    assert GRADE_NAMES == ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C")
    uppers = [g.pd_upper for g in MASTER_SCALE]
    assert uppers == sorted(uppers) and uppers[-1] == 1.0
    for prev, g in zip(MASTER_SCALE, MASTER_SCALE[1:], strict=False):
        assert band(g.name)[0] == prev.pd_upper
        assert grade_of(prev.pd_upper).name == prev.name
        assert grade_of(np.nextafter(prev.pd_upper, 1)).name == g.name
    assert list(grades_of(np.array([0.0, 0.0003, 0.001, 0.3, 1.0]))) == ["AAA", "AAA", "AA", "C", "C"]
    assert all(r["zh"] and r["en"] for r in scale_table())
