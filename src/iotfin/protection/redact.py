"""A logging filter that keeps secrets and personal data out of logs.

It rewrites each record's message (after %-formatting its args) so that bearer tokens, JWTs, client
secrets, passwords, Chinese resident ID numbers, mobile numbers and webhook signatures appear as
`[REDACTED]`. Install it on handlers (`install()` does the root and uvicorn handlers): a filter on a
logger does not see records propagated from its children, a filter on a handler sees all of them.
"""

from __future__ import annotations

import logging
import re

MASK = "[REDACTED]"

PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization headers and bearer tokens of any shape
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    # JWTs anywhere (header.payload.signature, base64url)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    # this platform's client secrets and device/webhook secrets by prefix
    (re.compile(r"\b(ics|whsec)_[A-Za-z0-9_-]{8,}"), MASK),
    # key=value or "key": "value" for secret-looking keys
    (re.compile(r"(?i)((?:password|passwd|secret|client_secret|token|access_token|api_key|authorization)"
                r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"), r"\1" + MASK),
    # webhook signature headers t=...,v1=...
    (re.compile(r"\bv1=[0-9a-f]{16,}"), "v1=" + MASK),
    # PRC resident identity card numbers (18 characters, last may be X)
    (re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"), MASK),
    # mainland mobile numbers, optionally +86
    (re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)"), MASK),
]


def redact(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: still redact what is there
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message:
            # Keep the record's structure when redacting the arguments one by one gives the same
            # text (formatters such as uvicorn's access log unpack `args`); otherwise flatten it.
            args = record.args
            if isinstance(args, tuple):
                args = tuple(redact(a) if isinstance(a, str) else a for a in args)
            try:
                same = isinstance(record.msg, str) and (redact(record.msg) % args if args else redact(record.msg)) == cleaned
            except (TypeError, ValueError):
                same = False
            if same:
                record.msg, record.args = redact(record.msg), args
            else:
                record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(loggers: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access")) -> RedactingFilter:
    """Attach one RedactingFilter to every handler of these loggers (idempotent)."""
    flt = RedactingFilter()
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(flt)
    return flt
