"""Device claiming, as ThingsBoard does it: the device announces a claim secret for a while
(`v1/devices/me/claim` or `POST /api/v1/{token}/claim` with `{"secretKey": "...", "durationMs": ...}`),
and an enterprise that knows the device's name and that secret claims it within the window — the
device then belongs to the enterprise. A claim is single-use.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.time import now_ms
from iotfin.db.engine import write_transaction
from iotfin.devices import store
from iotfin.devices.credentials import secret_hash
from iotfin.devices.events import DeviceEventLog

DEFAULT_CLAIM_MS = 60_000  # ThingsBoard's default claim duration
MAX_CLAIM_MS = 7 * 86_400_000


def parse_claim_request(body: Any) -> tuple[str, int]:
    """(secret, duration ms) from a device's claim request; ThingsBoard allows an empty body."""
    if body is None or body == {}:
        return "", DEFAULT_CLAIM_MS
    if not isinstance(body, dict):
        raise ValidationError("a claim request is an object: {\"secretKey\": \"...\", \"durationMs\": 60000}")
    secret = body.get("secretKey", "")
    duration = body.get("durationMs", DEFAULT_CLAIM_MS)
    if not isinstance(secret, str) or len(secret) > 200:
        raise ValidationError("secretKey must be a string of at most 200 characters")
    if isinstance(duration, bool) or not isinstance(duration, int) or not 0 < duration <= MAX_CLAIM_MS:
        raise ValidationError(f"durationMs must be an integer from 1 to {MAX_CLAIM_MS}")
    return secret, duration


def announce(engine: Engine, device_id: int, secret: str, duration_ms: int) -> int:
    """The device side: open (or replace) its claim window; returns when it expires (epoch ms)."""
    expires = now_ms() + duration_ms
    with write_transaction(engine) as conn:
        store.open_claim(conn, device_id, secret_hash(secret), expires)
    return expires


def claim(engine: Engine, events: DeviceEventLog | None, device_name: str, secret: str,
          enterprise_id: int) -> dict[str, Any]:
    """The enterprise side: take the named device with its claim secret. Refused (NotFound, so a
    wrong guess tells nothing about which part was wrong) without an open, matching claim."""
    now = now_ms()
    with write_transaction(engine) as conn:
        if not store.enterprise_exists(conn, enterprise_id):
            raise NotFound(f"no enterprise {enterprise_id}")
        row = store.claim_of_device_named(conn, device_name)
        if row is None or row.expires_ms < now or not hmac.compare_digest(row.secret_sha256, secret_hash(secret)):
            raise NotFound(f"no open claim for device {device_name!r} with that secret / 该设备无有效认领或密钥不符")
        store.hand_over(conn, row.id, enterprise_id)
    if events is not None:
        events.record(row.id, "claimed", {"enterprise_id": enterprise_id, "previous_enterprise_id": row.enterprise_id})
        events.flush()
    return {"device_id": int(row.id), "name": device_name, "enterprise_id": enterprise_id,
            "previous_enterprise_id": int(row.enterprise_id), "claimed_at": datetime.now(UTC).isoformat()}
