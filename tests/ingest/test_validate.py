"""Vectorised validation: one reason code per reading, judged against the registry and the profiles."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from iotfin.devices.model import STANDARD_PROFILES, MetricSpec, Profile
from iotfin.devices.registry import DeviceRegistry
from iotfin.ingest.validate import REASON_CODE, REASONS, Limits, validate
from iotfin.telemetry.model import READING_SCHEMA

NOW = 1_767_312_000_000  # 2026-01-02T00:00:00Z
MIN = 60_000
DAY = 86_400_000
ENV, METER, GENERIC, INACTIVE, REVOKED, TANK = 1, 2, 3, 4, 5, 6


@pytest.fixture
def registry() -> DeviceRegistry:
    reg = DeviceRegistry(STANDARD_PROFILES)
    reg.register(np.array([ENV, METER, GENERIC, INACTIVE, REVOKED, TANK]),
                 ["env_sensor", "electricity_meter", "generic", "env_sensor", "env_sensor", "tank_gauge"],
                 ["active", "active", "active", "inactive", "revoked", "active"])
    return reg


def table(*rows: tuple[int, str, int, float]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.table({"device_id": list(cols[0]), "key": list(cols[1]), "ts": list(cols[2]), "value": list(cols[3])},
                    schema=READING_SCHEMA)


def reasons_of(registry: DeviceRegistry, *rows: tuple[int, str, int, float], limits: Limits | None = None,
               ) -> list[str]:
    codes = validate(table(*rows), registry, limits or Limits(now_ms=NOW))
    assert codes.dtype == np.int8 and codes.shape == (len(rows),)
    return [REASONS[c] for c in codes]


def test_reason_codes_are_stable() -> None:
    # The index is what quarantine and counters store: reordering would relabel history.
    assert REASONS == ("accepted", "unknown_device", "device_revoked", "device_inactive", "unknown_metric",
                       "not_finite", "out_of_range", "ts_in_future", "ts_too_old", "duplicate_in_batch")
    assert all(REASON_CODE[name] == i for i, name in enumerate(REASONS))


def test_good_readings_are_accepted(registry: DeviceRegistry) -> None:
    assert reasons_of(registry, (ENV, "temperature_c", NOW, 21.5), (ENV, "humidity_pct", NOW, 40.0),
                      (METER, "energy_kwh", NOW - DAY, 12345.678), (METER, "power_kw", NOW, 0.0),
                      (GENERIC, "anything-at-all", NOW, -1e12), (TANK, "level_pct", NOW, 100.0)) == ["accepted"] * 6


def test_empty_batch(registry: DeviceRegistry) -> None:
    assert validate(table(), registry, Limits(now_ms=NOW)).shape == (0,)


@pytest.mark.parametrize(("row", "reason"), [
    ((99, "temperature_c", NOW, 20.0), "unknown_device"),  # beyond every registered id
    ((0, "temperature_c", NOW, 20.0), "unknown_device"),  # inside the id range, never registered
    ((-7, "temperature_c", NOW, 20.0), "unknown_device"),
    ((REVOKED, "temperature_c", NOW, 20.0), "device_revoked"),
    ((INACTIVE, "temperature_c", NOW, 20.0), "device_inactive"),
    ((ENV, "energy_kwh", NOW, 20.0), "unknown_metric"),  # a meter's metric on an env sensor
    ((ENV, "Temperature_C", NOW, 20.0), "unknown_metric"),  # keys are case-sensitive
    ((ENV, "temperature_c", NOW, math.nan), "not_finite"),
    ((ENV, "temperature_c", NOW, math.inf), "not_finite"),
    ((GENERIC, "x", NOW, -math.inf), "not_finite"),
    ((ENV, "temperature_c", NOW, 80.001), "out_of_range"),
    ((ENV, "temperature_c", NOW, -50.5), "out_of_range"),
    ((ENV, "humidity_pct", NOW, 100.1), "out_of_range"),
    ((METER, "energy_kwh", NOW, -0.001), "out_of_range"),  # a meter never counts backwards
    ((GENERIC, "x", NOW, 2e15), "out_of_range"),
    ((ENV, "temperature_c", NOW + 10 * MIN + 1, 20.0), "ts_in_future"),
    ((ENV, "temperature_c", NOW + 365 * DAY, 20.0), "ts_in_future"),
    ((ENV, "temperature_c", NOW - 3650 * DAY - 1, 20.0), "ts_too_old"),
    ((ENV, "temperature_c", 0, 20.0), "ts_too_old"),
])
def test_each_reason(registry: DeviceRegistry, row: tuple[int, str, int, float], reason: str) -> None:
    good = (ENV, "temperature_c", NOW - MIN, 20.0)
    # Judged per row: the good neighbour stays accepted whatever is wrong with the other.
    assert reasons_of(registry, good, row) == ["accepted", reason]


@pytest.mark.parametrize("row", [
    (ENV, "temperature_c", NOW, -50.0), (ENV, "temperature_c", NOW, 80.0),  # bounds are inclusive
    (ENV, "humidity_pct", NOW, 0.0), (ENV, "humidity_pct", NOW, 100.0),
    (ENV, "temperature_c", NOW + 10 * MIN, 20.0),  # exactly the allowed clock drift
    (ENV, "temperature_c", NOW - 3650 * DAY, 20.0),  # exactly the retention edge
    (GENERIC, "x", NOW, 1e15), (GENERIC, "x", NOW, -1e15),
])
def test_boundaries_are_accepted(registry: DeviceRegistry, row: tuple[int, str, int, float]) -> None:
    assert reasons_of(registry, row) == ["accepted"]


def test_limits_are_configurable(registry: DeviceRegistry) -> None:
    strict = Limits(now_ms=NOW, max_future_ms=0, retention_ms=DAY)
    assert reasons_of(registry, (ENV, "temperature_c", NOW + 1, 20.0), (ENV, "temperature_c", NOW, 20.0),
                      (ENV, "temperature_c", NOW - DAY, 20.0), (ENV, "temperature_c", NOW - DAY - 1, 20.0),
                      limits=strict) == ["ts_in_future", "accepted", "accepted", "ts_too_old"]


def test_first_failure_in_reason_order_wins(registry: DeviceRegistry) -> None:
    assert reasons_of(registry,
                      (99, "nonsense", NOW + DAY, math.nan),  # everything wrong: the device first
                      (REVOKED, "nonsense", NOW + DAY, math.nan),
                      (INACTIVE, "nonsense", NOW + DAY, math.nan),
                      (ENV, "nonsense", NOW + DAY, math.nan),
                      (ENV, "temperature_c", NOW + DAY, math.nan),
                      (ENV, "temperature_c", NOW + DAY, 1000.0),
                      (ENV, "temperature_c", NOW + DAY, 20.0),
                      ) == ["unknown_device", "device_revoked", "device_inactive", "unknown_metric", "not_finite",
                            "out_of_range", "ts_in_future"]


def test_repeats_in_a_batch_keep_the_first(registry: DeviceRegistry) -> None:
    assert reasons_of(registry,
                      (ENV, "temperature_c", NOW, 20.0),
                      (ENV, "humidity_pct", NOW, 20.0),  # same ts, other key: not a repeat
                      (METER, "power_kw", NOW, 20.0),
                      (ENV, "temperature_c", NOW, 21.0),  # repeat, even with another value
                      (ENV, "temperature_c", NOW + 1, 20.0),  # other ts: not a repeat
                      (METER, "power_kw", NOW, 20.0),
                      (ENV, "temperature_c", NOW, 20.0),
                      ) == ["accepted", "accepted", "accepted", "duplicate_in_batch", "accepted",
                            "duplicate_in_batch", "duplicate_in_batch"]


def test_a_rejected_first_occurrence_does_not_make_a_good_repeat_a_duplicate(registry: DeviceRegistry) -> None:
    # The first reading of the point is rejected (and quarantined); the second is the only valid one
    # and must be stored, not dropped as a "duplicate" of a reading that was never stored.
    assert reasons_of(registry, (ENV, "temperature_c", NOW, 999.0), (ENV, "temperature_c", NOW, 21.0),
                      (ENV, "temperature_c", NOW, 22.0)) == ["out_of_range", "accepted", "duplicate_in_batch"]
    assert reasons_of(registry, (ENV, "temperature_c", NOW, math.nan), (ENV, "temperature_c", NOW, math.nan),
                      ) == ["not_finite", "not_finite"]


def test_large_shuffled_batch_matches_a_row_by_row_judgement(registry: DeviceRegistry) -> None:
    rng = np.random.default_rng(7)
    n = 5_000
    devices = rng.choice([ENV, METER, GENERIC, INACTIVE, REVOKED, 99], n)
    keys = rng.choice(["temperature_c", "humidity_pct", "power_kw", "energy_kwh"], n)
    ts = NOW + rng.integers(-5, 5, n) * 5 * MIN
    values = rng.choice([-60.0, 0.0, 20.0, 50.0, 90.0, 150.0, math.nan], n)
    got = validate(pa.table({"device_id": devices, "key": keys, "ts": ts, "value": values}, schema=READING_SCHEMA),
                   registry, Limits(now_ms=NOW))
    profiles = {ENV: STANDARD_PROFILES[5], METER: STANDARD_PROFILES[1], GENERIC: STANDARD_PROFILES[0]}
    assert [p.name for p in profiles.values()] == ["env_sensor", "electricity_meter", "generic"]
    seen: set[tuple[int, str, int]] = set()
    expected = []
    for d, k, t, v in zip(devices.tolist(), keys.tolist(), ts.tolist(), values.tolist(), strict=True):
        spec = profiles[d].spec(k) if d in profiles else None
        if d == 99:
            reason = "unknown_device"
        elif d == REVOKED:
            reason = "device_revoked"
        elif d == INACTIVE:
            reason = "device_inactive"
        elif spec is None:
            reason = "unknown_metric"
        elif not math.isfinite(v):
            reason = "not_finite"
        elif not spec.min <= v <= spec.max:
            reason = "out_of_range"
        elif t > NOW + 10 * MIN:
            reason = "ts_in_future"
        elif (d, k, t) in seen:
            reason = "duplicate_in_batch"
        else:
            reason = "accepted"
            seen.add((d, k, t))
        expected.append(reason)
    assert [REASONS[c] for c in got] == expected
    assert len(set(expected)) >= 8  # the sample really exercises most reasons


def test_profiles_added_later_and_status_changes_take_effect(registry: DeviceRegistry) -> None:
    idx = registry.add_profile(Profile("boiler", "boiler", 60, 180, {"pressure_bar": MetricSpec("bar", 0, 25)}))
    assert registry.add_profile(Profile("boiler", "boiler", 60, 180)) == idx  # idempotent by name
    registry.register(np.array([40]), ["boiler"], ["active"])
    assert reasons_of(registry, (40, "pressure_bar", NOW, 12.0), (40, "pressure_bar", NOW + 1, 30.0),
                      (40, "temperature_c", NOW, 20.0)) == ["accepted", "out_of_range", "unknown_metric"]
    registry.set_status(40, "revoked")
    assert reasons_of(registry, (40, "pressure_bar", NOW, 12.0)) == ["device_revoked"]
    registry.set_status(INACTIVE, "active")
    assert reasons_of(registry, (INACTIVE, "temperature_c", NOW, 20.0)) == ["accepted"]
