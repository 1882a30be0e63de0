"""Webhook rules, pure: event types, subscription URLs, retry schedule."""

from __future__ import annotations

import ipaddress
import random
from urllib.parse import urlsplit

from iotfin.core.errors import ValidationError

EVENT_TYPES: dict[str, str] = {
    "decision.made": "a credit decision was made on an application",
    "alert.raised": "post-loan monitoring raised an alert",
    "alert.escalated": "a post-loan monitoring alert moved to a higher tier",
    "alert.resolved": "an officer resolved a post-loan monitoring alert",
    "repayment.due": "a repayment instalment falls due",
    "loan.disbursed": "a loan was paid out",
    "complaint.updated": "a complaint changed status",
    "hardship.decided": "a hardship request was approved or declined",
    "ping": "a test event sent on request",
}

MAX_ATTEMPTS = 8


def check_event_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown or not types:
        raise ValidationError(f"event types must be among {', '.join(EVENT_TYPES)} (got {', '.join(types) or 'none'})")
    return sorted(set(types))


def check_url(url: str) -> str:
    """https anywhere, or plain http to a loopback address (a receiver on the same machine)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("a webhook URL is an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValidationError("a webhook URL carries no credentials: deliveries are signed instead")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValidationError("a webhook URL must use https (plain http only to localhost)")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def backoff_s(attempt: int, base_s: float = 2.0, cap_s: float = 3600.0, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1 = after the first failure): exponential with "equal
    jitter" — half the exponential step fixed, half random — so retries of many deliveries that
    failed together spread out, yet each one still waits at least half its step."""
    step = min(cap_s, base_s * 2 ** (attempt - 1))
    return step / 2 + (rng or random).uniform(0, step / 2)
