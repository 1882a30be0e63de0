"""Revocations made by another process (`iotfin devices revoke` while `iotfin serve` runs) reach the
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
