"""The scheduled close inside `iotfin serve`: every `poll_s` seconds, `ScheduledClose.tick` closes the
books through yesterday once the configured local time (setting `close_at`, Asia/Shanghai) has passed;
the first tick, at start, catches up days missed while no server ran. Several servers may share one
database: the close's lease (`close_lock`) lets one of them run it. A failed run is recorded
(`close_jobs`, `GET /api/v1/lending/close`) and tried again after `retry_s`.

Once per UTC day (and at start) the same loop brings the telemetry store's hourly rollups up to date
for the days before today (iotfin.telemetry.daily.refresh_hourly): long-range charts read them, and
fall back to the raw files for any day not rolled up yet."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, date, datetime
from typing import Any

from iotfin.telemetry.daily import refresh_hourly

log = logging.getLogger(__name__)


class CloseSchedule:
    def __init__(self, ws: Any, poll_s: float = 60.0, retry_s: float = 900.0):
        self.ws = ws
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.runs = 0
        self.failures = 0
        self._retry_after = 0.0
        self._rolled_up_for: date | None = None  # the UTC day the hourly rollups were last brought up to

    def step(self, first: bool = False) -> dict[str, Any] | None:
        if time.monotonic() < self._retry_after:
            return None
        try:
            run = self.ws.scheduled_close.tick(first=first)
        except Exception:
            self.failures += 1
            self._retry_after = time.monotonic() + self.retry_s
            log.exception("the scheduled close failed (recorded in close_jobs); retrying in %.0f s", self.retry_s)
            return None
        if run is not None:
            self.runs += 1
            log.info("closed %d day(s) through %s (%s)", len(run["days"]), run["through"], run["trigger"])
        self.roll_up()
        return run

    def roll_up(self) -> None:
        today = datetime.now(UTC).date()
        if self._rolled_up_for == today:
            return
        try:
            built = refresh_hourly(self.ws.telemetry, before=today, workers=1)  # one core: serving goes on
        except Exception:  # derived data: charts read the raw files meanwhile; tried again next poll
            log.exception("the hourly telemetry rollup failed; charts read the raw files meanwhile")
            return
        self._rolled_up_for = today
        if built:
            log.info("rolled up %d day(s) of telemetry by the hour", built)

    async def run(self, stop: asyncio.Event) -> None:
        first = True
        while not stop.is_set():
            await asyncio.to_thread(self.step, first)
            first = False
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                pass
