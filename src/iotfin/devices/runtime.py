"""What a serving process keeps about its devices beside the registry: the provenance guard, the
event log, the online/offline tracker, and the one periodic task that sweeps and writes them.

    runtime.ensure_running()   # from the event loop, by any transport; starts the task once
    runtime.close()            # flush what is buffered (shutdown)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np
from sqlalchemy import Engine

from iotfin.devices.events import DeviceEventLog
from iotfin.devices.guard import ProvenanceGuard
from iotfin.devices.registry import DeviceRegistry
from iotfin.devices.state import DeviceStateTracker

log = logging.getLogger(__name__)


class DeviceRuntime:
    def __init__(self, engine: Engine, registry: DeviceRegistry, load_devices: Callable[[np.ndarray], object] | None = None,
                 sweep_s: float = 1.0, persist_state_s: float = 2.0, event_flush_s: float = 0.5):
        self.events = DeviceEventLog(engine)
        self.state = DeviceStateTracker(engine, registry, self.events, load_devices)
        self.guard = ProvenanceGuard(engine, registry, load_devices=load_devices)
        self.sweep_s = sweep_s
        self.persist_state_s = persist_state_s
        self.event_flush_s = event_flush_s
        self._task: asyncio.Task[None] | None = None
        self._next_sweep = 0.0
        self._next_state = 0.0

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            backlog = asyncio.Event()

            def wake() -> None:  # from whichever thread recorded the event
                try:
                    loop.call_soon_threadsafe(backlog.set)
                except RuntimeError:  # that loop has closed: close() flushes what is left
                    pass

            self.events.on_backlog = wake
            self._task = loop.create_task(self._run(backlog))

    async def _run(self, backlog: asyncio.Event) -> None:
        while True:
            try:  # every event_flush_s, or as soon as a chunk of events is buffered
                await asyncio.wait_for(backlog.wait(), self.event_flush_s)
            except TimeoutError:
                pass
            backlog.clear()
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a database hiccup: what is buffered stays buffered for the next tick
                log.exception("device runtime tick failed")

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self._next_sweep:
            self.state.sweep()
            # at most ~2 % of a core: a sweep over 11 M online devices takes ~0.3 s, so a huge
            # fleet is swept every ~15 s (offline detection that much later), a small one every second
            self._next_sweep = now + max(self.sweep_s, 50 * (time.monotonic() - now))
        if force or now >= self._next_state:
            self.state.persist()
            self._next_state = now + self.persist_state_s
        self.events.flush()
        self.guard.persist([])  # counters of accepted messages that had no readings to commit

    async def aclose(self) -> None:
        self.events.on_backlog = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Write everything buffered: events, changed states, counters of unsigned-commit messages."""
        self.state.persist()
        self.events.flush()
        self.guard.persist([])
