"""Streaming signals on hand-made readings: each signal's trigger, its clearing, late and out-of-order
readings, silence, and what the engine does with devices it does not know."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from iotfin.monitor.model import DeviceMeta, RiskZone, circle_polygon
from iotfin.monitor.signals import SignalEngine, run_since
from iotfin.telemetry.model import READING_SCHEMA

H = 3_600_000
M = 60_000
# 2026-01-05 00:00 Asia/Shanghai (a Monday) in UTC ms
T0 = 1_767_542_400_000
# device ids: 1 meter, 2-3 machines (enterprise 1), 4 load cell, 5 door seal, 6 GPS, 7 env (cold chain),
# 8-11 livestock tags (enterprise 2), 12 machine of enterprise 3
TYPES = {1: "electricity_meter", 2: "machine_sensor", 3: "machine_sensor", 4: "load_cell", 5: "door_seal",
         6: "gps_tracker", 7: "env_sensor", 8: "livestock_tag", 9: "livestock_tag", 10: "livestock_tag",
         11: "livestock_tag", 12: "machine_sensor"}
ENTERPRISE = {d: (2 if 8 <= d <= 11 else 3 if d == 12 else 1) for d in TYPES}
HOME = (31.30, 120.58)  # lat, lon


def engine() -> SignalEngine:
    ids = np.array(sorted(TYPES))
    fence_of = np.array([0 if TYPES[d] == "gps_tracker" else -1 for d in ids])
    zone = RiskZone("pawn shop", circle_polygon(31.35, 120.58, 300))
    meta = DeviceMeta.build(ids, [ENTERPRISE[d] for d in ids], [TYPES[d] for d in ids], fence_of,
                            [circle_polygon(*HOME, 5_000)], [zone])
    meta.temp_lo[7], meta.temp_hi[7] = 0.0, 8.0
    return SignalEngine(meta)


def readings(*rows: tuple[int, str, int, float]) -> pa.Table:
    d, k, t, v = zip(*rows, strict=True)
    return pa.table({"device_id": list(d), "key": list(k), "ts": list(t), "value": list(v)}, schema=READING_SCHEMA)


def signals(events: list, name: str) -> list[tuple[bool, int]]:
    return [(e.active, e.ts) for e in events if e.signal == name]


def test_run_since_carries_runs_across_batches() -> None:
    ids = np.array([1, 1, 1, 2, 2])
    ts = np.array([10, 20, 30, 10, 20])
    flag = np.array([True, True, False, True, True])
    carry = np.array([5, np.iinfo(np.int64).min])
    since = run_since(ids, ts, flag, carry)
    assert since.tolist()[:2] == [5, 5] and since[2] == np.iinfo(np.int64).min and since.tolist()[3:] == [10, 10]


def test_seal_broken_raises_at_once_and_clears_when_resealed() -> None:
    e = engine()
    ev = e.on_commit(readings((5, "seal_intact", T0, 1), (5, "seal_intact", T0 + 15 * M, 0), (5, "seal_intact", T0 + 30 * M, 0)))
    assert signals(ev, "seal_broken") == [(True, T0 + 15 * M)]
    ev = e.on_commit(readings((5, "seal_intact", T0 + 45 * M, 0)))
    assert signals(ev, "seal_broken") == []  # still broken: no new event
    ev = e.on_commit(readings((5, "seal_intact", T0 + 60 * M, 1)))
    assert signals(ev, "seal_broken") == [(False, T0 + 60 * M)]


def test_late_seal_reading_raises_one_shot_evidence_at_its_own_time() -> None:
    e = engine()
    e.on_commit(readings((5, "seal_intact", T0 + 2 * H, 1)))
    ev = e.on_commit(readings((5, "seal_intact", T0 + 1 * H, 0)))  # older than what we have: late
    [late] = [x for x in ev if x.signal == "seal_broken"]
    assert late.active and late.ts == T0 + H and late.detail["one_shot"] and late.detail["late"]


def test_door_open_at_night_needs_a_sustained_run() -> None:
    e = engine()
    night = T0 + 2 * H  # 02:00 local
    ev = e.on_commit(readings(*[(5, "door_open", night + i * 15 * M, 1) for i in range(2)]))
    assert signals(ev, "door_open_after_hours") == []  # 15 minutes open is not yet a condition
    ev = e.on_commit(readings(*[(5, "door_open", night + i * 15 * M, v) for i, v in ((2, 1), (3, 1), (4, 0))]))
    assert signals(ev, "door_open_after_hours") == [(True, night + 45 * M), (False, night + 60 * M)]
    day = T0 + 10 * H  # open all morning: working hours, no condition
    ev = e.on_commit(readings(*[(5, "door_open", day + i * 15 * M, 1) for i in range(8)]))
    assert signals(ev, "door_open_after_hours") == []


def test_inventory_drop_against_the_24h_peak_and_late_correction() -> None:
    e = engine()
    e.on_commit(readings(*[(4, "weight_t", T0 + i * H, 100.0) for i in range(6)]))
    ev = e.on_commit(readings((4, "weight_t", T0 + 7 * H, 62.0)))
    [drop] = [x for x in ev if x.signal == "inventory_drop"]
    assert drop.active and drop.value == pytest.approx(0.35) and drop.detail["peak"] == 100.0
    # A late reading from two hours ago shows a higher peak: the drop is re-computed from the buckets.
    ev = e.on_commit(readings((4, "weight_t", T0 + 5 * H + 30 * M, 125.0)))
    [drop] = [x for x in ev if x.signal == "inventory_drop"]
    assert drop.value == pytest.approx(0.5) and drop.detail["quantity"] == 62.0
    # 30 hours later the old peak is out of the window: the level is the new normal.
    ev = e.on_commit(readings((4, "weight_t", T0 + 37 * H, 62.0)))
    assert [(x.active, x.value) for x in ev if x.signal == "inventory_drop"] == [(False, 0.0)]
    assert e.stock_quantity(np.array([4, 5]))[0] == 62.0 and np.isnan(e.stock_quantity(np.array([4, 5]))[1])


def test_energy_counter_running_backwards_and_late_readings() -> None:
    e = engine()
    e.on_commit(readings(*[(1, "energy_kwh", T0 + i * 15 * M, 1000.0 + 10 * i) for i in range(8)]))
    # A late reading older than the last is not a regression, whatever its value.
    ev = e.on_commit(readings((1, "energy_kwh", T0 + 20 * M, 1005.0)))
    assert signals(ev, "counter_regression") == []
    ev = e.on_commit(readings((1, "energy_kwh", T0 + 2 * H, 900.0), (1, "energy_kwh", T0 + 2 * H + 15 * M, 910.0)))
    assert signals(ev, "counter_regression") == [(True, T0 + 2 * H)]
    ev = e.on_commit(readings((1, "energy_kwh", T0 + 3 * H, 1100.0)))  # past its old peak: cleared
    assert signals(ev, "counter_regression") == [(False, T0 + 3 * H)]


def test_geofence_exit_and_return_with_shapely_polygons() -> None:
    e = engine()
    lat, lon = HOME
    far = lat + 0.2  # ~22 km north: outside the 5 km fence
    rows = []
    for i, la in enumerate((lat, lat + 0.01, far, far, lat)):
        rows += [(6, "lat", T0 + i * 10 * M, la), (6, "lon", T0 + i * 10 * M, lon)]
    ev = e.on_commit(readings(*rows))
    assert signals(ev, "geofence_exit") == [(True, T0 + 20 * M), (False, T0 + 40 * M)]


def test_dwell_near_a_listed_risk_location() -> None:
    e = engine()
    rows = []
    for i in range(5):  # 40 minutes inside the pawn shop's 300 m circle
        rows += [(6, "lat", T0 + i * 10 * M, 31.35), (6, "lon", T0 + i * 10 * M, 120.58)]
    ev = e.on_commit(readings(*rows))
    assert signals(ev, "risk_dwell") == [(True, T0 + 30 * M)]


def test_dark_devices_by_the_clock_and_inside_a_bulk_batch() -> None:
    e = engine()
    e.on_commit(readings((1, "power_kw", T0, 5.0), (4, "weight_t", T0 + 9 * H, 10.0)))
    ev = e.tick(T0 + 9 * H)
    assert [(x.device_id, x.active) for x in ev if x.signal == "device_dark"] == [(1, True)]
    ev = e.on_commit(readings((1, "power_kw", T0 + 10 * H, 5.0)))
    [back] = [x for x in ev if x.signal == "device_dark"]
    assert not back.active and e.offline_ms[1] == 10 * H and e.dark[1] == 0
    # A backfill with a 12-hour hole: the dark spell is raised and ended within the batch.
    ev = e.on_commit(readings((4, "weight_t", T0 + 10 * H, 10.0), (4, "weight_t", T0 + 22 * H, 10.0)))
    assert [(x.active, x.ts) for x in ev if x.signal == "device_dark"] == [(True, T0 + 18 * H), (False, T0 + 22 * H)]


def test_production_idle_when_every_machine_stops() -> None:
    e = engine()
    e.on_commit(readings(*[(d, "runtime_min", T0 + i * 15 * M, 10.0) for d in (2, 3) for i in range(4)]))
    # machine 2 stops, machine 3 keeps going: not idle
    e.on_commit(readings(*[(d, "runtime_min", T0 + H + i * 15 * M, 0.0 if d == 2 else 9.0) for d in (2, 3) for i in range(28)]))
    assert signals(e.tick(T0 + 8 * H), "production_idle") == []
    rows = [(d, "runtime_min", T0 + 8 * H + i * 15 * M, 0.0) for d in (2, 3) for i in range(28)]
    e.on_commit(readings(*rows))
    ev = e.tick(T0 + 15 * H)
    assert [(x.enterprise_id, x.active) for x in ev if x.signal == "production_idle"] == [(1, True)]
    ev = e.on_commit(readings((2, "runtime_min", T0 + 15 * H + 15 * M, 4.0))) + e.tick(T0 + 15 * H + 30 * M)
    assert signals(ev, "production_idle") == [(False, T0 + 15 * H + 15 * M)]
    rate = e.operating_rate()
    assert 0 < rate[1] < 1 and np.isnan(rate[2])


def test_production_idle_inside_a_bulk_batch() -> None:
    e = engine()
    rows = [(12, "runtime_min", T0 + i * 15 * M, 0.0 if 8 <= i < 48 else 7.0) for i in range(60)]
    ev = e.on_commit(readings(*rows))
    assert [(x.active, x.ts) for x in ev if x.signal == "production_idle"] == [
        (True, T0 + 7 * 15 * M + 6 * H), (False, T0 + 48 * 15 * M)]


def test_environment_band_for_a_cold_room() -> None:
    e = engine()
    rows = [(7, "temperature_c", T0 + i * 15 * M, t) for i, t in enumerate((3.0, 9.5, 10.0, 11.0, 4.0))]
    ev = e.on_commit(readings(*rows))
    assert signals(ev, "environment_out_of_band") == [(True, T0 + 45 * M), (False, T0 + 60 * M)]


def test_livestock_count_falls_as_tags_go_quiet() -> None:
    e = engine()
    e.on_commit(readings(*[(d, "activity", T0, 80.0) for d in (8, 9, 10, 11)]))
    e.tick(T0 + H)
    e.on_commit(readings((8, "activity", T0 + 20 * H, 80.0), (9, "activity", T0 + 20 * H, 80.0)))
    ev = e.tick(T0 + 26 * H)
    [drop] = [x for x in ev if x.signal == "livestock_count_drop"]
    assert drop.enterprise_id == 2 and drop.value == 0.5 and drop.detail == {"heard": 2, "peak": 4}


def test_unknown_devices_are_counted_not_mixed_in() -> None:
    e = engine()
    ev = e.on_commit(readings((999, "seal_intact", T0, 0), (5, "seal_intact", T0, 1)))
    assert ev == [] and e.unmonitored == 1 and e.readings_seen == 1


def test_state_bytes_are_reported() -> None:
    b = engine().state_bytes()
    assert b["devices"] == 13 and b["total"] > 0 and b["per_kind"]["every_device"] == 41


def test_the_callers_clock_decides_silence_not_the_newest_reading() -> None:
    e = engine()
    # A bulk load holds the load cell's day before the meter's: the meter is not silent as of T0 + 1 h.
    e.on_commit(readings((1, "power_kw", T0, 5.0), (4, "weight_t", T0 + 20 * H, 10.0)))
    assert signals(e.tick(T0 + H), "device_dark") == []
    assert signals(e.tick(T0 + 9 * H), "device_dark") == [(True, T0)]


def test_a_batch_of_only_unmonitored_devices_is_counted_and_changes_nothing() -> None:
    engine = SignalEngine(DeviceMeta.build(np.array([1]), [1], ["door_seal"]))
    batch = pa.table({"device_id": [5, 6], "key": ["seal_intact", "door_open"], "ts": [1, 2], "value": [0.0, 1.0]},
                     schema=READING_SCHEMA)  # devices registered after the monitor loaded its metadata
    assert engine.on_commit(batch) == [] and engine.unmonitored == 2 and engine.readings_seen == 0
