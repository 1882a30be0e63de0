"""The ingest use case: good readings durably stored, bad ones quarantined with reasons, nothing lost."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iotfin.devices.model import STANDARD_PROFILES
from iotfin.devices.registry import DeviceRegistry
from iotfin.ingest.quarantine import QuarantineStore
from iotfin.ingest.service import IngestResult, IngestService
from iotfin.ingest.validate import REASON_CODE
from iotfin.telemetry.model import READING_SCHEMA
from iotfin.telemetry.store import TelemetryStore

NOW = 1_767_312_000_000  # 2026-01-02T00:00:00Z
MIN = 60_000
DAY = 86_400_000
ENV, METER, INACTIVE, REVOKED = 1, 2, 3, 4


def table(*rows: tuple[int, str, int, float]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.table({"device_id": list(cols[0]), "key": list(cols[1]), "ts": list(cols[2]), "value": list(cols[3])},
                    schema=READING_SCHEMA)


def make_service(root: Path, retention_days: int = 3650, anchor=None) -> IngestService:  # noqa: ANN001
    registry = DeviceRegistry(STANDARD_PROFILES)
    registry.register(np.array([ENV, METER, INACTIVE, REVOKED]),
                      ["env_sensor", "electricity_meter", "env_sensor", "env_sensor"],
                      ["active", "active", "inactive", "revoked"])
    return IngestService(registry, TelemetryStore(root / "telemetry"), QuarantineStore(root / "quarantine"),
                         retention_days=retention_days, anchor=anchor)


@pytest.fixture
def service(tmp_path: Path) -> IngestService:
    return make_service(tmp_path)


def stored(svc: IngestService, device_id: int, key: str) -> list[tuple[int, float]]:
    t = svc.store.series(device_id, key, 0, NOW + DAY)
    return list(zip(t["ts"].to_pylist(), t["value"].to_pylist(), strict=True))


def quarantined(q: QuarantineStore) -> list[dict]:
    files = sorted(q.root.glob("q*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def test_all_good_batch_is_stored(service: IngestService) -> None:
    result = service.ingest(table((ENV, "temperature_c", NOW - 2 * MIN, 20.0), (ENV, "temperature_c", NOW - MIN, 20.5),
                                  (METER, "energy_kwh", NOW - MIN, 1234.5)), now=NOW)
    assert result == IngestResult(accepted=3, duplicates=0, rejected=0, rejected_by_reason=Counter())
    assert stored(service, ENV, "temperature_c") == [(NOW - 2 * MIN, 20.0), (NOW - MIN, 20.5)]
    assert stored(service, METER, "energy_kwh") == [(NOW - MIN, 1234.5)]
    assert service.quarantine.counts() == {} and quarantined(service.quarantine) == []


def test_mixed_batch_stores_the_good_quarantines_the_bad_and_keeps_earlier_data(service: IngestService) -> None:
    first = service.ingest(table((ENV, "temperature_c", NOW - 10 * MIN, 18.0), (ENV, "humidity_pct", NOW - 10 * MIN, 45.0),
                                 (METER, "energy_kwh", NOW - 10 * MIN, 100.0)), now=NOW)
    assert first.accepted == 3
    before = {(d, k): stored(service, d, k) for d, k in [(ENV, "temperature_c"), (ENV, "humidity_pct"),
                                                         (METER, "energy_kwh")]}
    files_before = {f: f.read_bytes() for f in service.store.files()}

    mixed = table(
        (ENV, "temperature_c", NOW - 5 * MIN, 19.0),  # good
        (ENV, "temperature_c", NOW - 5 * MIN, 19.5),  # repeat in the batch
        (ENV, "temperature_c", NOW - 4 * MIN, 500.0),  # out of range
        (ENV, "temperature_c", NOW - 3 * MIN, math.nan),  # not finite
        (ENV, "co2_ppm", NOW - 3 * MIN, 400.0),  # not in the profile
        (ENV, "temperature_c", NOW + DAY, 19.0),  # from the future
        (ENV, "temperature_c", NOW - 10 * MIN, -30.0),  # already stored: first value must stay
        (99, "temperature_c", NOW - 3 * MIN, 19.0),  # no such device
        (INACTIVE, "temperature_c", NOW - 3 * MIN, 19.0),
        (REVOKED, "temperature_c", NOW - 3 * MIN, 19.0),
        (REVOKED, "humidity_pct", NOW - 3 * MIN, 50.0),
        (METER, "energy_kwh", NOW - 5 * MIN, 101.0),  # good
        (METER, "power_kw", NOW - 5 * MIN, -1.0),  # out of range
    )
    result = service.ingest(mixed, transport="mqtt", now=NOW)
    assert result.accepted == 3 and result.duplicates == 1 and result.rejected == 9
    assert result.rejected_by_reason == Counter({"out_of_range": 2, "not_finite": 1, "unknown_metric": 1,
                                                 "ts_in_future": 1, "unknown_device": 1, "device_inactive": 1,
                                                 "device_revoked": 2})
    assert result.accepted + result.duplicates + result.rejected == mixed.num_rows

    # The good rows are stored...
    assert stored(service, ENV, "temperature_c") == [(NOW - 10 * MIN, 18.0), (NOW - 5 * MIN, 19.0)]
    assert stored(service, METER, "energy_kwh") == [(NOW - 10 * MIN, 100.0), (NOW - 5 * MIN, 101.0)]
    assert stored(service, METER, "power_kw") == [] and stored(service, ENV, "co2_ppm") == []
    for device_id in (99, INACTIVE, REVOKED):
        assert service.store.latest(device_id) == {}
    # ...earlier data is unchanged, on read and on disk...
    assert stored(service, ENV, "humidity_pct") == before[(ENV, "humidity_pct")]
    assert all(f.read_bytes() == data for f, data in files_before.items())
    # ...and every rejected reading is in quarantine with its reason, countable.
    assert service.quarantine.counts("reason") == dict(result.rejected_by_reason)
    assert service.quarantine.counts("device_id") == {str(ENV): 4, str(REVOKED): 2, str(METER): 1, str(99): 1,
                                                      str(INACTIVE): 1}
    kept = quarantined(service.quarantine)
    assert len(kept) == 9 and {r["transport"] for r in kept} == {"mqtt"}
    assert {(r["device_id"], r["key"], r["ts"], r["reason"]) for r in kept if r["device_id"] == ENV} == {
        (ENV, "temperature_c", NOW - 4 * MIN, "out_of_range"), (ENV, "temperature_c", NOW - 3 * MIN, "not_finite"),
        (ENV, "co2_ppm", NOW - 3 * MIN, "unknown_metric"), (ENV, "temperature_c", NOW + DAY, "ts_in_future")}
    assert [r["value"] for r in kept if r["reason"] == "out_of_range"] == [500.0, -1.0]  # the value as received
    assert all(r["raw"] is None and r["received_ms"] > 0 for r in kept)


def test_resending_is_idempotent_and_the_first_value_stays(service: IngestService) -> None:
    batch = table(*[(ENV, "temperature_c", NOW - i * MIN, 20.0 + i) for i in range(10)])
    for _ in range(3):
        assert service.ingest(batch, now=NOW).accepted == 10
    changed = table((ENV, "temperature_c", NOW - MIN, -10.0))
    assert service.ingest(changed, now=NOW).accepted == 1  # accepted (acknowledged) but the first value stays
    points = stored(service, ENV, "temperature_c")
    assert len(points) == 10 and points[-2] == (NOW - MIN, 21.0)
    assert service.store.latest(ENV) == {"temperature_c": (NOW, 20.0)}


def test_duplicates_in_a_batch_are_stored_once_and_not_quarantined(service: IngestService) -> None:
    result = service.ingest(table((ENV, "temperature_c", NOW, 20.0), (ENV, "temperature_c", NOW, 20.0),
                                  (ENV, "temperature_c", NOW, 25.0)), now=NOW)
    assert (result.accepted, result.duplicates, result.rejected) == (1, 2, 0)
    assert not result.rejected_by_reason
    assert stored(service, ENV, "temperature_c") == [(NOW, 20.0)]
    assert service.store.stats()["data_points"] == 1
    assert service.quarantine.counts() == {}


def test_a_valid_repeat_of_a_rejected_reading_is_stored(service: IngestService) -> None:
    result = service.ingest(table((ENV, "temperature_c", NOW, 500.0), (ENV, "temperature_c", NOW, 21.0)), now=NOW)
    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, 1)
    assert stored(service, ENV, "temperature_c") == [(NOW, 21.0)]
    assert service.quarantine.counts() == {"out_of_range": 1}


def test_an_all_bad_batch_writes_no_telemetry(service: IngestService) -> None:
    result = service.ingest(table((99, "x", NOW, 1.0), (ENV, "temperature_c", NOW, math.inf)), now=NOW)
    assert (result.accepted, result.rejected) == (0, 2)
    assert service.store.files() == [] and service.store.days() == []
    assert service.quarantine.counts() == {"unknown_device": 1, "not_finite": 1}


def test_empty_batch(service: IngestService) -> None:
    assert service.ingest(table(), now=NOW) == IngestResult()
    assert service.store.files() == [] and service.quarantine.counts() == {}


def test_ingest_rows_gives_each_row_its_reason_in_input_order(service: IngestService) -> None:
    reasons = service.ingest_rows(table((ENV, "temperature_c", NOW, 20.0), (99, "x", NOW, 1.0),
                                        (ENV, "temperature_c", NOW, 20.0), (ENV, "humidity_pct", NOW, 101.0)), now=NOW)
    assert reasons.tolist() == [0, REASON_CODE["unknown_device"], REASON_CODE["duplicate_in_batch"],
                                REASON_CODE["out_of_range"]]
    assert IngestResult.from_reasons(reasons) == IngestResult(1, 1, 2, Counter({"unknown_device": 1,
                                                                                 "out_of_range": 1}))


def test_input_columns_are_normalised(service: IngestService) -> None:
    loose = pa.table({"ts": [NOW], "value": pa.array([21], pa.int64()), "key": ["temperature_c"],
                      "device_id": pa.array([ENV], pa.int32()), "note": ["extra columns are ignored"]})
    assert service.ingest(loose, now=NOW).accepted == 1
    assert stored(service, ENV, "temperature_c") == [(NOW, 21.0)]


def test_retention_days_bound_how_old_a_reading_may_be(tmp_path: Path) -> None:
    svc = make_service(tmp_path, retention_days=30)
    result = svc.ingest(table((ENV, "temperature_c", NOW - 30 * DAY, 1.0), (ENV, "temperature_c", NOW - 30 * DAY - 1, 2.0)),
                        now=NOW)
    assert (result.accepted, result.rejected_by_reason) == (1, Counter({"ts_too_old": 1}))


def test_default_now_is_the_clock(service: IngestService) -> None:
    # Without `now`, the wall clock decides: a reading from 2026-01-02 is not in the future today,
    # and one a year ahead of the real clock is.
    from iotfin.core.time import now_ms

    result = service.ingest(table((ENV, "temperature_c", now_ms() - MIN, 20.0),
                                  (ENV, "temperature_c", now_ms() + 365 * DAY, 20.0)))
    assert result.accepted == 1 and result.rejected_by_reason == Counter({"ts_in_future": 1})


def test_device_status_changes_apply_to_later_batches_only(service: IngestService) -> None:
    assert service.ingest(table((ENV, "temperature_c", NOW - MIN, 20.0)), now=NOW).accepted == 1
    service.registry.set_status(ENV, "revoked")
    result = service.ingest(table((ENV, "temperature_c", NOW, 21.0)), now=NOW)
    assert result.rejected_by_reason == Counter({"device_revoked": 1})
    assert stored(service, ENV, "temperature_c") == [(NOW - MIN, 20.0)]  # what was accepted stays readable


def test_anchor_is_called_once_per_stored_batch_with_only_the_stored_rows(tmp_path: Path) -> None:
    calls: list[tuple[int, list[tuple[int, str, int, float]]]] = []

    def anchor(seq: int, readings: pa.Table) -> None:
        rows = sorted(zip(*(readings[c].to_pylist() for c in READING_SCHEMA.names), strict=True))
        calls.append((seq, rows))

    svc = make_service(tmp_path, anchor=anchor)
    svc.ingest(table((ENV, "temperature_c", NOW, 20.0), (99, "x", NOW, 1.0), (ENV, "temperature_c", NOW, 20.0)),
               now=NOW)
    svc.ingest(table((99, "x", NOW, 1.0)), now=NOW)  # nothing stored: no anchor
    svc.ingest(table((METER, "power_kw", NOW, 5.0)), now=NOW)
    assert calls == [(1, [(ENV, "temperature_c", NOW, 20.0)]), (2, [(METER, "power_kw", NOW, 5.0)])]
    assert sorted(f.name for f in svc.store.files()) == ["b000000000001.parquet", "b000000000002.parquet"]


def test_a_failing_anchor_leaves_the_stored_batch_readable(tmp_path: Path) -> None:
    def anchor(seq: int, readings: pa.Table) -> None:
        raise RuntimeError("ledger down")

    svc = make_service(tmp_path, anchor=anchor)
    with pytest.raises(RuntimeError):
        svc.ingest(table((ENV, "temperature_c", NOW, 20.0)), now=NOW)
    assert stored(svc, ENV, "temperature_c") == [(NOW, 20.0)]  # stored first, anchored after


def test_ingest_result_adds_up() -> None:
    total = IngestResult()
    total += IngestResult(2, 1, 1, Counter({"out_of_range": 1}))
    total += IngestResult(3, 0, 2, Counter({"out_of_range": 1, "unknown_device": 1}))
    assert total == IngestResult(5, 1, 3, Counter({"out_of_range": 2, "unknown_device": 1}))


# --- quarantine store ----------------------------------------------------------------------------------


def test_quarantine_survives_reopening_and_counts_everything(tmp_path: Path) -> None:
    q = QuarantineStore(tmp_path / "q")
    assert q.put(table((1, "k", NOW, 1.0), (2, "k", NOW, 2.0)), ["out_of_range", "unknown_device"], "http") == 2
    q.put_raw("{not json", "malformed_payload", "http", device_id=1)
    assert q.put_raw_many([('{"key": "a", "value": "x"}', "wrong_type"), ('{"key": "b"}', "wrong_type")],
                          "mqtt", device_id=2) == 2
    assert q.put(table(), [], "http") == 0 and q.put_raw_many([], "http") == 0
    reopened = QuarantineStore(tmp_path / "q")  # must not overwrite the earlier files
    reopened.put(table((1, "k", NOW, 3.0)), np.array(["not_finite"], dtype=object), "batch")
    assert len(list((tmp_path / "q").glob("q*.parquet"))) == 4
    assert reopened.counts() == {"wrong_type": 2, "malformed_payload": 1, "not_finite": 1, "out_of_range": 1,
                                 "unknown_device": 1}
    assert reopened.counts("device_id") == {"1": 3, "2": 3}
    raw = [r for r in quarantined(reopened) if r["raw"] is not None]
    assert sorted(r["raw"] for r in raw) == ['{"key": "a", "value": "x"}', '{"key": "b"}', "{not json"]
    assert all(r["key"] is None and r["ts"] is None for r in raw)


def test_quarantine_truncates_huge_raw_payloads_and_refuses_bad_grouping(tmp_path: Path) -> None:
    q = QuarantineStore(tmp_path)
    q.put_raw("x" * 100_000, "payload_too_large", "http")
    [row] = quarantined(q)
    assert len(row["raw"]) == 65536 and row["device_id"] is None
    assert q.counts() == {"payload_too_large": 1}
    with pytest.raises(ValueError, match="reason"):
        q.counts("transport")
