"""Values as exact JSON can carry them, shared by the ledger's canonical payloads and the JSON columns
that keep money and dates (a loan event's detail): Decimal and dates as strings, never floats; and
their canonical (RFC 8785, JCS) bytes."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import rfc8785


def jsonable(value: Any) -> Any:
    """Values as JCS can carry them exactly: Decimal and dates as strings, no floats in money."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# JSON numbers are IEEE doubles: JCS refuses integers beyond 2**53 - 1 (the library raises).
_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """True when the standard library's JSON encoder writes `value` exactly as JCS does: no floats
    (JCS formats numbers as ECMAScript does), integers within the safe domain, and keys of the Basic
    Multilingual Plane only (JCS sorts keys by UTF-16 code units; Python by code points, which agree
    below U+10000). Strings escape alike: the short escapes and lower-case \\u00xx for the other
    control characters, everything else as UTF-8."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_SAFE_INT <= value <= _SAFE_INT
    if kind is dict:
        return (all(type(k) is str and (k.isascii() or max(k) < "\U00010000") for k in value)
                and all(_plain(v) for v in value.values()))
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False  # floats, subclasses, anything else: the JCS library decides


def jcs(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value. The rfc8785 library is pure Python and was ~10 % of a
    voucher operation's CPU (every operation anchors a leaf, bench/receivables_ops.py); where the C
    encoder of `json` is provably byte-identical (`_plain`) it is used, otherwise the library.
    tests/ledger/test_canonical.py checks the two agree on generated values."""
    if _plain(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return rfc8785.dumps(value)
