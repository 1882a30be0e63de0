"""Chart data for the console's telemetry charts (drawn by static/console.js with ECharts).

Downsampled on the server: a chart never receives more points than it has pixels. The window asked
for (the whole range, or the zoomed part: `from`/`to`, epoch ms) is cut into at most `MAX_POINTS`
buckets of a round width (1 min, 15 min, 1 h, 1 day ...) and each bucket shows its mean with its
min-max band, read through the API's `bucket` aggregation — so a lender's chart goes through the
enterprise's consent check and leaves an access-log row like any other read. A window small
enough to show every reading is read raw.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import ORJSONResponse

from iotfin.api.routing import ApiRouter
from iotfin.console.web import Page, chart_json, page_for

MS_PER_MIN = 60_000
#: bucket widths a chart may use, in minutes (all parseable by the telemetry API's `bucket`)
WIDTHS_MIN = (1, 5, 15, 30, 60, 180, 360, 720, 1440, 10080)
MAX_POINTS = 1500
DEFAULT_RANGE_MS = 90 * 1440 * MS_PER_MIN
RAW_LIMIT = 10_000
DAY_MS = 1440 * MS_PER_MIN


def bucket_for(span_ms: int, max_points: int = MAX_POINTS) -> str | None:
    """The narrowest round bucket that keeps a span within `max_points` (None: a minute or less each)."""
    for minutes in WIDTHS_MIN:
        if span_ms / (minutes * MS_PER_MIN) <= max_points:
            return None if minutes == 1 and span_ms <= max_points * MS_PER_MIN else f"{minutes}m"
    return f"{WIDTHS_MIN[-1]}m"


async def telemetry_series(page: Page, enterprise_id: int, device_id: int, key: str | None,
                           start_ms: int | None, end_ms: int | None, purpose: str) -> dict[str, Any]:
    params: dict[str, Any] = {"device_id": device_id, "key": key, "purpose": purpose}
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000)
    start_ms = start_ms if start_ms is not None else end_ms - DEFAULT_RANGE_MS
    span = max(end_ms - start_ms, 1)
    bucket = bucket_for(span)
    if bucket is not None:
        # Whole buckets only (they are aligned to the epoch): a partial first or last bucket would
        # show the min/max/mean of a sliver as if of the whole, and whole hours are what the store's
        # hourly rollups serve without reading the raw files.
        width = int(bucket[:-1]) * MS_PER_MIN
        start_ms, end_ms = start_ms // width * width, -(-end_ms // width) * width
    data = await page.api.get(f"/api/v1/enterprises/{enterprise_id}/telemetry", **params, start=start_ms, end=end_ms,
                              bucket=bucket, limit=RAW_LIMIT if bucket is None else None)
    name = data["key"]
    if bucket is None:
        series = [{"name": name, "data": [[p["ts"], p["value"]] for p in data["points"]]}]
    else:
        series = [
            {"name": name, "data": [[p["ts"], p["avg"]] for p in data["points"]]},
            {"name": page._("min"), "data": [[p["ts"], p["min"]] for p in data["points"]], "type": "line"},
            {"name": page._("max"), "data": [[p["ts"], p["max"]] for p in data["points"]], "type": "line"},
        ]
    return {"x": "time", "unit": name, "bucket": bucket, "start": start_ms, "end": end_ms, "series": series}


async def newest_reading(page: Page, enterprise_id: int, device_id: int, key: str, **params: Any) -> dict[str, Any] | None:
    """A device's newest reading of `key` in the last 7 days (the `last` of the API's newest daily
    bucket), for a table cell; None without one. The API's refusals reach the caller."""
    end = int(time.time() * 1000)
    got = await page.api.get(f"/api/v1/enterprises/{enterprise_id}/telemetry", device_id=device_id, key=key,
                             bucket="1d", start=end - 7 * DAY_MS, end=end, **params)
    points = got.get("points") or []
    return {"key": key, "value": points[-1].get("last"), "day": points[-1]["ts"]} if points else None


def router() -> ApiRouter:
    r = ApiRouter(include_in_schema=False)

    @r.get("/charts/telemetry/{enterprise_id}/{device_id}.json")
    async def telemetry_chart(enterprise_id: int, device_id: int,
                              page: Annotated[Page, Depends(page_for("telemetry:read"))],
                              key: Annotated[str | None, Query(max_length=255)] = None,
                              start: Annotated[int | None, Query(alias="from", ge=0)] = None,
                              end: Annotated[int | None, Query(alias="to", ge=0)] = None,
                              purpose: Annotated[str, Query(max_length=32)] = "post_loan_monitoring") -> ORJSONResponse:
        """{x, unit, bucket, start, end, series: [{name, data: [[ts, value], ...]}]} for console.js."""
        body = await telemetry_series(page, enterprise_id, device_id, key, start, end, purpose)
        return chart_json(page, body)

    return r
