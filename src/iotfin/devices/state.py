"""Online/offline state per device: compact arrays and a periodic sweep, not a timer per device.

Per device slot: last activity (uint32 epoch seconds, 4 bytes), open sessions (uint16, 2 bytes) and
an online flag (1 byte): 7 bytes, 77 MB for 11 M devices. Marking activity is two array stores; a
device goes offline when the sweep (every second or so) finds its last activity older than its
profile's inactivity timeout — one vectorised pass over the online devices, ~10 ms per million.

A device is online from its first activity (an MQTT connect, any message, any HTTP request) until
no activity for the profile's inactivity timeout, or its last MQTT session closed (ThingsBoard
marks a device inactive on disconnect too). An open MQTT session whose device sends nothing times
out like any silent device: keep-alive pings are transport, not device activity.

Every change is an event (`connect`, `disconnect`, `online`, `offline`) in the event log, and the
sweep writes the state of the devices that changed since its last write in one batch
(`device_state`), so `iotfin devices status` in another process sees it within a sweep or two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Engine

from iotfin.core.errors import NotFound
from iotfin.core.time import ms_to_datetime
from iotfin.core.time import now_ms as _now_ms
from iotfin.db.engine import write_transaction
from iotfin.devices import store
from iotfin.devices.events import DeviceEventLog
from iotfin.devices.registry import DeviceRegistry


class DeviceStateTracker:
    def __init__(self, engine: Engine, registry: DeviceRegistry, events: DeviceEventLog,
                 load_devices: Callable[[np.ndarray], object] | None = None):
        self.engine = engine
        # registers devices created by another process since the registry was loaded (in the sweep's
        # thread: the transports' calls above never wait on the database)
        self.load_devices = load_devices
        self.registry = registry
        self.events = events
        self._last = np.zeros(0, np.uint32)
        self._sessions = np.zeros(0, np.uint16)
        self._online = np.zeros(0, np.int8)
        self._connect_ms: dict[int, int] = {}  # only for devices with a change not yet written
        self._disconnect_ms: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._lock = threading.Lock()

    # --- what transports call ---------------------------------------------------------------------

    def activity(self, device_id: int, now_s: float | None = None) -> None:
        now = int(now_s if now_s is not None else time.time())
        if device_id >= self._last.size:
            self._grow(device_id + 1)
        self._last[device_id] = now
        if not self._online[device_id]:
            with self._lock:
                if not self._online[device_id]:
                    self._online[device_id] = 1
                    self.events.record(device_id, "online", at_ms=now * 1000)
        self._dirty.add(device_id)

    def connected(self, device_id: int, detail: dict[str, Any] | None = None) -> None:
        now = time.time()
        self.events.record(device_id, "connect", detail, at_ms=int(now * 1000))
        self.activity(device_id, now)
        with self._lock:
            self._sessions[device_id] = min(int(self._sessions[device_id]) + 1, 65535)
            self._connect_ms[device_id] = int(now * 1000)

    def disconnected(self, device_id: int, detail: dict[str, Any] | None = None) -> None:
        now_ms = int(time.time() * 1000)
        self.events.record(device_id, "disconnect", detail, at_ms=now_ms)
        if device_id >= self._last.size:
            self._grow(device_id + 1)
        with self._lock:
            left = max(int(self._sessions[device_id]) - 1, 0)
            self._sessions[device_id] = left
            self._disconnect_ms[device_id] = now_ms
            self._dirty.add(device_id)
            if left == 0 and self._online[device_id]:
                self._online[device_id] = 0
                self.events.record(device_id, "offline", {"why": "disconnected"}, at_ms=now_ms)

    # --- the sweep ----------------------------------------------------------------------------------

    def sweep(self, now_s: float | None = None) -> int:
        """Mark devices offline whose last activity is older than their profile's timeout; returns how many."""
        now = int(now_s if now_s is not None else time.time())
        online = np.flatnonzero(self._online)
        if online.size == 0:
            return 0
        profile, _ = self.registry.lookup(online)
        if self.load_devices is not None and (profile < 0).any():
            self.load_devices(online[profile < 0])
            profile, _ = self.registry.lookup(online)
        with self._lock:
            timeouts = np.array([p.inactivity_timeout_s for p in self.registry.profiles] + [3600], np.int64)
            expired = online[(now - self._last[online].astype(np.int64)) > timeouts[profile]]
            self._online[expired] = 0
        for device_id in expired.tolist():
            self.events.record(device_id, "offline", {"why": "inactivity_timeout"}, at_ms=now * 1000)
        self._dirty.update(expired.tolist())
        return int(expired.size)

    def persist(self) -> int:
        """Write the state of devices changed since the last write, in one statement."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            connects, self._connect_ms = self._connect_ms, {}
            disconnects, self._disconnect_ms = self._disconnect_ms, {}
        if not dirty:
            return 0
        rows = [{"device_id": d, "online": bool(self._online[d]),
                 "last_activity_ms": int(self._last[d]) * 1000 or None,
                 "last_connect_ms": connects.get(d), "last_disconnect_ms": disconnects.get(d)} for d in sorted(dirty)]
        try:
            self._upsert(rows)
        except Exception:
            with self._lock:  # retried on the next write
                self._dirty |= dirty
                self._connect_ms = connects | self._connect_ms
                self._disconnect_ms = disconnects | self._disconnect_ms
            raise
        return len(rows)

    def _upsert(self, rows: list[dict[str, Any]]) -> None:
        with write_transaction(self.engine) as conn:
            store.upsert_states(conn, rows)

    # --- reading ------------------------------------------------------------------------------------

    def knows(self, device_id: int) -> bool:
        return device_id < self._last.size and bool(self._last[device_id])

    def _grow(self, size: int) -> None:
        with self._lock:
            if size > self._last.size:
                new_size = max(size, int(self._last.size * 1.5))
                grow = new_size - self._last.size
                self._last = np.concatenate([self._last, np.zeros(grow, np.uint32)])
                self._sessions = np.concatenate([self._sessions, np.zeros(grow, np.uint16)])
                self._online = np.concatenate([self._online, np.zeros(grow, np.int8)])

    def reserve(self, size: int) -> None:
        self._grow(size)

    @property
    def nbytes(self) -> int:
        return int(self._last.nbytes + self._sessions.nbytes + self._online.nbytes)

    def snapshot(self, device_id: int) -> dict[str, Any] | None:
        if not self.knows(device_id):
            return None
        return {"online": bool(self._online[device_id]), "last_activity_ms": int(self._last[device_id]) * 1000,
                "sessions": int(self._sessions[device_id])}


def device_status(engine: Engine, registry: DeviceRegistry, device_id: int,
                  tracker: DeviceStateTracker | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """A device's connectivity: live from this process's tracker when it has seen the device,
    otherwise from the state the serving process last wrote (with the timeout applied, so a server
    that stopped does not leave its devices online forever)."""

    now = now_ms if now_ms is not None else _now_ms()
    with engine.connect() as conn:
        row = store.device_state(conn, device_id)
    if row is None:
        raise NotFound(f"no device {device_id}")
    timeout_ms = int(row.inactivity_timeout_s) * 1000
    live = tracker.snapshot(device_id) if tracker is not None else None
    last = live["last_activity_ms"] if live else row.last_activity_ms
    if live:
        online = live["online"]
    else:
        online = bool(row.online) and last is not None and now - last <= timeout_ms

    def when(ms: int | None) -> str | None:
        return None if ms is None else ms_to_datetime(ms).isoformat()

    return {"device_id": device_id, "name": row.name, "profile": row.profile, "online": online,
            "state": "online" if online else "offline", "state_zh": "在线" if online else "离线",
            "inactivity_timeout_s": int(row.inactivity_timeout_s), "last_activity": when(last),
            "last_connect": when(row.last_connect_ms), "last_disconnect": when(row.last_disconnect_ms),
            "source": "live" if live else "stored"}
