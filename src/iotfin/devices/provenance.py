"""Message provenance as pure functions: the signed envelope, HMAC-SHA256 and Ed25519 checks.

One envelope for every transport (MQTT 3.1.1 and 5 payloads, HTTP bodies), so a device signs the
same way whichever way it sends, and MQTT 3.1.1 (no user properties) needs nothing special:

    {"ctr": 42, "mac": "<64 hex>", "payload": "<the telemetry JSON, as text>"}     per-device HMAC
    {"ctr": 42, "sig": "<128 hex>", "payload": "<the gateway/bulk JSON, as text>"} Ed25519, per batch

The authenticated bytes are `b"iotfin-v1\\n" + ascii(ctr) + b"\\n" + utf8(payload)`. The payload
travels as a string so that the bytes the device authenticated are exactly the bytes verified: no
canonical JSON form for devices to implement. `ctr` is a positive integer that must grow with every
message of the device (a gap is fine, a repeat or a step back is a replay).

A JSON object is an envelope exactly when its keys are {ctr, payload, mac} or {ctr, payload, sig};
anything else is plain (unsigned) telemetry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iotfin.core.errors import Unauthorized, ValidationError

DOMAIN = b"iotfin-v1\n"
MAX_COUNTER = 2**63 - 1
_MAC_KEYS = frozenset({"ctr", "payload", "mac"})
_SIG_KEYS = frozenset({"ctr", "payload", "sig"})

#: the quarantine reasons and tamper-event kinds provenance failures carry
BAD_SIGNATURE, REPLAYED_COUNTER, UNSIGNED = "bad_signature", "replayed_counter", "unsigned"

REASON_TEXT = {
    BAD_SIGNATURE: ("消息签名或认证码校验失败", "message signature or MAC does not verify"),
    REPLAYED_COUNTER: ("消息计数器未递增（重放）", "message counter did not increase (replay)"),
    UNSIGNED: ("该设备要求消息认证，但消息未签名", "device requires authenticated messages; this one is unsigned"),
}


class ProvenanceRejected(Unauthorized):
    """A message failed provenance: `reason` is one of bad_signature, replayed_counter, unsigned."""

    code = "provenance-rejected"
    http_status = 403  # the device is known (its token is fine); this message is not authentic

    def __init__(self, reason: str, detail: str):
        zh, en = REASON_TEXT[reason]
        super().__init__(f"{en}: {detail} / {zh}")
        self.reason = reason
        self.detail = detail

    def problem_extra(self) -> dict[str, object]:
        return {"reason": self.reason, "reason_zh": REASON_TEXT[self.reason][0]}


@dataclass(frozen=True, slots=True)
class Envelope:
    ctr: int
    payload: bytes
    mac: bytes | None = None
    sig: bytes | None = None

    @property
    def kind(self) -> str:
        return "hmac" if self.mac is not None else "ed25519"


def signed_bytes(ctr: int, payload: bytes) -> bytes:
    return DOMAIN + str(ctr).encode() + b"\n" + payload


def open_envelope(data: Any) -> Envelope | None:
    """The envelope in decoded JSON, or None when `data` is plain telemetry. An object with the
    envelope's keys but unusable values is a bad signature, not plain telemetry."""
    if not isinstance(data, dict) or len(data) != 3:
        return None
    keys = data.keys()
    if keys != _MAC_KEYS and keys != _SIG_KEYS:
        return None
    ctr, payload = data["ctr"], data["payload"]
    if isinstance(ctr, bool) or not isinstance(ctr, int) or not 0 < ctr <= MAX_COUNTER:
        raise ProvenanceRejected(BAD_SIGNATURE, "ctr must be an integer from 1 to 2^63-1")
    if not isinstance(payload, str):
        raise ProvenanceRejected(BAD_SIGNATURE, "payload must be the signed JSON as a string")
    field, size = ("mac", 32) if "mac" in data else ("sig", 64)
    raw = data[field]
    try:
        value = bytes.fromhex(raw) if isinstance(raw, str) else b""
    except ValueError:
        value = b""
    if len(value) != size:
        raise ProvenanceRejected(BAD_SIGNATURE, f"{field} must be {2 * size} hex characters")
    body = payload.encode()
    return Envelope(ctr, body, mac=value) if field == "mac" else Envelope(ctr, body, sig=value)


def verify_mac(secret: bytes, envelope: Envelope) -> bool:
    assert envelope.mac is not None
    expected = hmac.digest(secret, signed_bytes(envelope.ctr, envelope.payload), hashlib.sha256)
    return hmac.compare_digest(expected, envelope.mac)


def verify_signature(public_key: Ed25519PublicKey, envelope: Envelope) -> bool:
    assert envelope.sig is not None
    try:
        public_key.verify(envelope.sig, signed_bytes(envelope.ctr, envelope.payload))
    except InvalidSignature:
        return False
    return True


# --- the device side (what a device or gateway does; used by tests, examples and the docs) --------


def new_hmac_secret() -> str:
    return secrets.token_hex(32)


def seal_hmac(secret_hex: str, ctr: int, payload: bytes | str) -> bytes:
    body = payload.encode() if isinstance(payload, str) else payload
    mac = hmac.digest(bytes.fromhex(secret_hex), signed_bytes(ctr, body), hashlib.sha256)
    return orjson.dumps({"ctr": ctr, "mac": mac.hex(), "payload": body.decode()})


def seal_ed25519(private_key: Ed25519PrivateKey, ctr: int, payload: bytes | str) -> bytes:
    body = payload.encode() if isinstance(payload, str) else payload
    sig = private_key.sign(signed_bytes(ctr, body))
    return orjson.dumps({"ctr": ctr, "sig": sig.hex(), "payload": body.decode()})


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key as 64 hex characters (the raw 32 bytes)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValidationError("an Ed25519 public key is 64 hex characters (32 raw bytes)")
    return Ed25519PublicKey.from_public_bytes(raw)
