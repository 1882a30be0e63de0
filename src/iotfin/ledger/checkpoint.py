"""Checkpoints (c2sp.org/tlog-checkpoint) in signed notes (c2sp.org/signed-note), and witness
cosignatures (c2sp.org/tlog-cosignature, Ed25519 cosignature/v1). Pure: no I/O, no clock.

Byte-compatible with golang.org/x/mod/sumdb/note: same key encodings, key IDs, note layout and
acceptance rules (the tests replay its PeterNeumann example).

- vkey:  <name>+<8 hex key ID>+base64(type || public key)
- skey:  PRIVATE+KEY+<name>+<8 hex key ID>+base64(type || Ed25519 seed)
- key ID = SHA-256(name || "\\n" || type || public key)[:4], type 0x01 for note signatures and
  0x04 for timestamped witness cosignatures
- signature line: "— <name> base64(key ID || signature)\\n"; for cosignatures the signature is
  uint64 big-endian timestamp || Ed25519 over "cosignature/v1\\ntime <ts>\\n" || checkpoint body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iotfin.core.errors import ValidationError
from iotfin.ledger.hashing import HASH_SIZE
from iotfin.ledger.verify import MAX_SIZE

ED25519 = 0x01
COSIGNATURE_V1 = 0x04  # timestamped Ed25519 witness cosignature
_KEY_TYPES = (ED25519, COSIGNATURE_V1)

SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, space
#: The spec asks verifiers to accept at least 16 signatures; Go's reader stops at 100.
MAX_SIGNATURES = 100
MAX_TIMESTAMP = (1 << 63) - 1

_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValidationError):
    """A key, note or checkpoint that is malformed: rejected as a whole."""

    code = "malformed-note"


class BadSignature(NoteError):
    """A signature from a known key does not verify: the whole note is rejected."""

    code = "bad-signature"


class UnverifiedNote(NoteError):
    """The note is well formed but no trusted key signed it."""

    code = "unverified-note"


# --- keys -------------------------------------------------------------------------------------


def key_id(name: str, key_type: int, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space, no '+': the same rule as Go's isValidName."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def decode_base64(text: str) -> bytes:
    """Standard base64, canonical only: one encoding per value, so signature lines cannot be
    re-spelt (Python alone would accept excess padding such as "AAAA=")."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError("invalid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError("non-canonical base64")
    return raw


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class VerifierKey:
    """A public key a note or cosignature is checked against."""

    name: str
    key_type: int
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteError(f"invalid key name: {self.name!r}")
        if self.key_type not in _KEY_TYPES or len(self.public_key) != 32:
            raise NoteError("unsupported key type or wrong key length")
        object.__setattr__(self, "key_id", key_id(self.name, self.key_type, self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        name, _, rest = vkey.partition("+")
        id_hex, _, key_b64 = rest.partition("+")
        if not _HEX8.fullmatch(id_hex) or not is_valid_key_name(name):
            raise NoteError("malformed verifier key")
        raw = decode_base64(key_b64)
        if len(raw) < 1:
            raise NoteError("malformed verifier key")
        key = cls(name, raw[0], raw[1:])
        if key.key_id != int(id_hex, 16):
            raise NoteError("verifier key ID does not match the key")
        return key

    def encode(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{encode_base64(bytes([self.key_type]) + self.public_key)}"

    def verify(self, text: bytes, signature: bytes) -> int | None:
        """Check a signature (the bytes after the key ID); returns the cosignature timestamp, if any."""
        timestamp = None
        message = text
        if self.key_type == COSIGNATURE_V1:
            if len(signature) != 8 + 64:
                raise BadSignature(f"cosignature by {self.name} has the wrong length")
            timestamp = int.from_bytes(signature[:8], "big")
            if timestamp > MAX_TIMESTAMP:
                raise BadSignature(f"cosignature by {self.name} has an out-of-range timestamp")
            message, signature = cosignature_message(text, timestamp), signature[8:]
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            raise BadSignature(f"signature by {self.name}+{self.key_id:08x} does not verify") from None
        return timestamp


@dataclass(frozen=True, repr=False)
class SignerKey:
    """A private key. repr() hides the seed so it never lands in a log line."""

    name: str
    key_type: int
    seed: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteError(f"invalid key name: {self.name!r}")
        if self.key_type not in _KEY_TYPES or len(self.seed) != 32:
            raise NoteError("unsupported key type or wrong seed length")

    def __repr__(self) -> str:
        return f"SignerKey({self.verifier().encode()!r})"

    @classmethod
    def generate(cls, name: str, key_type: int = ED25519) -> SignerKey:
        return cls(name, key_type, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, skey: str) -> SignerKey:
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY" or not _HEX8.fullmatch(parts[3]):
            raise NoteError("malformed signer key")
        raw = decode_base64(parts[4])
        if len(raw) < 1 or not is_valid_key_name(parts[2]):
            raise NoteError("malformed signer key")
        key = cls(parts[2], raw[0], raw[1:])
        if key.verifier().key_id != int(parts[3], 16):
            raise NoteError("signer key ID does not match the key")
        return key

    def encode(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encode_base64(bytes([self.key_type]) + self.seed)}"

    @property
    def key_id(self) -> int:
        return self.verifier().key_id

    def verifier(self) -> VerifierKey:
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()
        return VerifierKey(self.name, self.key_type, public)

    def signature_line(self, text: bytes, timestamp: int | None = None) -> str:
        """The note signature line of this key over `text` (a cosignature needs a timestamp)."""
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        if self.key_type == COSIGNATURE_V1:
            if timestamp is None or not 0 <= timestamp <= MAX_TIMESTAMP:
                raise NoteError("a cosignature needs a timestamp in 0..2**63-1")
            raw = timestamp.to_bytes(8, "big") + private.sign(cosignature_message(text, timestamp))
        else:
            raw = private.sign(text)
        return f"{SIGNATURE_PREFIX}{self.name} {encode_base64(self.key_id.to_bytes(4, 'big') + raw)}\n"


def cosignature_message(checkpoint_body: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_body


# --- notes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes  # after the 4-byte key ID
    line: str  # as it appeared, with its newline, for re-emitting unknown signatures verbatim
    timestamp: int | None = None  # cosignatures only, once verified


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class VerifiedNote:
    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def _as_text(msg: str | bytes) -> str:
    if isinstance(msg, bytes):
        try:
            msg = msg.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if not isinstance(msg, str):
        raise NoteError("note must be str or bytes")
    if any(ch < " " and ch != "\n" for ch in msg):
        raise NoteError("note contains a control character")
    try:
        msg.encode("utf-8")  # lone surrogates cannot be signed bytes
    except UnicodeEncodeError:
        raise NoteError("note is not valid UTF-8") from None
    return msg


def parse_note(msg: str | bytes) -> Note:
    """Split a signed note into text and signatures (checks structure only, not signatures)."""
    msg = _as_text(msg)
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    text, block = msg[:split + 1], msg[split + 2:]
    if not block or not block.endswith("\n"):
        raise NoteError("signature block must be non-empty and end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("signature line must start with an em dash and a space")
        name, _, b64 = line[len(SIGNATURE_PREFIX):].partition(" ")
        if not is_valid_key_name(name) or not b64:
            raise NoteError("malformed signature line")
        raw = decode_base64(b64)
        if len(raw) < 5:
            raise NoteError("signature too short")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:], line + "\n"))
    return Note(text, tuple(signatures))


def verify_note(msg: str | bytes, verifiers: Iterable[VerifierKey]) -> VerifiedNote:
    """Open a note: every signature by a known key must verify, and at least one must exist.

    Signatures by unknown keys are kept aside (the spec requires ignoring them: key rotation,
    witnesses). Repeated signatures by one key are checked once.
    """
    note = parse_note(msg)
    known: dict[tuple[str, int], VerifierKey] = {}
    for v in verifiers:
        if (v.name, v.key_id) in known and known[(v.name, v.key_id)] != v:
            raise NoteError(f"ambiguous verifier keys for {v.name}+{v.key_id:08x}")
        known[(v.name, v.key_id)] = v
    text = note.text.encode()
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: dict[str, NoteSignature] = {}
    for sig in note.signatures:
        key = known.get((sig.name, sig.key_id))
        if key is None:
            unverified.setdefault(sig.line, sig)
            continue
        if (sig.name, sig.key_id) in verified:
            continue
        timestamp = key.verify(text, sig.signature)
        verified[(sig.name, sig.key_id)] = NoteSignature(sig.name, sig.key_id, sig.signature, sig.line, timestamp)
    if not verified:
        raise UnverifiedNote("note has no signature from a trusted key")
    return VerifiedNote(note.text, tuple(verified.values()), tuple(unverified.values()))


def sign_note(text: str, signers: Sequence[SignerKey], existing: Sequence[NoteSignature] = (),
              timestamp: int | None = None) -> str:
    """A signed note: text, blank line, existing signatures not replaced, then one line per signer."""
    text = _as_text(text)
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if not signers and not existing:
        raise NoteError("a note needs at least one signature")
    mine = {(s.name, s.key_id) for s in signers}
    kept = [sig.line for sig in existing if (sig.name, sig.key_id) not in mine]
    raw = text.encode()
    new = [s.signature_line(raw, timestamp if s.key_type == COSIGNATURE_V1 else None) for s in signers]
    return text + "\n" + "".join(kept) + "".join(new)


# --- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be one non-empty line")
        if type(self.size) is not int or not 0 <= self.size <= MAX_SIZE:
            raise NoteError(f"checkpoint size out of range: {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise NoteError(f"checkpoint root must be {HASH_SIZE} bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise NoteError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        lines = [self.origin, str(self.size), encode_base64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a note's text: origin, size, base64 root, then optional extension lines."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint needs origin, size and root lines")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise NoteError("checkpoint size must be a decimal without leading zeroes")
    return Checkpoint(origin, int(size), decode_base64(root), tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: SignerKey) -> str:
    return sign_note(checkpoint.body(), [signer])


def open_checkpoint(msg: str | bytes, verifiers: Iterable[VerifierKey],
                    origin: str | None = None) -> tuple[Checkpoint, VerifiedNote]:
    """Verify a checkpoint note and parse its body; optionally insist on the expected origin."""
    note = verify_note(msg, verifiers)
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint, note


def cosign(checkpoint_note_text: str, witness: SignerKey, timestamp: int) -> str:
    """A witness's cosignature line over a checkpoint body (the note text, without signatures)."""
    if witness.key_type != COSIGNATURE_V1:
        raise NoteError("cosignatures need a cosignature/v1 (type 0x04) key")
    parse_checkpoint(checkpoint_note_text)
    return witness.signature_line(checkpoint_note_text.encode(), timestamp)
