"""Webhook signatures, Stripe-style: `Iotfin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`"<t>.<raw body>"` with the subscription's secret. Receivers call `verify` (or copy its ten lines):
it checks the signature in constant time and refuses timestamps outside a tolerance, so a captured
delivery cannot be replayed later. Deduplicate on the `Iotfin-Event-Id` header: a delivery can
arrive more than once (a retry after a lost 2xx).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Iotfin-Signature"
EVENT_ID_HEADER = "Iotfin-Event-Id"
EVENT_TYPE_HEADER = "Iotfin-Event-Type"
ATTEMPT_HEADER = "Iotfin-Delivery-Attempt"


class SignatureError(ValueError):
    pass


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300, now: float | None = None) -> int:
    """Check a delivery; returns its timestamp, raises SignatureError if it is not authentic or too old."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("no timestamp in the signature header") from None
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance: possible replay")
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise SignatureError("no valid v1 signature")
    return t
