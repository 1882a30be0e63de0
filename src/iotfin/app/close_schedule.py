"""The scheduled close inside `iotfin serve`: every `poll_s` seconds, `ScheduledClose.tick` closes the
books through yesterday once the configured local time (setting `close_at`, Asia/Shanghai) has passed;
the first tick, at start, catches up days missed while no server ran. Several servers may share one
database: the close's lease (`close_lock`) lets one of them run it. A failed run is recorded
(`close_jobs`, `GET /api/v1/lending/close`) and tried again after `retry_s`."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


class CloseSchedule:
    def __init__(self, ws: Any, poll_s: float = 60.0, retry_s: float = 900.0):
        self.ws = ws
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.runs = 0
        self.failures = 0
        self._retry_after = 0.0

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
        return run

    async def run(self, stop: asyncio.Event) -> None:
        first = True
        while not stop.is_set():
            await asyncio.to_thread(self.step, first)
            first = False
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                pass
