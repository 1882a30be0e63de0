"""The columnar telemetry form (issue 22): `{"ts": [...], "values": {"key": [...]}}` gives exactly the
readings, and the refusals, of the same data sent reading by reading."""

from __future__ import annotations

import math

import pytest

from iotfin.ingest.payloads import MalformedPayload, ParsedTelemetry, parse_telemetry

T0 = 1_767_225_600_000


def rows(parsed: ParsedTelemetry) -> list[tuple[int, str, int, float]]:
    t = parsed.table()
    return sorted(zip(*(t[c].to_pylist() for c in ("device_id", "key", "ts", "value")), strict=True))


def as_rows(ts: list, values: dict) -> list[dict]:
    return [{"ts": t, "values": {k: v[i] for k, v in values.items()}} for i, t in enumerate(ts)]


@pytest.mark.parametrize("values", [
    {"power": [1.5, 2, 3.25], "on": [True, False, True]},                      # numbers and booleans
    {"power": [1.0, "high", None], "temp": [20.5, 21.0, 21.5]},                # text and null refused one by one
    {"power": [1, 2**70, 3]},                                                  # an integer beyond a double's range
    {"": [1, 2, 3], "ok": [4, 5, 6], "k" * 300: [7, 8, 9]},                    # bad keys
    {"nested": [[1], [2], [3]], "obj": [{"a": 1}, 2, 3]},                      # not a flat column
])
def test_columns_give_the_readings_and_refusals_of_the_row_form(values: dict) -> None:
    ts = [T0, T0 + 1000, T0 + 2000]
    columnar = parse_telemetry({"ts": ts, "values": values}, 7, 0)
    by_row = parse_telemetry(as_rows(ts, values), 7, 0)
    assert rows(columnar) == rows(by_row)
    assert columnar.rows == by_row.rows == len(by_row.device_ids)
    assert sorted(map(repr, columnar.rejected)) == sorted(map(repr, by_row.rejected))
    assert all(math.isfinite(v) for *_, v in rows(columnar))


def test_a_large_block_becomes_arrow_columns_without_python_rows() -> None:
    n = 50_000
    parsed = parse_telemetry({"ts": [T0 + i for i in range(n)],
                              "values": {"a": [float(i) for i in range(n)], "b": list(range(n))}}, 3, 0)
    assert parsed.device_ids == [] and parsed.rows == 2 * n and len(parsed.columns) == 1
    t = parsed.table()
    assert t.num_rows == 2 * n and t.column("key").to_pylist()[n - 1:n + 1] == ["a", "b"]
    assert t.column("ts")[n].as_py() == T0 and t.column("value")[2 * n - 1].as_py() == n - 1


@pytest.mark.parametrize("payload, says", [
    ({"ts": [], "values": {"a": []}}, "empty ts"),
    ({"ts": [T0, T0 + 1], "values": {"a": [1]}}, "list of 2 values"),
    ({"ts": [T0], "values": {"a": 1}}, "list of 1 values"),
    ({"ts": [T0], "values": {}}, "values must be an object"),
    ({"ts": [T0], "values": [1]}, "values must be an object"),
    ({"ts": [T0, 1.5], "values": {"a": [1, 2]}}, "not 1.5"),
    ({"ts": [T0, True], "values": {"a": [1, 2]}}, "not True"),
    ({"ts": [T0, 2**64], "values": {"a": [1, 2]}}, "integer epoch"),
    ({"ts": [T0, "x"], "values": {"a": [1, 2]}}, "not 'x'"),
])
def test_malformed_columns_are_refused_whole(payload: dict, says: str) -> None:
    with pytest.raises(MalformedPayload, match=says):
        parse_telemetry(payload, 1, 0)


def test_demo_sends_a_day_in_columns_where_every_metric_is_present() -> None:
    import orjson

    from iotfin.demo.stream import _bodies

    full = [{"ts": T0 + i, "values": {"kw": float(i), "v": 230.0}} for i in range(10)]
    ragged = [{"ts": T0 + i, "values": {"kw": float(i)} | ({"v": 230.0} if i % 2 else {})} for i in range(10)]
    [(body, points)] = list(_bodies({"meter-a": full, "meter-b": ragged}))
    sent = orjson.loads(body)
    assert isinstance(sent["meter-a"], dict) and sent["meter-a"]["ts"] == [e["ts"] for e in full]
    assert isinstance(sent["meter-b"], list)
    assert points == 20 + 15
    for name, entries in (("meter-a", full), ("meter-b", ragged)):
        assert rows(parse_telemetry(sent[name], 1, 0)) == rows(parse_telemetry(entries, 1, 0))
