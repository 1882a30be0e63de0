"""Dates: month arithmetic and the day-count conventions that turn a period into a year fraction."""

from __future__ import annotations

import calendar
from datetime import date
from enum import StrEnum
from fractions import Fraction


class DayCount(StrEnum):
    ACT_ACT = "actual/actual"  # ISDA: days in a leap year over 366, the others over 365
    ACT_365 = "actual/365"
    ACT_360 = "actual/360"
    D30_360 = "30/360"  # 30E/360: day 31 counts as 30


def add_months(start: date, months: int) -> date:
    """Same day `months` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    y, m = divmod(start.month - 1 + months, 12)
    year, month = start.year + y, m + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def year_fraction(start: date, end: date, basis: DayCount) -> Fraction:
    """The exact year fraction of the period [start, end) under a day-count convention."""
    if basis is DayCount.ACT_365:
        return Fraction((end - start).days, 365)
    if basis is DayCount.ACT_360:
        return Fraction((end - start).days, 360)
    if basis is DayCount.D30_360:
        return Fraction(days_30e360(start, end), 360)
    total = Fraction(0)
    cursor = start
    while cursor < end:  # ISDA: split at each 1 January
        boundary = min(end, date(cursor.year + 1, 1, 1))
        total += Fraction((boundary - cursor).days, 366 if calendar.isleap(cursor.year) else 365)
        cursor = boundary
    return total


def days_30e360(start: date, end: date) -> int:
    d1, d2 = min(start.day, 30), min(end.day, 30)
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)
