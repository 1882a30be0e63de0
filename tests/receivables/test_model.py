"""The pure rules: splitting conserves by construction, pro rata to the fen, term limits, features."""

from __future__ import annotations

from collections import namedtuple
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotfin.core.errors import ValidationError
from iotfin.receivables import model as m

LIMITS = m.Limits(max_term_months=6, min_part_fen=100_00, max_depth=3)


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**7), min_size=1, max_size=30))
def test_pro_rata_sums_exactly_and_is_within_a_fen(paid: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        return
    shares = m.pro_rata(paid, weights)
    assert sum(shares) == paid
    total = sum(weights)
    for s, w in zip(shares, weights, strict=True):
        assert abs(s * total - paid * w) < total


def test_pro_rata_vectors() -> None:
    assert m.pro_rata(100, [1, 1, 1]) == [34, 33, 33]
    assert m.pro_rata(1, [3, 7]) == [0, 1]
    assert m.pro_rata(10, [0, 5]) == [0, 10]
    with pytest.raises(ValidationError):
        m.pro_rata(1, [0, 0])


@given(st.integers(0, 10**6), st.integers(200_00, 10**8), st.lists(st.integers(100_00, 10**7), min_size=1, max_size=5))
def test_split_tiles_the_parent_or_refuses(start: int, size: int, amounts: list[int]) -> None:
    try:
        parts = m.split_ranges(start, start + size, amounts, 0, LIMITS)
    except ValidationError as exc:
        assert "more than held" in str(exc) or "below the minimum" in str(exc) or "at least two" in str(exc)
        return
    assert parts[0][0] == start and parts[-1][1] == start + size
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    assert all(e - s >= LIMITS.min_part_fen for s, e in parts)


def test_split_limits() -> None:
    with pytest.raises(ValidationError, match="depth"):
        m.split_ranges(0, 100_000, [20_000], 3, LIMITS)
    with pytest.raises(ValidationError, match="more than held"):
        m.split_ranges(0, 100_000, [60_000, 50_000], 0, LIMITS)


def test_term_limits() -> None:
    m.check_term(date(2026, 8, 31), date(2027, 2, 28), LIMITS)  # six months, end of month
    with pytest.raises(ValidationError, match="term beyond the limit"):
        m.check_term(date(2026, 8, 31), date(2027, 3, 1), LIMITS)
    twelve = m.Limits(max_term_months=12)
    m.check_term(date(2026, 1, 1), date(2027, 1, 1), twelve)
    with pytest.raises(ValidationError):
        m.Limits(max_term_months=13)  # the rule's hard ceiling


def test_yuan_to_fen() -> None:
    assert m.yuan_to_fen("100000.00") == 10_000_000
    for bad in ("0", "-1", "1.001", "abc"):
        with pytest.raises(ValidationError):
            m.yuan_to_fen(bad)


Row = namedtuple("Row", "issuer_id supplier_id total_fen issued_on matures_on status paid_on evidence_level")


def test_voucher_features_and_maturity_risk() -> None:
    rows = [Row(1, 2, 100_000_00, date(2026, 1, 5), date(2026, 4, 5), "paid", date(2026, 4, 5), "documents+iot"),
            Row(1, 2, 50_000_00, date(2026, 2, 5), date(2026, 5, 5), "paid", date(2026, 5, 15), "documents"),
            Row(3, 2, 10_000_00, date(2026, 3, 1), date(2026, 8, 1), "active", None, "documents")]
    f2 = m.voucher_features(rows, 2, date(2026, 6, 1))
    assert f2["voucher_confirmed_volume_180d"] == 160_000.0 and f2["voucher_core_count_180d"] == 2.0
    f1 = m.voucher_features(rows, 1, date(2026, 6, 1))
    assert f1["voucher_core_on_time_share"] == 0.5 and f1["voucher_core_mean_days_late"] == 5.0
    assert m.maturity_at_risk(10, 100, 0.01, 0) is None
    assert "late before" in m.maturity_at_risk(10, 100, 0.01, 1)
    assert "past maturity" in m.maturity_at_risk(-3, 100, 0.01, 0)


def test_replay_title_refuses_a_broken_chain() -> None:
    ev = [{"id": 1, "voucher_id": 9, "part_id": 1, "kind": "issue", "detail": {"to": "enterprise:2", "end": 1000}},
          {"id": 2, "voucher_id": 9, "part_id": 1, "kind": "transfer", "detail": {"from": "enterprise:5", "to": "enterprise:6"}}]
    with pytest.raises(ValidationError, match="but enterprise:2 held"):
        m.replay_title(9, ev)
    ev[1]["detail"]["from"] = "enterprise:2"
    assert m.replay_title(9, ev)["holders"]["1"]["holder"] == "enterprise:6"
