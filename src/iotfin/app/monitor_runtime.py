"""The monitor inside a server process (`iotfin serve`): subscribed to ingest, with its timer.

`MonitorRuntime(ws)` builds the MonitorService from the system of record (device metadata, prices),
with its ports wired: loan actions through the lending service, notices through the webhooks outbox
(`iotfin.app.monitor_actions`). `attach()` subscribes it to `ws.ingest.on_commit` (every transport's
commits go through that one IngestService); `run(stop)` is the timer, every `tick_s` seconds:

- `MonitorService.tick(now)`: heartbeat gaps and offline time, machine idleness, herd counts;
- prices: when the stored price series changed (an import by HTTP or CLI), the book is reloaded and
  every pledged lot re-valued (`on_prices`);
- trade documents: when a local business day has ended, that day's documents are checked
  (`check_trade_day`), and the vouchers past maturity or at risk of it become alerts on their core
  enterprise (`maturity_at_risk`, from `ReceivablesService.at_risk`);
- officers' resolutions: published and their loan actions released (`Resolutions.sweep`).

Ingest commits and the timer run on different threads; a lock serialises them on the signal state.
A failure of one tick is logged and counted (`iotfin_monitor_tick_errors_total`) and the next tick
runs; a failure inside the ingest subscriber is isolated by IngestService itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import date, timedelta
from typing import Any

import numpy as np
import prometheus_client
import pyarrow as pa

from iotfin.app.monitor_actions import LendingActions, Resolutions, WebhookNotifier
from iotfin.core.metrics import REGISTRY
from iotfin.core.time import now_ms
from iotfin.monitor.model import Change
from iotfin.monitor.prices import PriceBook
from iotfin.monitor.store import AlertStore, load_device_meta, load_enterprise_names_en, load_peer_groups

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
LOCAL_OFFSET_MS = 8 * 3_600_000
TICK_ERRORS = prometheus_client.Counter("iotfin_monitor_tick_errors_total", "monitor timer ticks that failed",
                                        registry=REGISTRY)
ALERT_CHANGES = prometheus_client.Counter("iotfin_monitor_alert_changes_total", "alert changes by kind",
                                          ["kind"], registry=REGISTRY)


def _date_of(day: int) -> date:
    """The local business date of a local day number (days since 1970-01-01)."""
    return date(1970, 1, 1) + timedelta(days=day)


def _local_day(ms: int) -> int:
    return (ms + LOCAL_OFFSET_MS) // DAY_MS


class MonitorRuntime:
    def __init__(self, ws: Any, tick_s: float = 60.0, clock: Any = now_ms):
        self.ws = ws
        self.tick_s = tick_s
        self.clock = clock
        meta, names = load_device_meta(ws.engine)
        self.store = AlertStore(ws.engine)
        self.actions = LendingActions(ws.engine, ws.lending)
        self.notifier = WebhookNotifier(ws.engine, ws.webhooks)
        self._price_rows = self.store.load_prices()
        prices = PriceBook()
        prices.add(self._price_rows)
        self.monitor = ws.monitor_service(meta, store=self.store, enterprise_names=names,
                                          enterprise_names_en=load_enterprise_names_en(ws.engine), loan_action=self.actions,
                                          notify=self.notifier, prices=prices)
        self.monitor.set_peer_groups(load_peer_groups(ws.engine))  # firm-specific vs sector-wide stops
        self.store.rules_version = self.monitor.rules.version
        self.resolutions = Resolutions(ws.engine, self.notifier, self.actions)
        self.lock = threading.Lock()
        self.day = _local_day(self.clock())  # the business day whose trade documents are checked next
        self.ticks = 0
        self.tick_errors = 0
        self.reloads = 0  # fleet reloads for devices registered while serving
        self._unmonitorable = np.zeros(0, np.int64)

    def attach(self) -> MonitorRuntime:
        """Subscribe to ingest. The demo's bulk-load monitor, if the demo ran in this process, has done
        its job and is unsubscribed: one monitor owns the alert book."""
        bulk = self.ws.bulk_load_monitor
        if bulk is not None and bulk in self.ws.ingest.on_commit:
            self.ws.ingest.on_commit.remove(bulk)
        self.ws.ingest.on_commit.append(self.on_commit)
        return self

    def detach(self) -> None:
        if self.on_commit in self.ws.ingest.on_commit:
            self.ws.ingest.on_commit.remove(self.on_commit)

    def on_commit(self, stored: pa.Table) -> list[Change]:
        with self.lock:
            self._learn(stored)
            return self._count(self.monitor.on_commit(stored))

    def _learn(self, stored: pa.Table) -> None:
        """Devices registered since the monitor started (or since it last looked) are monitored from
        their first reading: the fleet is reloaded from the system of record and the monitor adopts
        it, keeping the state of the devices it knew. Ids still unknown after a reload (a device not
        active, or of a type the monitor has no signal for) are not looked up again."""
        if stored.num_rows == 0 or "device_id" not in stored.column_names:
            return
        ids = np.unique(stored["device_id"].to_numpy())
        ids = ids[~np.isin(ids, self._unmonitorable)] if self._unmonitorable.size else ids
        if self.monitor.knows(ids):
            return
        meta, names = load_device_meta(self.ws.engine)
        self.monitor.adopt(meta, names, load_enterprise_names_en(self.ws.engine))
        self.monitor.set_peer_groups(load_peer_groups(self.ws.engine))
        self.reloads += 1
        still = ids[~np.array([0 < i < meta.size and meta.enterprise[i] >= 0 for i in ids.tolist()], bool)]
        self._unmonitorable = np.union1d(self._unmonitorable, still)

    def tick(self, now: int | None = None) -> list[Change]:
        now = self.clock() if now is None else now
        with self.lock:
            changes = self.monitor.tick(now)
            rows = self.store.load_prices()
            if rows != self._price_rows:
                book = PriceBook()
                book.add(rows)
                self.monitor.prices, self._price_rows = book, rows
                changes += self.monitor.on_prices()
            while self.day < _local_day(now):
                day_end = (self.day + 1) * DAY_MS - LOCAL_OFFSET_MS
                changes += self.monitor.check_trade_day(self.ws.engine, self.day, day_end)
                # vouchers past maturity at the end of the day, or at risk of it, as alerts on their core
                changes += self.monitor.maturity_at_risk(self.ws.receivables.at_risk(_date_of(self.day + 1)), day_end)
                self.day += 1
        self.resolutions.sweep()
        self.ticks += 1
        return self._count(changes)

    @staticmethod
    def _count(changes: list[Change]) -> list[Change]:
        for change in changes:
            ALERT_CHANGES.labels(kind=change.kind).inc()
        return changes

    async def run(self, stop: asyncio.Event) -> None:
        """The timer: tick every `tick_s` until `stop` is set; a failing tick is logged and counted."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.tick)
            except Exception:
                self.tick_errors += 1
                TICK_ERRORS.inc()
                log.exception("monitor tick failed")
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, self.tick_s - (time.monotonic() - started)))
            except TimeoutError:
                pass
