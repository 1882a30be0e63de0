"""Evidence bundles: one record (or one reading) with everything needed to check it offline.

`verify_bundle` needs no database and no network: the bundle and the log's verifier key are
enough. It recomputes the record's commitment from the disclosed body and salt, the leaf hash, the
inclusion proof up to the signed checkpoint, and for a reading the series proof up to its batch
root. Any mismatch raises `EvidenceInvalid` naming the step that failed.
"""

from __future__ import annotations

import base64
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.ledger import merkle
from iotfin.ledger.checkpoint import NoteError, VerifierKey, open_checkpoint
from iotfin.ledger.entry import Entry, entry_leaf_hash
from iotfin.ledger.records import leaf_payload, record_type
from iotfin.ledger.telemetry_proof import Series

FORMAT = "iotfin-evidence/1"


class EvidenceInvalid(ValidationError):
    code = "evidence-invalid"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def verify_bundle(bundle: dict[str, Any], vkey: str) -> dict[str, Any]:
    """Check a bundle against the log's verifier key; returns what was proved."""
    try:
        if bundle.get("format") != FORMAT:
            raise EvidenceInvalid(f"not an {FORMAT} bundle")
        record, leaf = bundle["record"], bundle["leaf"]
        try:
            checkpoint, _ = open_checkpoint(bundle["checkpoint"], [VerifierKey.parse(vkey)])
        except NoteError as exc:
            raise EvidenceInvalid(f"checkpoint: {exc}") from None
        rtype = record_type(record["type"])
        salt = unb64(record["salt"]) if record.get("salt") is not None else None
        payload = leaf_payload(rtype.name, record["body"], salt)
        if b64(payload) != leaf["payload"]:
            raise EvidenceInvalid("record: the disclosed body (and salt) do not give the anchored payload")
        leaf_hash = entry_leaf_hash(Entry(rtype.name, str(record["id"]), payload))
        proof = [unb64(p) for p in bundle["inclusion_proof"]]
        try:
            merkle.verify_inclusion(leaf_hash, int(leaf["index"]), checkpoint.size, proof, checkpoint.root)
        except merkle.InvalidProof as exc:
            raise EvidenceInvalid(f"inclusion proof: {exc}") from None
        proved: dict[str, Any] = {"record_type": rtype.name, "record_id": str(record["id"]), "leaf_index": leaf["index"],
                                  "checkpoint": {"origin": checkpoint.origin, "size": checkpoint.size,
                                                 "root": b64(checkpoint.root)}}
        if "reading" in bundle:
            proved["reading"] = _verify_reading(bundle["reading"], record["body"])
        return proved
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, EvidenceInvalid):
            raise
        raise EvidenceInvalid(f"malformed bundle: {exc!r}") from None


def _verify_reading(reading: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    series = Series(int(reading["series"]["device_id"]), reading["series"]["key"],
                    [int(t) for t in reading["series"]["ts"]], [float(v) for v in reading["series"]["values"]])
    ts, value = int(reading["ts"]), float(reading["value"])
    if not any(t == ts and v == value for t, v in zip(series.ts, series.values, strict=True)):
        raise EvidenceInvalid("reading: not in the disclosed series")
    if series.device_id != int(reading["device_id"]) or series.key != reading["key"]:
        raise EvidenceInvalid("reading: the series is another device's or key's")
    proof = [unb64(p) for p in reading["series_proof"]]
    try:
        merkle.verify_inclusion(merkle.leaf_hash(series.payload()), int(reading["series_index"]),
                                int(batch["series"]), proof, bytes.fromhex(batch["root"]))
    except merkle.InvalidProof as exc:
        raise EvidenceInvalid(f"series proof: {exc}") from None
    return {"device_id": series.device_id, "key": series.key, "ts": ts, "value": value}
