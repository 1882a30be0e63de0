"""Every session's next deadline — the CONNECT deadline, then keep-alive — on one event-loop timer.

Why not `loop.call_later` per session: a `TimerHandle` with its copied context is ~220 bytes per
connection, and an idle fleet is where memory per connection matters (bench/ingest_e2e.py, idle
phase). Here a deadline is a float on the session and one list entry in a bucket of
`RESOLUTION_S`; the loop's timer fires once per bucket that holds anything, so the cost is per
bucket due, not per connection. Deadlines fire up to `RESOLUTION_S` late, which keep-alive
(1.5 x the client's interval, whole seconds) and the CONNECT timeout do not notice.

A session is not removed from its bucket when its deadline moves or its connection goes: when the
bucket comes due, an entry whose session's deadline is no longer due (or is 0, none) is dropped.
So that closed sessions are not kept alive until then (a keep-alive bucket may be 15 minutes
away), `discard` counts entries that went stale, and once they are over half of all entries the
buckets are rebuilt without them: amortised O(1) per discard, memory at most twice the live entries.
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
#: stale entries tolerated before a rebuild is considered at all
_COMPACT_AFTER = 1024


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
        self._entries = 0  # in all buckets, stale ones included
        self._stale = 0    # entries discard() was told of since the last rebuild

    def __len__(self) -> int:
        """Entries held, stale ones included."""
        return self._entries

    def add(self, item: HasDeadline, at: float) -> None:
        """Call `item._on_timer()` once `at` has passed, if `item._deadline` is then still at or before it."""
        number = math.ceil(at / self._resolution)
        self._entries += 1
        bucket = self._buckets.get(number)
        if bucket is not None:
            bucket.append(item)
            return
        self._buckets[number] = [item]
        heapq.heappush(self._due, number)
        if not self._firing and (self._timer is None or number < self._timer_bucket):
            self._arm(number)

    def discard(self, item: HasDeadline) -> None:
        """`item`'s entry went stale (its `_deadline` was set to 0 or moved): count it, and rebuild
        the buckets once stale entries are over half of them."""
        self._stale += 1
        if self._stale > _COMPACT_AFTER and self._stale * 2 > self._entries and not self._firing:
            self._rebuild()

    def _rebuild(self) -> None:
        resolution = self._resolution
        buckets: dict[int, list[HasDeadline]] = {}
        for number, bucket in self._buckets.items():
            live = [item for item in bucket if item._deadline and math.ceil(item._deadline / resolution) == number]
            if live:
                buckets[number] = live
        self._buckets = buckets
        self._due = list(buckets)
        heapq.heapify(self._due)
        self._entries = sum(len(bucket) for bucket in buckets.values())
        self._stale = 0
        if not self._due and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()
        self._due.clear()
        self._entries = self._stale = 0

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
                bucket = self._buckets.pop(heapq.heappop(due))
                self._entries -= len(bucket)
                for item in bucket:
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
