"""A transparency-log witness (c2sp.org/tlog-witness) and the add-checkpoint wire format. No I/O:
the HTTP route maps the exceptions below to their status codes and writes the bytes returned.

Request body:  "old <size>\\n", up to 63 base64 consistency-proof lines, "\\n", the checkpoint note.
Response body: one cosignature line per witness key ("— <name> <base64>\\n").
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from iotfin.core.errors import IotfinError
from iotfin.ledger import merkle
from iotfin.ledger.checkpoint import (
    COSIGNATURE_V1,
    SIGNATURE_PREFIX,
    Checkpoint,
    NoteError,
    SignerKey,
    VerifierKey,
    decode_base64,
    encode_base64,
    parse_checkpoint,
    parse_note,
    verify_note,
)

MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]*)")


class WitnessError(IotfinError):
    """Base of the add-checkpoint refusals; http_status is what the spec prescribes."""


class BadRequest(WitnessError):
    http_status = 400
    code = "bad-request"


class NotSignedByLog(WitnessError):
    http_status = 403
    code = "not-signed-by-log"


class UnknownLog(WitnessError):
    http_status = 404
    code = "unknown-log"


class SizeConflict(WitnessError):
    """The client's old size is not the witness's latest cosigned size for this log."""

    http_status = 409
    code = "size-conflict"
    content_type = SIZE_CONTENT_TYPE

    def __init__(self, latest_size: int):
        super().__init__(f"latest cosigned size is {latest_size}")
        self.latest_size = latest_size

    def body(self) -> bytes:
        return b"%d\n" % self.latest_size


class RootConflict(WitnessError):
    """Same size as the latest cosigned checkpoint but a different root: a split view."""

    http_status = 409
    code = "root-conflict"


class BadConsistencyProof(WitnessError):
    http_status = 422
    code = "bad-consistency-proof"


# --- wire format ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    old_size: int
    proof: tuple[bytes, ...]
    checkpoint_note: bytes


def format_add_checkpoint_request(old_size: int, proof: Sequence[bytes], checkpoint_note: str | bytes) -> bytes:
    if len(proof) > MAX_PROOF_LINES:
        raise ValueError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    note = checkpoint_note.encode() if isinstance(checkpoint_note, str) else checkpoint_note
    lines = [f"old {old_size}\n", *(f"{encode_base64(h)}\n" for h in proof), "\n"]
    return "".join(lines).encode() + note


def parse_add_checkpoint_request(body: bytes) -> AddCheckpointRequest:
    """Split the body into old size, proof hashes and the note (whose signatures are checked later)."""
    pos = 0
    lines: list[str] = []
    while True:
        end = body.find(b"\n", pos)
        if end < 0:
            raise BadRequest("request ends before the empty line that precedes the checkpoint")
        line = body[pos:end]
        pos = end + 1
        if not line:
            break
        if len(lines) > MAX_PROOF_LINES:
            raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            lines.append(line.decode("ascii"))
        except UnicodeDecodeError:
            raise BadRequest("request header lines must be ASCII") from None
    if not lines:
        raise BadRequest("missing old size line")
    match = _OLD_LINE.fullmatch(lines[0])
    if match is None:
        raise BadRequest("first line must be 'old <size>' without leading zeroes")
    proof = []
    for line in lines[1:]:
        try:
            h = decode_base64(line)
        except NoteError:
            raise BadRequest("consistency proof line is not base64") from None
        if len(h) != merkle.HASH_SIZE:
            raise BadRequest(f"consistency proof lines must each encode {merkle.HASH_SIZE} bytes")
        proof.append(h)
    old_size = int(match.group(1))
    if old_size > merkle.MAX_SIZE:
        raise BadRequest("old size out of range")
    return AddCheckpointRequest(old_size, tuple(proof), body[pos:])


def format_cosignature_response(lines: Sequence[str]) -> bytes:
    return "".join(lines).encode()


def parse_cosignature_response(body: bytes) -> list[str]:
    """The signature lines of a 200 response; attach them to the checkpoint note and verify it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("response is not UTF-8") from None
    if not text or not text.endswith("\n"):
        raise NoteError("response must be one or more newline-terminated signature lines")
    lines = [line + "\n" for line in text[:-1].split("\n")]
    if any(not line.startswith(SIGNATURE_PREFIX) for line in lines):
        raise NoteError("every response line must be a note signature line")
    return lines


# --- the witness ------------------------------------------------------------------------------


class Witness:
    """Cosigns checkpoints of known logs that extend what it last cosigned for them.

    State (latest cosigned size and root per origin) lives in memory here; checking the old size
    and recording the new one happen under one lock, as the spec requires, so two requests
    cannot roll each other back.
    """

    def __init__(self, cosigners: Sequence[SignerKey], logs: Mapping[str, Sequence[VerifierKey]],
                 clock: Callable[[], float] = time.time):
        if not cosigners or any(k.key_type != COSIGNATURE_V1 for k in cosigners):
            raise ValueError("a witness needs at least one cosignature/v1 (type 0x04) key")
        self._cosigners = tuple(cosigners)
        self._logs = {origin: tuple(keys) for origin, keys in logs.items()}
        self._clock = clock
        self._latest: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def verifiers(self) -> list[VerifierKey]:
        return [k.verifier() for k in self._cosigners]

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        with self._lock:
            return self._latest.get(origin)

    def add_checkpoint(self, body: bytes) -> bytes:
        """Handle one add-checkpoint request body; returns the 200 response body or raises."""
        request = parse_add_checkpoint_request(body)
        checkpoint, text = self._open(request.checkpoint_note)
        if request.old_size > checkpoint.size:
            raise BadRequest(f"old size {request.old_size} is beyond the checkpoint size {checkpoint.size}")
        if request.old_size == 0 and request.proof:
            raise BadRequest("the consistency proof must be empty when the old size is zero")
        if checkpoint.size == 0 and checkpoint.root != merkle.EMPTY_ROOT:
            raise BadConsistencyProof("an empty tree's root is SHA-256 of nothing")
        with self._lock:
            latest_size, latest_root = self._latest.get(checkpoint.origin, (0, merkle.EMPTY_ROOT))
            if request.old_size != latest_size:
                raise SizeConflict(latest_size)
            if request.old_size == checkpoint.size:
                if request.proof:
                    raise BadConsistencyProof("equal sizes need an empty proof")
                if latest_size and checkpoint.root != latest_root:
                    raise RootConflict(f"size {latest_size} was cosigned with a different root")
            elif request.old_size > 0:
                try:
                    merkle.verify_consistency(request.old_size, checkpoint.size, list(request.proof),
                                              latest_root, checkpoint.root)
                except merkle.InvalidProof as exc:
                    raise BadConsistencyProof(str(exc)) from exc
            self._latest[checkpoint.origin] = (checkpoint.size, checkpoint.root)
            timestamp = int(self._clock())
        return format_cosignature_response([k.signature_line(text, timestamp) for k in self._cosigners])

    def _open(self, note: bytes) -> tuple[Checkpoint, bytes]:
        try:
            checkpoint = parse_checkpoint(parse_note(note).text)
        except NoteError as exc:
            raise BadRequest(f"malformed checkpoint: {exc}") from exc
        keys = self._logs.get(checkpoint.origin)
        if keys is None:
            raise UnknownLog(f"unknown log origin {checkpoint.origin!r}")
        try:
            verified = verify_note(note, keys)
        except NoteError as exc:
            raise NotSignedByLog(f"checkpoint is not signed by a key of {checkpoint.origin!r}: {exc}") from exc
        return checkpoint, verified.text.encode()
