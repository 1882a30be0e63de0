"""Provenance at the transport edge: every transport verifies a message the same way.

    verified = await verify_message(ws, device_id, data, raw, "mqtt")   # raises ProvenanceRejected
    parse_telemetry(verified.data, ...)
    await store_verified(ws, committer, parsed, device_id, verified)

A rejected message is kept in quarantine with its reason (`bad_signature`, `replayed_counter`,
`unsigned`), counted, and raises a tamper signal (a durable `device_events` row); the transport then
answers with its own rejection (HTTP 401 problem+json, MQTT 5 PUBACK 0x87, MQTT 3.1.1 PUBACK — see
docs/devices.md). The counter of an accepted message is persisted by the group commit that stores
its readings, before the acknowledgement.
"""

from __future__ import annotations

import asyncio
from typing import Any

from iotfin.api.platform import Platform
from iotfin.devices.guard import Verified
from iotfin.devices.provenance import ProvenanceRejected
from iotfin.ingest.group_commit import GroupCommitter, store_parsed
from iotfin.ingest.payloads import ParsedTelemetry
from iotfin.ingest.service import IngestResult


async def verify_message(ws: Platform, device_id: int, data: Any, raw: bytes, transport: str) -> Verified:
    runtime = ws.device_runtime
    runtime.ensure_running()
    guard = runtime.guard
    if guard.needs_load(device_id):
        await asyncio.to_thread(guard.load, device_id)
    try:
        return guard.check(device_id, data)
    except ProvenanceRejected as exc:
        runtime.events.record(device_id, exc.reason, {"transport": transport, "detail": exc.detail})
        await asyncio.to_thread(ws.quarantine.put_raw, raw.decode("utf-8", "replace"), exc.reason, transport,
                                device_id)
        raise


async def store_verified(ws: Platform, committer: GroupCommitter, parsed: ParsedTelemetry, device_id: int,
                         verified: Verified) -> tuple[IngestResult, dict[str, int]]:
    """`store_parsed` carrying the message's counter into the commit; a failed store rolls it back."""
    guard = ws.device_runtime.guard
    counters = [(verified.device_id, verified.ctr)] if verified.ctr else None
    try:
        outcome = await store_parsed(ws.quarantine, committer, parsed, device_id, counters)
    except BaseException:
        guard.settle(verified, stored=False, committed=False)
        raise
    guard.settle(verified, stored=True, committed=bool(parsed.rows))
    return outcome


def activity(ws: Platform, *device_ids: int) -> None:
    runtime = ws.device_runtime
    runtime.ensure_running()
    for device_id in device_ids:
        runtime.state.activity(device_id)
