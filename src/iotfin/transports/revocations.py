"""Revocations (and device statuses) made by another process (`iotfin devices revoke` while `iotfin serve` runs) reach the
serving process within one poll interval: its token cache forgets the credential and the device's
live MQTT sessions are closed (see `DeviceService.apply_revocations_since`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from iotfin.devices.service import DeviceService

log = logging.getLogger(__name__)

REVOCATION_POLL_S = 1.0


async def watch_revocations(devices: DeviceService, interval_s: float = REVOCATION_POLL_S) -> None:
    since = datetime.now(UTC)
    while True:
        await asyncio.sleep(interval_s)
        try:
            revoked, since = await asyncio.to_thread(devices.apply_revocations_since, since)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the watch; the next poll retries
            log.exception("polling for revoked credentials failed")
            continue
        if revoked:
            log.info("credentials revoked elsewhere: devices %s", sorted(revoked))


async def watch_device_statuses(devices: DeviceService, interval_s: float = REVOCATION_POLL_S) -> None:
    """Device statuses set by another process (an operator deactivating a device while several ingest
    workers run) reach this process's registry within one poll interval; see
    `DeviceService.refresh_statuses`."""
    known: dict[int, str] | None = None
    while True:
        try:
            known = await asyncio.to_thread(devices.refresh_statuses, known)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the watch; the next poll retries
            log.exception("polling for device statuses failed")
        await asyncio.sleep(interval_s)
