"""The device event log's buffer and flush (iotfin.devices.events): a reconnect storm is written in
chunks within one transaction, a full chunk wakes the runtime's flush early, and a failed flush
loses nothing."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.devices.events import FLUSH_CHUNK
from iotfin.devices.tables import DeviceEvent


def stored(workspace: Workspace) -> int:
    with workspace.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DeviceEvent)).scalar_one())


def test_a_storm_is_flushed_in_chunks_in_order_with_its_details(workspace: Workspace) -> None:
    device = workspace.devices.create().id
    log = workspace.device_runtime.events
    count = FLUSH_CHUNK * 2 + 7
    for i in range(count):
        log.record(device, "connect", {"client_id": f"c-{i}", "说明": "重连"}, at_ms=1_700_000_000_000 + i)
    assert log.pending == count
    assert log.flush() == count and log.pending == 0
    assert stored(workspace) == count
    newest = log.query(device, kinds=["connect"], limit=3)
    assert [e["detail"]["client_id"] for e in newest] == [f"c-{count - 1}", f"c-{count - 2}", f"c-{count - 3}"]
    assert newest[0]["detail"]["说明"] == "重连"


def test_bad_kind_is_refused_and_nothing_buffered(workspace: Workspace) -> None:
    log = workspace.device_runtime.events
    with pytest.raises(ValueError, match="unknown device event kind"):
        log.record(1, "exploded")
    assert log.pending == 0


def test_a_failed_flush_keeps_every_event_for_the_next(workspace: Workspace) -> None:
    device = workspace.devices.create().id
    log = workspace.device_runtime.events
    for i in range(FLUSH_CHUNK + 3):
        log.record(device, "disconnect", {"reason": f"r{i}"})
    log.record(device, "connect", {"unserialisable": object()})  # the last chunk's statement fails
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for an unencodable value
        log.flush()
    assert stored(workspace) == 0  # one transaction: the chunk written before the failure is rolled back
    assert log.pending == FLUSH_CHUNK + 4
    log._buffer.pop()  # the bad event removed, the rest go out
    assert log.flush() == FLUSH_CHUNK + 3 and stored(workspace) == FLUSH_CHUNK + 3


def test_a_full_chunk_wakes_the_runtime_before_its_interval(workspace: Workspace) -> None:
    device = workspace.devices.create().id
    runtime = workspace.device_runtime
    runtime.event_flush_s = 60.0  # the interval alone would not flush within this test

    async def scenario() -> float:
        runtime.ensure_running()
        await asyncio.sleep(0.05)
        started = time.monotonic()
        for i in range(FLUSH_CHUNK):  # recorded from another thread, as the transports' threads do
            await asyncio.to_thread(runtime.events.record, device, "connect", {"i": i})
        while stored(workspace) < FLUSH_CHUNK:
            assert time.monotonic() - started < 10, "the full chunk was not flushed early"
            await asyncio.sleep(0.02)
        waited = time.monotonic() - started
        await runtime.aclose()
        return waited

    assert asyncio.run(scenario()) < 10
    assert runtime.events.pending == 0
