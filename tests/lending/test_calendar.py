"""The business calendar: the State Council's holidays and make-up working days as data; the schedule
of the daily close (close_at, Asia/Shanghai)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from iotfin.core.errors import ConfigError
from iotfin.core.settings import load_settings
from iotfin.lending import calendar as cal


def test_holidays_and_make_up_working_days() -> None:
    assert not cal.is_business_day(date(2026, 2, 17))  # 春节
    assert cal.is_business_day(date(2026, 2, 14))  # a Saturday worked (调休上班)
    assert cal.is_business_day(date(2026, 10, 10)) and not cal.is_business_day(date(2026, 10, 7))
    assert not cal.is_business_day(date(2025, 5, 5)) and cal.is_business_day(date(2025, 4, 27))
    assert not cal.is_business_day(date(2026, 12, 5))  # an ordinary Saturday
    assert cal.next_business_day(date(2026, 9, 30)) == date(2026, 10, 8)
    assert cal.roll_forward(date(2026, 2, 15)) == date(2026, 2, 24)  # 顺延 past the Spring Festival
    assert cal.roll_forward(date(2026, 2, 24)) == date(2026, 2, 24)


def test_a_year_not_published_counts_weekdays() -> None:
    china = cal.china()
    assert china.published(2025) and china.published(2026) and not china.published(2027)
    assert cal.is_business_day(date(2027, 1, 1)) is True  # New Year 2027 unknown until the notice is added
    assert not cal.is_business_day(date(2027, 1, 2))


def test_a_day_both_holiday_and_working_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        cal.parse_calendar({"years": {"2030": {"status": "published", "holidays": ["2030-01-05"],
                                               "working_days": ["2030-01-05"]}}})


def test_the_close_schedule_in_shanghai_time() -> None:
    before = datetime(2026, 12, 5, 16, 20, tzinfo=UTC)  # 00:20 on the 6th in Shanghai
    after = datetime(2026, 12, 5, 16, 40, tzinfo=UTC)  # 00:40
    assert cal.close_due_through(before, "00:30") == date(2026, 12, 4)
    assert cal.close_due_through(after, "00:30") == date(2026, 12, 5)
    assert cal.next_close_at(before, "00:30").isoformat() == "2026-12-06T00:30:00+08:00"
    assert cal.next_close_at(after, "00:30").isoformat() == "2026-12-07T00:30:00+08:00"
    assert cal.today(after) == date(2026, 12, 6)


def test_close_at_is_a_local_time() -> None:
    assert load_settings(close_at="7:05").close_at == "07:05"
    with pytest.raises(ConfigError, match="IOTFIN_CLOSE_AT"):
        load_settings(close_at="25:00")
