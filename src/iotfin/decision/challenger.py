"""Champion / challenger: a stable traffic split between two strategies."""

from __future__ import annotations

import hashlib


def in_challenger(key: str, challenger_bps: int, salt: str = "") -> bool:
    """Stable traffic split: SHA-256 of (salt, key) mapped to 0..9999 basis points; the same
    enterprise always lands in the same arm for a given salt, whatever process decides it."""
    if challenger_bps <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") % 10_000
    return bucket < challenger_bps
