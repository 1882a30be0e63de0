"""The business calendar (工作日历) of mainland China, pure: weekends, the State Council's public holidays
and its make-up working days (调休上班日), as data (`lending/data/holidays_cn.json`).

A year whose arrangement is not in the data (or is marked `not_published`) counts Monday to Friday as
business days: `BusinessCalendar.published(year)` says which years are known. Business dates are
Asia/Shanghai dates (`iotfin.core.time.business_date`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources

from iotfin.core.time import BUSINESS_TZ, business_date, utc_now

MAX_ROLL_DAYS = 60  # no holiday run is this long: a guard against a broken data file


@dataclass(frozen=True)
class BusinessCalendar:
    holidays: frozenset[date]
    working_days: frozenset[date]
    years: frozenset[int]  # years whose State Council arrangement is in the data

    def published(self, year: int) -> bool:
        return year in self.years

    def is_business_day(self, d: date) -> bool:
        if d in self.working_days:
            return True
        return d.weekday() < 5 and d not in self.holidays

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after `d`."""
        for k in range(1, MAX_ROLL_DAYS + 1):
            if self.is_business_day(d + timedelta(days=k)):
                return d + timedelta(days=k)
        raise ValueError(f"no business day within {MAX_ROLL_DAYS} days after {d}")

    def roll_forward(self, d: date) -> date:
        """`d` if it is a business day, else the next one (顺延: a due date on a holiday moves to the
        next business day)."""
        return d if self.is_business_day(d) else self.next_business_day(d)


def parse_calendar(data: dict) -> BusinessCalendar:
    holidays: set[date] = set()
    working: set[date] = set()
    years: set[int] = set()
    for year, spec in data.get("years", {}).items():
        if spec.get("status") != "published":
            continue
        years.add(int(year))
        holidays.update(date.fromisoformat(d) for d in spec.get("holidays", []))
        working.update(date.fromisoformat(d) for d in spec.get("working_days", []))
    clash = holidays & working
    if clash:
        raise ValueError(f"days both holiday and working day: {sorted(clash)}")
    return BusinessCalendar(frozenset(holidays), frozenset(working), frozenset(years))


@lru_cache(maxsize=1)
def china() -> BusinessCalendar:
    """The shipped calendar (read once per process)."""
    text = resources.files("iotfin.lending").joinpath("data/holidays_cn.json").read_text(encoding="utf-8")
    return parse_calendar(json.loads(text))


def is_business_day(d: date, cal: BusinessCalendar | None = None) -> bool:
    return (cal or china()).is_business_day(d)


def next_business_day(d: date, cal: BusinessCalendar | None = None) -> date:
    return (cal or china()).next_business_day(d)


def roll_forward(d: date, cal: BusinessCalendar | None = None) -> date:
    return (cal or china()).roll_forward(d)


def today(now: datetime | None = None) -> date:
    """Today's business date in Asia/Shanghai."""
    return business_date(now or utc_now())


def parse_hh_mm(text: str) -> time:
    hh, _, mm = text.partition(":")
    return time(int(hh), int(mm))


def close_due_through(now: datetime, close_at: str) -> date:
    """The last business date whose scheduled close (at `close_at`, local time, the next morning) is
    due by `now`: yesterday once today's `close_at` has passed, else the day before."""
    local = now.astimezone(BUSINESS_TZ)
    yesterday = local.date() - timedelta(days=1)
    return yesterday if local.time() >= parse_hh_mm(close_at) else yesterday - timedelta(days=1)


def next_close_at(now: datetime, close_at: str) -> datetime:
    """The next time (aware, Asia/Shanghai) the scheduled close runs after `now`."""
    local = now.astimezone(BUSINESS_TZ)
    at = datetime.combine(local.date(), parse_hh_mm(close_at), tzinfo=BUSINESS_TZ)
    return at if at > local else datetime.combine(local.date() + timedelta(days=1), parse_hh_mm(close_at),
                                                  tzinfo=BUSINESS_TZ)
