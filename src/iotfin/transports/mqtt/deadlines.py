"""Every session's next deadline — the CONNECT deadline, then keep-alive — on one event-loop timer.

Why not `loop.call_later` per session: a `TimerHandle` with its copied context is ~220 bytes per
connection, and an idle fleet is where memory per connection matters (bench/ingest_e2e.py, idle
phase). Here a deadline is a float on the session and one list entry in a bucket of
`RESOLUTION_S`; the loop's timer fires once per bucket that holds anything, so the cost is per
bucket due, not per connection. Deadlines fire up to `RESOLUTION_S` late, which keep-alive
(1.5 x the client's interval, whole seconds) and the CONNECT timeout do not notice.

A session is not removed from its bucket when its deadline moves or its connection goes: when the
bucket comes due, an entry whose session's deadline is no longer due (or is 0, none) is dropped.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from typing import Protocol

log = logging.getLogger(__name__)

RESOLUTION_S = 0.25
#: a timer may run this much before its time (the loop's clock resolution); count it as due
_EARLY_S = 0.001


class HasDeadline(Protocol):
    _deadline: float  # event-loop time; 0 = none

    def _on_timer(self) -> None: ...


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution_s: float = RESOLUTION_S):
        self._loop = loop
        self._resolution = resolution_s
        self._buckets: dict[int, list[HasDeadline]] = {}
        self._due: list[int] = []  # bucket numbers, a heap
        self._timer: asyncio.TimerHandle | None = None
        self._timer_bucket = 0
        self._firing = False

    def __len__(self) -> int:
        """Entries held, stale ones included."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def add(self, item: HasDeadline, at: float) -> None:
        """Call `item._on_timer()` once `at` has passed, if `item._deadline` is then still at or before it."""
        number = math.ceil(at / self._resolution)
        bucket = self._buckets.get(number)
        if bucket is not None:
            bucket.append(item)
            return
        self._buckets[number] = [item]
        heapq.heappush(self._due, number)
        if not self._firing and (self._timer is None or number < self._timer_bucket):
            self._arm(number)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()
        self._due.clear()

    def _arm(self, number: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_bucket = number
        self._timer = self._loop.call_at(number * self._resolution, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._firing = True
        try:
            now = self._loop.time() + _EARLY_S
            due = self._due
            while due and due[0] * self._resolution <= now:
                for item in self._buckets.pop(heapq.heappop(due)):
                    deadline = item._deadline
                    if deadline and deadline <= now:
                        try:
                            item._on_timer()
                        except Exception:  # one session's bug must not stop the others' deadlines
                            log.exception("%r: deadline handler raised", item)
        finally:
            self._firing = False
        if self._due:
            self._arm(self._due[0])
