"""What the ledger anchors: canonical leaf payloads. Pure: no I/O.

A leaf commits to the record type and id (iotfin.ledger.entry) and an RFC 8785 (JCS) JSON payload
with the record's schema version. Records
that are confidential (trade documents, liens, decisions, contracts) are anchored as a salted
commitment, SHA-256(salt ‖ JCS(body)), never in clear: the log can be shared with partner banks and
witnesses without disclosing content, and an evidence bundle reveals body and salt for one record
only. Public facts (a telemetry batch's Merkle root) are anchored in clear.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.core.jsonvalues import jcs, jsonable

SALT_BYTES = 32


@dataclass(frozen=True, slots=True)
class RecordType:
    name: str
    version: int
    confidential: bool


RECORD_TYPES: dict[str, RecordType] = {t.name: t for t in (
    RecordType("trade_document", 1, True),
    RecordType("lien", 1, True),
    RecordType("telemetry_batch", 1, False),
    RecordType("consent_grant", 1, True),
    RecordType("credit_decision", 1, True),
    RecordType("loan_contract", 1, True),
    RecordType("model_fingerprint", 1, False),
    RecordType("model_promotion", 1, False),
    RecordType("voucher_event", 1, True),
)}


def record_type(name: str) -> RecordType:
    try:
        return RECORD_TYPES[name]
    except KeyError:
        raise ValidationError(f"unknown record type {name!r}; known: {', '.join(sorted(RECORD_TYPES))}") from None


def canonical(body: dict[str, Any]) -> bytes:
    return jcs(jsonable(body))


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def commitment(salt: bytes, body: dict[str, Any]) -> str:
    if len(salt) != SALT_BYTES:
        raise ValidationError(f"salt must be {SALT_BYTES} bytes")
    return hashlib.sha256(salt + canonical(body)).hexdigest()


def leaf_payload(type_name: str, body: dict[str, Any], salt: bytes | None) -> bytes:
    """The entry payload the log commits to (the leaf also commits to the record type and id, see
    iotfin.ledger.entry): {"v", "commitment"} for confidential records, {"v", "body"} otherwise."""
    rtype = record_type(type_name)
    if rtype.confidential:
        if salt is None:
            raise ValidationError(f"{type_name} is confidential: anchoring needs a salt")
        # JCS of {"v", "commitment"} written out: keys in order, a hex string, an integer (every
        # anchored record passes here; tests/ledger/test_canonical.py holds it to JCS)
        return b'{"commitment":"%s","v":%d}' % (commitment(salt, body).encode(), rtype.version)
    if salt is not None:
        raise ValidationError(f"{type_name} is anchored in clear: no salt")
    return jcs({"v": rtype.version, "body": jsonable(body)})
