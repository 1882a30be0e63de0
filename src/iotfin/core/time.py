"""Time conventions: telemetry in UTC epoch milliseconds, business dates in Asia/Shanghai."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
MS_PER_DAY = 86_400_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def now_ms() -> int:
    # time_ns, not a datetime: called per device message on the ingest path (bench/ingest_e2e.py)
    return time.time_ns() // 1_000_000


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def datetime_to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return int(dt.timestamp() * 1000)


def utc_day_of_ms(ms: int) -> date:
    """The UTC calendar day a telemetry timestamp falls in (telemetry partitions are UTC days)."""
    return date(1970, 1, 1) + timedelta(days=ms // MS_PER_DAY)


def day_start_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * MS_PER_DAY


def business_date(dt: datetime) -> date:
    """The local business date (Asia/Shanghai) of an aware datetime."""
    return dt.astimezone(BUSINESS_TZ).date()


def parse_time(text: str) -> int:
    """Parse an ISO date/datetime (naive = UTC) or epoch milliseconds into epoch ms."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return datetime_to_ms(dt)
