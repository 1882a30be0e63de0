"""Log entries and the bytes their leaf hashes commit to. Pure: no I/O.

A leaf commits to the record's type and id as well as its payload, so a proof for a leaf cannot
be re-labelled as evidence for another record. The leaf input is

    record_type "\\n" record_id "\\n" payload

which is unambiguous because neither label may contain a newline (labels are printable text).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from iotfin.core.errors import ValidationError
from iotfin.core.jsonvalues import jcs
from iotfin.ledger.hashing import leaf_hash

MAX_RECORD_TYPE = 64
MAX_RECORD_ID = 128


class Entry(NamedTuple):
    """What a caller appends. A NamedTuple, not a dataclass: batches of 10k are built per second."""

    record_type: str
    record_id: str
    payload: bytes

    @classmethod
    def from_json(cls, record_type: str, record_id: str, document: Any) -> Entry:
        """An entry whose payload is the RFC 8785 canonical JSON of `document` (same bytes everywhere)."""
        return cls(record_type, record_id, jcs(document))


class LeafRecord(NamedTuple):
    index: int
    leaf_hash: bytes
    record_type: str
    record_id: str
    payload: bytes
    created_at: datetime


def check_entry(entry: Entry) -> None:
    try:
        record_type, record_id, payload = entry
    except (TypeError, ValueError):
        raise ValidationError(f"an entry is (record_type, record_id, payload), not {entry!r:.80}") from None
    # isprintable() rules out newline (the leaf input's separator), NUL (PostgreSQL text refuses
    # it) and lone surrogates (not encodable), in one C call.
    if (type(record_type) is str and type(record_id) is str and type(payload) is bytes  # fast path: 10k per batch
            and 0 < len(record_type) <= MAX_RECORD_TYPE and 0 < len(record_id) <= MAX_RECORD_ID
            and record_type.isprintable() and record_id.isprintable()):
        return
    if not isinstance(record_type, str) or not 0 < len(record_type) <= MAX_RECORD_TYPE or not record_type.isprintable():
        raise ValidationError(f"record_type must be 1..{MAX_RECORD_TYPE} printable characters: {record_type!r}")
    if not isinstance(record_id, str) or not 0 < len(record_id) <= MAX_RECORD_ID or not record_id.isprintable():
        raise ValidationError(f"record_id must be 1..{MAX_RECORD_ID} printable characters: {record_id!r}")
    if not isinstance(payload, bytes):
        raise ValidationError(f"payload must be bytes, not {type(payload).__name__}")


def leaf_input(record_type: str, record_id: str, payload: bytes) -> bytes:
    return f"{record_type}\n{record_id}\n".encode() + payload


def entry_leaf_hash(entry: Entry) -> bytes:
    return leaf_hash(leaf_input(*entry))
