"""Identifiers: PRC unified social credit codes (GB 32100-2015) and opaque tokens."""

from __future__ import annotations

import secrets

# GB 32100-2015: 31 characters, excluding I, O, Z, S, V.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    if len(code) != 18 or any(ch not in USCC_ALPHABET for ch in code):
        return False
    return uscc_check_char(code[:17]) == code[17]


def new_token(nbytes: int = 15) -> str:
    """An URL-safe random secret, e.g. a device access token."""
    return secrets.token_urlsafe(nbytes)
