"""Streaming signals, computed incrementally from each committed batch of readings.

`SignalEngine.on_commit(stored)` is an ingest subscriber: it sees every batch right after it is durable,
updates compact per-device state held in numpy arrays indexed by device id, and returns the *changes*
of discrete signal states (`SignalEvent`). It never re-reads history. `tick(now)` advances the clock
for the signals that depend on silence (heartbeat gaps, livestock counts).

Late and out-of-order readings (see docs/monitoring.md):
- bucketed signals (inventory peak, machine runtime) keep 24 hourly buckets per device keyed by the
  hour of the reading's own timestamp; a late reading updates its hour's bucket if that hour is still
  within the device's last 24 hours, and the signal is recomputed from the buckets;
- ordered signals (energy counter, door/seal/geofence/band runs) process a batch in timestamp order
  after the state they carry; a reading older than the device's last processed one cannot end a
  run that has later evidence, but if it shows a condition (seal broken, outside the fence) it
  raises a one-shot event at its own timestamp;
- heartbeat state keeps the newest timestamp seen, so a late reading never makes a device "dark".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from iotfin.monitor.model import DeviceMeta, SignalEvent, Thresholds
from iotfin.telemetry.daily import DAILY_SCHEMA
from iotfin.telemetry.model import sort_order

HOUR_MS = 3_600_000
RING_HOURS = 24
LOCAL_OFFSET_MS = 8 * HOUR_MS  # Asia/Shanghai, no DST: night-time rules use local hours
NO_TS = np.iinfo(np.int64).min
Cols = tuple[np.ndarray, np.ndarray, np.ndarray]  # device ids, timestamps, values
_SIGNAL_KEYS = frozenset({"weight_t", "volume_m3", "runtime_min", "energy_kwh", "door_open", "seal_intact", "lat", "lon",
                          "speed_kmh", "temperature_c", "humidity_pct"})


def _group_bounds(sorted_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start index, device id) of each run of equal ids in a sorted array."""
    if sorted_ids.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    return starts, sorted_ids[starts]


def run_since(ids: np.ndarray, ts: np.ndarray, flag: np.ndarray, carry: np.ndarray) -> np.ndarray:
    """For readings sorted by (device, ts): the start time of the run of consecutive True flags each
    reading belongs to (NO_TS where the flag is False). A run open at a device's first reading in
    the batch continues from `carry[i]` (the state's run start, NO_TS if none), indexed by group."""
    n = ids.size
    idx = np.arange(n)
    starts, _ = _group_bounds(ids)
    first = np.zeros(n, bool)
    first[starts] = True
    prev_flag = np.r_[False, flag[:-1]] & ~first
    run_start = np.where(flag & ~prev_flag, idx, -1)
    run_start = np.maximum.accumulate(run_start) if n else run_start
    since = np.where(flag, ts[np.maximum(run_start, 0)], NO_TS)
    # A run beginning at the group's first reading continues a run carried over from state.
    group_of = np.cumsum(first) - 1
    carried = carry[group_of]
    continues = flag & (run_start == starts[group_of]) & (carried != NO_TS)
    return np.where(continues, carried, since)


@dataclass
class _Ring:
    """24 hourly buckets per device row: float32 value + int32 hour (8 bytes a bucket)."""

    rows: int
    mode: str  # "max" or "sum"
    value: np.ndarray = field(init=False)
    hour: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.value = np.zeros((self.rows, RING_HOURS), np.float32)
        self.hour = np.full((self.rows, RING_HOURS), -1, np.int32)

    def add(self, rows: np.ndarray, hours: np.ndarray, values: np.ndarray, newest_hour: np.ndarray) -> None:
        """Fold readings into their hour's bucket; hours older than a row's newest-24 are ignored."""
        keep = hours > newest_hour[rows] - RING_HOURS
        rows, hours, values = rows[keep], hours[keep], values[keep]
        slot = hours % RING_HOURS
        flat = rows * RING_HOURS + slot
        h = self.hour.reshape(-1)
        v = self.value.reshape(-1)
        # A slot holding an older hour is recycled: every reading of a slot in this batch has the same
        # hour (they are all within one 24 h window), so reset once, then accumulate.
        stale = h[flat] < hours
        v[flat[stale]] = -np.inf if self.mode == "max" else 0.0
        h[flat[stale]] = hours[stale]
        fresh = h[flat] == hours
        if self.mode == "max":
            np.maximum.at(v, flat[fresh], values[fresh].astype(np.float32))
        else:
            np.add.at(v, flat[fresh], values[fresh].astype(np.float32))

    def window(self, rows: np.ndarray, newest_hour: np.ndarray, hours: int = RING_HOURS) -> np.ndarray:
        """Buckets of each row within `hours` of its newest hour; outside ones masked as NaN."""
        h = self.hour[rows]
        v = self.value[rows].astype(np.float64)
        valid = (h > newest_hour[:, None] - hours) & (h >= 0)
        return np.where(valid, v, np.nan)


class SignalEngine:
    """Per-device signal state for a fleet; see the module docstring for the update rules."""

    def __init__(self, meta: DeviceMeta, thresholds: Thresholds | None = None):
        self.meta = meta
        self.t = thresholds or Thresholds()
        n = meta.size
        # --- every device: heartbeat (8 + 8 + 1 bytes)
        self.last_ts = np.full(n, NO_TS, np.int64)
        self.offline_ms = np.zeros(n, np.int64)
        self.dark = np.zeros(n, np.int8)
        # --- per-signal rows for the device types that have them (secondary index: -1 = none)
        self.stock_row = _rows_for(meta.is_stock)
        self.machine_row = _rows_for(meta.is_type("machine_sensor"))
        self.meter_row = _rows_for(meta.is_type("electricity_meter"))
        self.door_row = _rows_for(meta.is_type("door_seal"))
        self.gps_row = _rows_for(meta.is_type("gps_tracker"))
        self.env_row = _rows_for(meta.is_type("env_sensor"))
        ns, nm, ne = int(meta.is_stock.sum()), int((self.machine_row >= 0).sum()), int((self.meter_row >= 0).sum())
        nd, ng, nv = int((self.door_row >= 0).sum()), int((self.gps_row >= 0).sum()), int((self.env_row >= 0).sum())
        # stock: hourly peak ring, latest value and its time, quantised drop level
        self.stock_ring = _Ring(ns, "max")
        self.stock_last = np.full(ns, np.nan)
        self.stock_last_ts = np.full(ns, NO_TS, np.int64)
        self.stock_level = np.zeros(ns, np.int8)  # drop in 5 % steps
        # machines: hourly runtime ring, newest reading, last time runtime was > 0, idle flag
        self.runtime_ring = _Ring(nm, "sum")
        self.machine_last_ts = np.full(nm, NO_TS, np.int64)
        self.machine_active_ts = np.full(nm, NO_TS, np.int64)
        self.machine_first_ts = np.full(nm, np.iinfo(np.int64).max, np.int64)
        # meters: energy counter order check
        self.energy_last_ts = np.full(ne, NO_TS, np.int64)
        self.energy_last = np.full(ne, np.nan)
        self.energy_peak = np.full(ne, -np.inf)
        self.energy_back = np.zeros(ne, np.int8)
        # doors: seal broken and after-hours-open runs
        self.door_last_ts = np.full(nd, NO_TS, np.int64)
        self.seal_last_ts = np.full(nd, NO_TS, np.int64)
        self.seal_since = np.full(nd, NO_TS, np.int64)
        self.open_since = np.full(nd, NO_TS, np.int64)
        self.open_flag = np.zeros(nd, np.int8)
        # GPS: outside-fence and risk-dwell runs
        self.gps_last_ts = np.full(ng, NO_TS, np.int64)
        self.out_since = np.full(ng, NO_TS, np.int64)
        self.risk_since = np.full(ng, NO_TS, np.int64)
        self.risk_flag = np.zeros(ng, np.int8)
        # GPS: the top speed of the vehicle's current local day (the risk feature `c_deliveries_without_gps_90d`
        # reads a day's top speed; the trade check hands it these as that day's rollup rows)
        self.speed_day = np.full(ng, -1, np.int32)
        self.speed_max = np.zeros(ng, np.float32)
        self.fix_lat = np.full(ng, np.nan, np.float32)  # the newest fix, for the speed between fixes
        self.fix_lon = np.full(ng, np.nan, np.float32)
        # environment: out-of-band run
        self.env_last_ts = np.full((2, nv), NO_TS, np.int64)
        self.band_since = np.full((2, nv), NO_TS, np.int64)  # temperature, humidity
        self.band_flag = np.zeros((2, nv), np.int8)
        # enterprises: machine idle flag, livestock count baseline and level
        ents = meta.enterprise_count
        self.ent_idle = np.zeros(ents, np.int8)
        self.ent_busy_ts = np.full(ents, NO_TS, np.int64)
        self.herd_peak = np.zeros(ents, np.int32)
        self.herd_level = np.zeros(ents, np.int8)
        self.now = NO_TS
        self.readings_seen = 0
        self.unmonitored = 0

    # ------------------------------------------------------------------ a fleet that grows

    # per-signal state, by the secondary index that rows it (`<family>_row`); rings and 2-D arrays are
    # rowed on their last axis (env: temperature, humidity × rows), rings on their first
    _FAMILIES = {
        "stock": ("stock_ring", "stock_last", "stock_last_ts", "stock_level"),
        "machine": ("runtime_ring", "machine_last_ts", "machine_active_ts", "machine_first_ts"),
        "meter": ("energy_last_ts", "energy_last", "energy_peak", "energy_back"),
        "door": ("door_last_ts", "seal_last_ts", "seal_since", "open_since", "open_flag"),
        "gps": ("gps_last_ts", "out_since", "risk_since", "risk_flag", "speed_day", "speed_max", "fix_lat", "fix_lon"),
        "env": ("env_last_ts", "band_since", "band_flag"),
    }
    _PER_DEVICE = ("last_ts", "offline_ms", "dark")
    _PER_ENTERPRISE = ("ent_idle", "ent_busy_ts", "herd_peak", "herd_level")

    def grown(self, meta: DeviceMeta) -> SignalEngine:
        """A signal engine for `meta` (the fleet with devices registered since) that carries this one's
        state over for every device both know: devices registered while serving are monitored at once,
        the others lose nothing (runs, rings, baselines)."""
        new = SignalEngine(meta, self.t)
        n = min(self.meta.size, meta.size)
        for name in self._PER_DEVICE:
            getattr(new, name)[:n] = getattr(self, name)[:n]
        for family, names in self._FAMILIES.items():
            old_rows, new_rows = getattr(self, f"{family}_row")[:n], getattr(new, f"{family}_row")[:n]
            keep = (old_rows >= 0) & (new_rows >= 0)
            src, dst = old_rows[keep], new_rows[keep]
            for name in names:
                old_v, new_v = getattr(self, name), getattr(new, name)
                if isinstance(old_v, _Ring):
                    new_v.value[dst], new_v.hour[dst] = old_v.value[src], old_v.hour[src]
                else:
                    new_v[..., dst] = old_v[..., src]
        ents = min(self.meta.enterprise_count, meta.enterprise_count)
        for name in self._PER_ENTERPRISE:
            getattr(new, name)[:ents] = getattr(self, name)[:ents]
        new.now, new.readings_seen, new.unmonitored = self.now, self.readings_seen, self.unmonitored
        return new

    # ------------------------------------------------------------------ memory

    def state_bytes(self) -> dict[str, Any]:
        """Bytes of signal state: total, per device of the fleet, and per device of each kind."""
        total = 0
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                total += value.nbytes
            elif isinstance(value, _Ring):
                total += value.value.nbytes + value.hour.nbytes
        per_kind = {
            "every_device": 8 + 8 + 1 + 6 * 4,  # heartbeat + six secondary-index int32
            "stock": RING_HOURS * 8 + 8 + 8 + 1,
            "machine_sensor": RING_HOURS * 8 + 8 + 8 + 8,
            "electricity_meter": 8 + 8 + 8 + 1,
            "door_seal": 4 * 8 + 1,
            "gps_tracker": 8 + 8 + 8 + 1 + 4 + 4 + 4 + 8,
            "env_sensor": 2 * (8 + 8 + 1),
        }
        return {"total": total, "devices": self.meta.size, "per_device": round(total / max(self.meta.size, 1), 1),
                "per_kind": per_kind}

    # ------------------------------------------------------------------ ingest subscriber

    def on_commit(self, stored: pa.Table) -> list[SignalEvent]:
        if stored.num_rows == 0:
            return []
        encoded = pc.dictionary_encode(stored["key"]).combine_chunks()
        return self.on_columns(stored["device_id"].to_numpy(), stored["ts"].to_numpy(), encoded.indices.to_numpy(),
                               encoded.dictionary.to_pylist(), stored["value"].to_numpy())

    def on_columns(self, ids: np.ndarray, ts: np.ndarray, codes: np.ndarray, names: list[str], values: np.ndarray,
                   presorted: bool = False) -> list[SignalEvent]:
        """`on_commit` on the batch's columns (key as dictionary codes into `names`). The batch is put in
        (device, ts) order once here — every signal below reads its rows in that order — unless the
        caller says it already is (`MonitorService.on_commit_bulk` sorts a whole bulk batch once)."""
        if ids.size == 0:
            return []
        known = (ids > 0) & (ids < self.meta.size) & (self.meta.enterprise[np.clip(ids, 0, self.meta.size - 1)] >= 0)
        if not known.all():
            # Ingest already refused unknown devices; these are registered but not (yet) in the
            # monitor's device metadata. Counted, never silently mixed into another device's state.
            self.unmonitored += int((~known).sum())
            ids, ts, codes, values = ids[known], ts[known], codes[known], values[known]
            if ids.size == 0:
                return []
        if not presorted and not _is_sorted(ids, ts):
            order = sort_order(ids, ts)
            ids, ts, codes, values = ids[order], ts[order], codes[order], values[order]
        self.readings_seen += int(ids.size)
        events: list[SignalEvent] = []
        events += self._heartbeat(ids, ts)
        by_key: dict[str, Cols] = {}
        for code, key in enumerate(names):
            if key in _SIGNAL_KEYS:
                idx = np.flatnonzero(codes == code)
                if idx.size:
                    by_key[key] = (ids[idx], ts[idx], values[idx])
        for key in ("weight_t", "volume_m3"):
            if key in by_key:
                events += self._stock(by_key[key])
        if "runtime_min" in by_key:
            events += self._machines(by_key["runtime_min"])
        if "energy_kwh" in by_key:
            events += self._energy(by_key["energy_kwh"])
        if "door_open" in by_key or "seal_intact" in by_key:
            events += self._doors(by_key.get("door_open"), by_key.get("seal_intact"))
        if "lat" in by_key and "lon" in by_key:
            events += self._gps(by_key["lat"], by_key["lon"])
        if "speed_kmh" in by_key:
            self._speed(by_key["speed_kmh"])
        for key in ("temperature_c", "humidity_pct"):
            if key in by_key:
                events += self._band(by_key[key], key)
        return events

    # ------------------------------------------------------------------ clock

    def tick(self, now_ms: int) -> list[SignalEvent]:
        """Silence-based signals as of `now_ms` (heartbeat gaps, machine idleness, livestock counts).

        The caller's clock is the authority here, not the newest timestamp seen: a bulk load that holds
        one device type's day before another's must not make the lagging type look silent."""
        self.now = max(self.now, now_ms)
        events: list[SignalEvent] = []
        heard = self.last_ts != NO_TS
        limit = self.meta.dark_after_ms
        gone = heard & (self.dark == 0) & (now_ms - self.last_ts > limit)
        for d in np.flatnonzero(gone):
            self.dark[d] = 1
            events.append(self._event(int(d), "device_dark", 1.0, True, int(self.last_ts[d]),
                                      gap_h=round((now_ms - int(self.last_ts[d])) / HOUR_MS, 1)))
        events += self._idle(now_ms)
        events += self._herd(now_ms)
        return events

    # ------------------------------------------------------------------ signals

    def _event(self, device: int, signal: str, value: float, active: bool, ts: int, **detail: Any) -> SignalEvent:
        return SignalEvent(signal=signal, device_id=device, enterprise_id=int(self.meta.enterprise[device]),
                           device_type=self.meta.type_of(device), value=float(value), active=active,
                           ts=int(ts), detected_at=int(max(self.now, ts)), detail=detail)

    def _ent_event(self, enterprise: int, signal: str, value: float, active: bool, ts: int, **detail: Any) -> SignalEvent:
        return SignalEvent(signal=signal, device_id=None, enterprise_id=int(enterprise), device_type="",
                           value=float(value), active=active, ts=int(ts), detected_at=int(max(self.now, ts)),
                           detail=detail)

    def _heartbeat(self, ids: np.ndarray, ts: np.ndarray) -> list[SignalEvent]:
        ids, ts = _in_order(ids, ts)
        starts, dev = _group_bounds(ids)
        last_idx = np.r_[starts[1:], ids.size] - 1
        events = []
        # Silences inside the batch (a bulk load or a gateway's backfill spans hours): a gap longer
        # than the device's limit between two readings, or after the last one known, is a dark spell
        # that has already ended. A device the clock already took for dark is handled below.
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, ids.size]))
        base = np.where(self.dark[dev] == 1, NO_TS, self.last_ts[dev])
        prev = np.r_[NO_TS, ts[:-1]]
        prev[starts] = NO_TS
        prev = np.maximum(prev, base[group])  # a late reading cannot open a gap before a newer one
        limit = self.meta.dark_after_ms[ids]
        gap = (prev != NO_TS) & (ts - prev > limit)
        for j in np.flatnonzero(gap):
            d = int(ids[j])
            self.offline_ms[d] += int(ts[j] - prev[j])
            hours = round(int(ts[j] - prev[j]) / HOUR_MS, 1)
            events.append(self._event(d, "device_dark", 1.0, True, int(prev[j] + limit[j]), gap_h=hours, in_batch=True))
            events.append(self._event(d, "device_dark", 0.0, False, int(ts[j]), gap_h=hours))
        for i in np.flatnonzero(self.dark[dev] == 1):
            d = int(dev[i])
            first = int(ts[starts[i]])
            gap_ms = max(first - int(self.last_ts[d]), 0)
            self.offline_ms[d] += gap_ms
            self.dark[d] = 0
            events.append(self._event(d, "device_dark", 0.0, False, first, gap_h=round(gap_ms / HOUR_MS, 1)))
        self.last_ts[dev] = np.maximum(self.last_ts[dev], ts[last_idx])
        self.now = max(self.now, int(ts[last_idx].max()))
        return events

    def _sorted(self, cols: Cols, row_of: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ids, ts, values = cols
        rows = row_of[ids]
        keep = rows >= 0
        ids, rows, ts, values = ids[keep], rows[keep], ts[keep], values[keep]
        if _is_sorted(ids, ts):
            return ids, rows, ts, values
        order = sort_order(ids, ts)
        return ids[order], rows[order], ts[order], values[order]

    def _stock(self, cols: Cols) -> list[SignalEvent]:
        ids, rows, ts, values = self._sorted(cols, self.stock_row)
        if ids.size == 0:
            return []
        starts, dev = _group_bounds(ids)
        r = rows[starts]
        last_idx = np.r_[starts[1:], ids.size] - 1
        newer = ts[last_idx] > self.stock_last_ts[r]
        self.stock_last[r[newer]] = values[last_idx][newer]
        self.stock_last_ts[r[newer]] = ts[last_idx][newer]
        newest_hour = np.full(self.stock_ring.rows, -1, np.int64)
        newest_hour[r] = self.stock_last_ts[r] // HOUR_MS
        self.stock_ring.add(rows, ts // HOUR_MS, values, newest_hour)
        peak = np.nanmax(self.stock_ring.window(r, newest_hour[r]), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            drop = np.where(peak > 0, 1.0 - self.stock_last[r] / peak, 0.0)
        level = np.clip(np.floor(np.nan_to_num(drop) * 20 + 1e-9), 0, 20).astype(np.int8)
        events = []
        for i in np.flatnonzero(level != self.stock_level[r]):
            self.stock_level[r[i]] = level[i]
            events.append(self._event(int(dev[i]), "inventory_drop", level[i] / 20, bool(level[i] > 0),
                                      int(self.stock_last_ts[r[i]]), peak=round(float(peak[i]), 3),
                                      quantity=round(float(self.stock_last[r[i]]), 3)))
        return events

    def stock_quantity(self, device_ids: np.ndarray) -> np.ndarray:
        """Latest measured quantity (t or m³) of stock devices; NaN where never heard."""
        rows = self.stock_row[device_ids]
        return np.where(rows >= 0, self.stock_last[np.maximum(rows, 0)], np.nan)

    def _machines(self, cols: Cols) -> list[SignalEvent]:
        ids, rows, ts, values = self._sorted(cols, self.machine_row)
        if ids.size == 0:
            return []
        events = self._idle_in_batch(ids[values > 0], ts[values > 0])
        starts, _ = _group_bounds(ids)
        r = rows[starts]
        np.maximum.at(self.machine_last_ts, rows, ts)
        np.minimum.at(self.machine_first_ts, rows, ts)
        busy = values > 0
        np.maximum.at(self.machine_active_ts, rows[busy], ts[busy])
        newest_hour = np.full(self.runtime_ring.rows, -1, np.int64)
        newest_hour[r] = self.machine_last_ts[r] // HOUR_MS
        self.runtime_ring.add(rows, ts // HOUR_MS, values, newest_hour)
        return events

    def _idle_in_batch(self, ids: np.ndarray, ts: np.ndarray) -> list[SignalEvent]:
        """Enterprise-wide pauses between busy machine readings inside one batch (bulk loads): a pause
        of at least `idle_after` is an idle spell that has already ended. Spells the clock caught
        (`tick`) are not raised twice."""
        ents = self.meta.enterprise[ids]
        order = sort_order(ents, ts)
        ents, ts = ents[order], ts[order]
        starts, ent = _group_bounds(ents)
        if ent.size == 0:
            return []
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, ents.size]))
        prev = np.r_[NO_TS, ts[:-1]]
        prev[starts] = NO_TS
        prev = np.maximum(prev, np.where(self.ent_idle[ent] == 1, NO_TS, self.ent_busy_ts[ent])[group])
        events = []
        for j in np.flatnonzero((prev != NO_TS) & (ts - prev >= self.t.idle_after_ms)):
            e = int(ents[j])
            hours = round(int(ts[j] - prev[j]) / HOUR_MS, 1)
            events.append(self._ent_event(e, "production_idle", hours, True, int(prev[j] + self.t.idle_after_ms),
                                          idle_h=hours, in_batch=True))
            events.append(self._ent_event(e, "production_idle", 0.0, False, int(ts[j])))
        last_idx = np.r_[starts[1:], ents.size] - 1
        self.ent_busy_ts[ent] = np.maximum(self.ent_busy_ts[ent], ts[last_idx])
        return events

    def operating_rate(self) -> np.ndarray:
        """Per enterprise: machine runtime over each machine's last 24 h / minutes in 24 h (NaN: no machines)."""
        ents = self.meta.enterprise_count
        devices = np.flatnonzero(self.machine_row >= 0)
        rows = self.machine_row[devices]
        heard = self.machine_last_ts[rows] != NO_TS
        devices, rows = devices[heard], rows[heard]
        minutes = np.nansum(self.runtime_ring.window(rows, self.machine_last_ts[rows] // HOUR_MS), axis=1)
        total = np.bincount(self.meta.enterprise[devices], weights=minutes, minlength=ents)
        count = np.bincount(self.meta.enterprise[devices], minlength=ents)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / (count * 24 * 60), np.nan)

    def _idle(self, now: int) -> list[SignalEvent]:
        """Enterprise-level: every machine that reported lately has shown zero runtime for `idle_after`."""
        devices = np.flatnonzero(self.machine_row >= 0)
        if devices.size == 0:
            return []
        rows = self.machine_row[devices]
        ents = self.meta.enterprise[devices]
        reporting = self.machine_last_ts[rows] > now - self.t.machine_reporting_ms
        last_busy = np.full(self.meta.enterprise_count, NO_TS, np.int64)
        np.maximum.at(last_busy, ents[reporting], np.maximum(self.machine_active_ts[rows[reporting]], self.machine_first_ts[rows[reporting]]))
        reporters = np.bincount(ents[reporting], minlength=self.meta.enterprise_count)
        heard = np.zeros(self.meta.enterprise_count, bool)
        heard[ents[self.machine_last_ts[rows] != NO_TS]] = True
        idle = (reporters > 0) & (now - last_busy >= self.t.idle_after_ms)
        events = []
        for e in np.flatnonzero(idle & (self.ent_idle == 0)):
            self.ent_idle[e] = 1
            events.append(self._ent_event(int(e), "production_idle", (now - last_busy[e]) / HOUR_MS, True,
                                          int(last_busy[e]), idle_h=round((now - int(last_busy[e])) / HOUR_MS, 1)))
        busy_again = heard & (self.ent_idle == 1) & ~idle & (reporters > 0)
        for e in np.flatnonzero(busy_again):
            self.ent_idle[e] = 0
            events.append(self._ent_event(int(e), "production_idle", 0.0, False, int(last_busy[e])))
        return events

    def _energy(self, cols: Cols) -> list[SignalEvent]:
        ids, rows, ts, values = self._sorted(cols, self.meter_row)
        if ids.size == 0:
            return []
        # Late readings (not newer than the last processed one) cannot say the counter ran backwards.
        fresh = ts > self.energy_last_ts[rows]
        ids, rows, ts, values = ids[fresh], rows[fresh], ts[fresh], values[fresh]
        if ids.size == 0:
            return []
        starts, dev = _group_bounds(ids)
        r = rows[starts]
        first = np.zeros(ids.size, bool)
        first[starts] = True
        prev = np.r_[np.nan, values[:-1]]
        prev[starts] = self.energy_last[r]
        step_back = values < prev - self.t.counter_epsilon
        peaks = np.maximum.reduceat(values, starts)
        last_idx = np.r_[starts[1:], ids.size] - 1
        self.energy_last[r] = values[last_idx]
        self.energy_last_ts[r] = ts[last_idx]
        self.energy_peak[r] = np.maximum(self.energy_peak[r], peaks)
        behind = self.energy_last[r] < self.energy_peak[r] - self.t.counter_epsilon
        any_back = np.logical_or.reduceat(step_back, starts)
        first_back = np.where(any_back, np.r_[ts, 0][np.minimum(_first_true(step_back, starts), ids.size)], 0)
        events = []
        was_v = self.energy_back[r] == 1
        for i in np.flatnonzero((~was_v & (any_back | behind)) | (was_v & ~behind & ~any_back)):
            was = bool(self.energy_back[r[i]])
            now_back = bool(behind[i])
            if (any_back[i] or now_back) and not was:
                self.energy_back[r[i]] = 1
                events.append(self._event(int(dev[i]), "counter_regression", 1.0, True, int(first_back[i] or ts[last_idx[i]]),
                                          peak_kwh=round(float(self.energy_peak[r[i]]), 2),
                                          value_kwh=round(float(self.energy_last[r[i]]), 2)))
            elif was and not now_back and not any_back[i]:
                self.energy_back[r[i]] = 0
                events.append(self._event(int(dev[i]), "counter_regression", 0.0, False, int(ts[last_idx[i]])))
        return events

    def _runs(self, cols: Cols, row_of: np.ndarray, last_ts: np.ndarray, since: np.ndarray,
              flag_fn: Any, signal: str, min_ms: int, active: np.ndarray | None,
              value_fn: Any = None) -> list[SignalEvent]:
        """Generic run-length condition: `flag_fn(ids, ts, values)` per reading; the condition holds once
        a run of True lasts `min_ms` (0: at once), and ends at the first False after it."""
        ids, rows, ts, values = self._sorted(cols, row_of)
        if ids.size == 0:
            return []
        flags = flag_fn(ids, ts, values)
        late = ts <= last_ts[rows]
        events = []
        for j in np.flatnonzero(late & flags):
            events.append(self._event(int(ids[j]), signal, 1.0, True, int(ts[j]), late=True, one_shot=True))
        ids, rows, ts, values, flags = ids[~late], rows[~late], ts[~late], values[~late], flags[~late]
        if ids.size == 0:
            return events
        starts, dev = _group_bounds(ids)
        r = rows[starts]
        run = run_since(ids, ts, flags, since[r])
        held = (run != NO_TS) & (ts - run >= min_ms)
        last_idx = np.r_[starts[1:], ids.size] - 1
        last_ts[r] = ts[last_idx]
        since[r] = run[last_idx]
        state = active
        was_v = state[r] == 1
        any_held = np.logical_or.reduceat(held, starts)
        all_flags = np.logical_and.reduceat(flags, starts)
        # Only devices whose condition may change are looked at one by one.
        for i in np.flatnonzero((~was_v & any_held) | (was_v & ~all_flags)):
            seg = slice(starts[i], last_idx[i] + 1)
            was = bool(state[r[i]])
            h = held[seg]
            if not was and h.any():
                j = starts[i] + int(np.argmax(h))
                state[r[i]] = 1
                extra = value_fn(j) if value_fn else {}
                events.append(self._event(int(dev[i]), signal, 1.0, True, int(ts[j]), since=int(run[j]), **extra))
                was = True
                after = flags[j:last_idx[i] + 1]
                if not after.all():
                    k = j + int(np.argmin(after))
                    state[r[i]] = 0
                    events.append(self._event(int(dev[i]), signal, 0.0, False, int(ts[k])))
            elif was and not flags[seg].all():
                k = starts[i] + int(np.argmin(flags[seg]))
                state[r[i]] = 0
                events.append(self._event(int(dev[i]), signal, 0.0, False, int(ts[k])))
                h2 = held[k:last_idx[i] + 1]
                if h2.any():
                    j = k + int(np.argmax(h2))
                    state[r[i]] = 1
                    events.append(self._event(int(dev[i]), signal, 1.0, True, int(ts[j]), since=int(run[j])))
        return events

    def _doors(self, door: Cols | None, seal: Cols | None) -> list[SignalEvent]:
        events = []
        if seal is not None:
            seal_state = (self.seal_since != NO_TS).astype(np.int8)
            events += self._runs(seal, self.door_row, self.seal_last_ts, self.seal_since,
                                 lambda i, t, v: v < 0.5, "seal_broken", 0, seal_state)
        if door is not None:
            night = self.t.night_hours

            def after_hours(i: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
                hour = ((t + LOCAL_OFFSET_MS) // HOUR_MS) % 24
                return (v > 0.5) & ((hour >= night[0]) | (hour < night[1]))

            events += self._runs(door, self.door_row, self.door_last_ts, self.open_since, after_hours,
                                 "door_open_after_hours", self.t.door_open_min_ms, self.open_flag)
        return events

    def _gps(self, lat: Cols, lon: Cols) -> list[SignalEvent]:
        ids, ts, y, x = _pair(lat, lon)
        fence_of = self.meta.fence[ids]
        fenced = fence_of >= 0
        outside = np.zeros(ids.size, bool)
        if fenced.any() and self.meta.fences is not None:
            f = fence_of[fenced]
            cx, cy = self.meta.fence_centre[f].T
            # Most fixes are near the depot: inside the fence's inner circle, no polygon test needed.
            near = (x[fenced] - cx) ** 2 + (y[fenced] - cy) ** 2 < self.meta.fence_inner[f] ** 2
            test = np.flatnonzero(fenced)[~near]
            outside[test] = ~shapely.contains_xy(self.meta.fences[fence_of[test]], x[test], y[test])
        in_risk = np.zeros(ids.size, bool)
        if self.meta.risk_zones is not None and len(self.meta.risk_zones):
            # any risk zone: vectorised over points with the zones' STRtree
            tree = self.meta.risk_tree
            hits = tree.query(shapely.points(x, y), predicate="within")
            in_risk[np.unique(hits[0])] = True
        self._fix_speed(ids, ts, y, x)
        flags = (ids, ts, outside.astype(np.float64))
        risk = (ids, ts, in_risk.astype(np.float64))
        out_state = (self.out_since != NO_TS).astype(np.int8)
        last = self.gps_last_ts.copy()
        events = self._runs(flags, self.gps_row, last, self.out_since, lambda i, t, v: v > 0.5, "geofence_exit", 0,
                            out_state)
        events += self._runs(risk, self.gps_row, self.gps_last_ts, self.risk_since, lambda i, t, v: v > 0.5,
                             "risk_dwell", self.t.risk_dwell_ms, self.risk_flag)
        return events

    def _fix_speed(self, ids: np.ndarray, ts: np.ndarray, y: np.ndarray, x: np.ndarray) -> None:
        """A vehicle's top speed is at least its mean speed between two fixes: the distance between
        consecutive fixes over the time between them goes into the day's top speed beside the reported
        speed_kmh. Sampled every 10 minutes, the reported speed misses a short drive out (the truck is
        seen parked at the depot and parked 20 km away, never moving); the fixes do not. Fixes come
        sorted by (device, ts); only fixes newer than the device's last one are paired."""
        rows = self.gps_row[ids]
        fresh = ts > self.gps_last_ts[rows]
        if not fresh.any():
            return
        ids, rows, ts, y, x = ids[fresh], rows[fresh], ts[fresh], y[fresh], x[fresh]
        first = np.r_[True, ids[1:] != ids[:-1]]
        last = np.r_[first[1:], True]
        py, px, pt = np.r_[np.nan, y[:-1]], np.r_[np.nan, x[:-1]], np.r_[NO_TS, ts[:-1]]
        py[first], px[first], pt[first] = self.fix_lat[rows[first]], self.fix_lon[rows[first]], self.gps_last_ts[rows[first]]
        paired = (pt != NO_TS) & ~np.isnan(py) & (ts > pt)
        km = np.hypot((y - py) * 111.0, (x - px) * 111.0 * np.cos(np.radians(y)))
        kmh = np.where(paired, km / np.maximum(ts - pt, 1) * HOUR_MS, 0.0)
        self.fix_lat[rows[last]], self.fix_lon[rows[last]] = y[last], x[last]
        if paired.any():
            self._speed((ids[paired], ts[paired], kmh[paired]))

    def _speed(self, cols: Cols) -> None:
        """Top speed of each vehicle's newest local day. A reading of an older day than the one held
        is not kept (one day of state): the trade check runs at the end of each day."""
        ids, ts, v = cols
        rows = self.gps_row[ids]
        ok = rows >= 0
        rows, day, v = rows[ok], local_day(ts[ok]), v[ok]
        newest = self.speed_day.copy()
        np.maximum.at(newest, rows, day)
        self.speed_max[newest > self.speed_day] = 0.0
        self.speed_day[:] = newest
        cur = day == newest[rows]
        np.maximum.at(self.speed_max, rows[cur], v[cur].astype(np.float32))

    def gps_daily(self, day: int) -> pa.Table:
        """The GPS rows of the daily telemetry rollup (`iotfin.telemetry.daily.DAILY_SCHEMA`, metric
        speed_kmh) for local day `day`, from the signal state: one row per vehicle heard that day."""

        rows = np.flatnonzero(self.speed_day == day)
        devices = np.flatnonzero(self.gps_row >= 0)[rows] if rows.size else np.zeros(0, np.int64)
        top = self.speed_max[rows].astype(np.float64)
        return pa.table({"device_id": devices.astype(np.int64), "metric": pa.array(["speed_kmh"] * rows.size, pa.string()),
                         "lday": np.full(rows.size, day, np.int32), "n": np.ones(rows.size, np.int64), "total": top,
                         "vmax": top, "last_ts": self.gps_last_ts[rows], "last_v": top}, schema=DAILY_SCHEMA)

    def _band(self, cols: Cols, key: str) -> list[SignalEvent]:
        k = 0 if key == "temperature_c" else 1
        lo, hi = (self.meta.temp_lo, self.meta.temp_hi) if k == 0 else (self.meta.hum_lo, self.meta.hum_hi)
        return self._runs(cols, self.env_row, self.env_last_ts[k], self.band_since[k],
                          lambda i, t, v: (v < lo[i]) | (v > hi[i]), "environment_out_of_band",
                          self.t.band_min_ms, self.band_flag[k], lambda j: {"metric": key})

    def _herd(self, now: int) -> list[SignalEvent]:
        tags = np.flatnonzero(self.meta.is_type("livestock_tag"))
        if tags.size == 0:
            return []
        heard = self.last_ts[tags] > now - self.t.herd_window_ms
        count = np.bincount(self.meta.enterprise[tags[heard]], minlength=self.meta.enterprise_count).astype(np.int32)
        self.herd_peak = np.maximum(self.herd_peak, count)
        with np.errstate(invalid="ignore", divide="ignore"):
            drop = np.where(self.herd_peak > 0, 1 - count / np.maximum(self.herd_peak, 1), 0.0)
        level = np.clip(np.floor(drop * 10 + 1e-9), 0, 10).astype(np.int8)
        events = []
        for e in np.flatnonzero(level != self.herd_level):
            self.herd_level[e] = level[e]
            events.append(self._ent_event(int(e), "livestock_count_drop", level[e] / 10, bool(level[e] > 0), now,
                                          heard=int(count[e]), peak=int(self.herd_peak[e])))
        return events


def local_day(ts: np.ndarray) -> np.ndarray:
    """Asia/Shanghai day number (days since 1970-01-01 local) of UTC ms timestamps."""
    return ((ts + LOCAL_OFFSET_MS) // 86_400_000).astype(np.int32)


def _pair(lat: Cols, lon: Cols) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(device, ts, lat, lon) of the positions whose lat and lon readings share device and timestamp."""
    if not _is_sorted(lat[0], lat[1]):
        la = sort_order(lat[0], lat[1])
        lat = tuple(c[la] for c in lat)
    if not _is_sorted(lon[0], lon[1]):
        lo = sort_order(lon[0], lon[1])
        lon = tuple(c[lo] for c in lon)
    if lat[0].size == lon[0].size and np.array_equal(lat[0], lon[0]) and np.array_equal(lat[1], lon[1]):
        return lat[0], lat[1], lat[2], lon[2]  # the usual case: every fix sends both
    # Otherwise join on (device, ts): a structured array sorts and searches on both fields.
    key = np.dtype([("d", np.int64), ("t", np.int64)])
    lk = np.empty(lat[0].size, key)
    lk["d"], lk["t"] = lat[0], lat[1]
    ok = np.empty(lon[0].size, key)
    ok["d"], ok["t"] = lon[0], lon[1]
    _, li, oi = np.intersect1d(lk, ok, assume_unique=False, return_indices=True)
    return lat[0][li], lat[1][li], lat[2][li], lon[2][oi]


def _is_sorted(ids: np.ndarray, ts: np.ndarray) -> bool:
    """Whether rows are already in (device, ts) order: one vectorised pass instead of a sort."""
    if ids.size < 2:
        return True
    d = np.diff(ids)
    return bool(((d > 0) | ((d == 0) & (ts[1:] >= ts[:-1]))).all())


def _in_order(ids: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if _is_sorted(ids, ts):
        return ids, ts
    order = sort_order(ids, ts)
    return ids[order], ts[order]


def _rows_for(mask: np.ndarray) -> np.ndarray:
    rows = np.full(mask.size, -1, np.int32)
    rows[mask] = np.arange(int(mask.sum()), dtype=np.int32)
    return rows


def _first_true(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of the first True in each group (len(flags) where none)."""
    n = flags.size
    idx = np.where(flags, np.arange(n), n)
    return np.minimum.reduceat(idx, starts) if n else idx
