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


# GB 11714-1997 organisation code: 8 body characters (digits, capital letters) and a check character.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def org_code_check_char(body8: str) -> str:
    total = sum((int(ch) if ch.isdigit() else ord(ch) - 55) * w for ch, w in zip(body8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


# GB 11643-1999 resident identity number: ISO 7064 MOD 11-2 over the first 17 digits.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_check_char(first17: str) -> str:
    total = sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def is_valid_resident_id(number: str) -> bool:
    return len(number) == 18 and number[:17].isdigit() and resident_id_check_char(number[:17]) == number[17].upper()
