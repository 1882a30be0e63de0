"""Signed notes, checkpoints and cosignatures.

Known answers come from golang.org/x/mod/sumdb/note (note.go documentation and note_test.go):
the PeterNeumann key, text and signature, and the EnochRoot verifier key and signature.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from iotfin.ledger.checkpoint import (
    COSIGNATURE_V1,
    ED25519,
    BadSignature,
    Checkpoint,
    NoteError,
    SignerKey,
    UnverifiedNote,
    VerifierKey,
    cosign,
    cosignature_message,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_note,
)

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

PETER = VerifierKey.parse(PETER_VKEY)
ENOCH = VerifierKey.parse(ENOCH_VKEY)


# --- keys (Go: TestNewVerifier, TestNewSigner) ----------------------------------------------


def test_reference_keys_round_trip() -> None:
    signer = SignerKey.parse(PETER_SKEY)
    assert signer.encode() == PETER_SKEY
    assert signer.verifier() == PETER and PETER.encode() == PETER_VKEY
    assert (PETER.name, PETER.key_id, PETER.key_type) == ("PeterNeumann", 0xC74F20A3, ED25519)
    assert ENOCH.key_id == 0xAF0CFE78
    # key ID = SHA-256(name || "\n" || 0x01 || public key)[:4]
    assert hashlib.sha256(b"PeterNeumann\n\x01" + PETER.public_key).digest()[:4] == bytes.fromhex("c74f20a3")
    assert "AYEKF" not in repr(signer)  # the seed never shows in logs


def _manglings(key: str) -> list[str]:
    """Every proper substring and every single-byte increment, as Go's tests do."""
    raw = key.encode()
    out = {raw[i:j] for i in range(len(raw) + 1) for j in range(i + 1, len(raw) + 1) if (i, j) != (0, len(raw))}
    out |= {raw[:i] + bytes([raw[i] + 1]) + raw[i + 1:] for i in range(len(raw))}
    return [m.decode("utf-8", "replace") for m in out]


def test_mangled_verifier_keys_are_rejected() -> None:
    for bad in [*_manglings(PETER_VKEY),
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong length
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"]:  # unknown algorithm
        with pytest.raises(NoteError):
            VerifierKey.parse(bad)


def test_mangled_signer_keys_are_rejected() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(NoteError):
            SignerKey.parse(bad)


def test_generated_keys_work() -> None:
    for key_type in (ED25519, COSIGNATURE_V1):
        signer = SignerKey.generate("example.com/k", key_type)
        assert SignerKey.parse(signer.encode()) == signer
        assert VerifierKey.parse(signer.verifier().encode()) == signer.verifier()
    with pytest.raises(NoteError):
        SignerKey.generate("bad name")
    with pytest.raises(NoteError):
        SignerKey.generate("a+b")


# --- notes (Go: TestSign, TestOpen) ---------------------------------------------------------


def test_sign_reproduces_the_reference_note() -> None:
    assert sign_note(TEXT, [SignerKey.parse(PETER_SKEY)]) == TEXT + "\n" + PETER_SIG


def test_signing_replaces_an_existing_signature_of_the_same_key() -> None:
    stale_sig = base64.b64encode(bytes.fromhex("c74f20a3") + b"stale").decode()
    stale = parse_note(f"{TEXT}\n— PeterNeumann {stale_sig}\n").signatures
    assert sign_note(TEXT, [SignerKey.parse(PETER_SKEY)], existing=stale) == TEXT + "\n" + PETER_SIG


def test_sign_refuses_bad_text() -> None:
    for bad in ["abc", "a\x01b\n", ""]:
        with pytest.raises(NoteError):
            sign_note(bad, [SignerKey.parse(PETER_SKEY)])


def test_open_one_known_one_unknown() -> None:
    note = verify_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [PETER])
    assert note.text == TEXT
    assert [(s.name, s.key_id) for s in note.verified] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in note.unverified] == [("EnochRoot", 0xAF0CFE78)]


def test_open_both_known() -> None:
    note = verify_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [PETER, ENOCH])
    assert [s.name for s in note.verified] == ["PeterNeumann", "EnochRoot"] and not note.unverified


def test_open_without_a_known_key_is_rejected() -> None:
    with pytest.raises(UnverifiedNote):
        verify_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    # same name, other key: unknown, not a bad signature
    other = SignerKey.generate("PeterNeumann").verifier()
    with pytest.raises(UnverifiedNote):
        verify_note(TEXT + "\n" + PETER_SIG, [other])


def test_too_many_signatures() -> None:
    for verifiers in ([PETER], []):
        with pytest.raises(NoteError) as info:
            verify_note(TEXT + "\n" + PETER_SIG * 101, verifiers)
        assert type(info.value) is NoteError


def test_invalid_signature_from_a_known_key_rejects_the_note() -> None:
    with pytest.raises(BadSignature):
        verify_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [PETER])
    with pytest.raises(BadSignature):
        verify_note(TEXT.replace("problem", "answer") + "\n" + PETER_SIG, [PETER])


def test_duplicates_are_checked_once_and_unknown_ones_kept_aside() -> None:
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = verify_note(TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd, [PETER])
    assert len(note.verified) == 1
    assert [s.line for s in note.unverified] == [ENOCH_SIG, enoch_abcd]


@pytest.mark.parametrize("msg", [
    TEXT,
    TEXT + "\n",
    TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + TEXT + "\n" + PETER_SIG,
    b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
    TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    TEXT + "\n" + PETER_SIG + "\n",  # an extra newline after the signatures
    TEXT + "\n" + PETER_SIG.replace("— ", "-- "),
    TEXT + "\n" + "— PeterNeumann \n",
    TEXT + "\n" + "— PeterNeumann AAAA\n",  # shorter than key ID + 1 byte
    TEXT + "\n" + "— PeterNeumann not*base64\n",
    TEXT + "\r\n" + PETER_SIG,
    TEXT + "\n" + PETER_SIG[:-1] + "=\n",  # excess padding
], ids=range(14))
def test_malformed_notes(msg: str | bytes) -> None:
    with pytest.raises(NoteError) as info:
        verify_note(msg, [PETER])
    assert type(info.value) is NoteError


# --- checkpoints ----------------------------------------------------------------------------

ROOT = hashlib.sha256(b"root").digest()


def test_checkpoint_body_and_round_trip() -> None:
    cp = Checkpoint("example.com/log", 20852163, ROOT, ("ext one",))
    body = cp.body()
    assert body == f"example.com/log\n20852163\n{base64.b64encode(ROOT).decode()}\next one\n"
    assert parse_checkpoint(body) == cp
    key = SignerKey.generate("example.com/log")
    note = sign_checkpoint(cp, key)
    assert open_checkpoint(note, [key.verifier()], origin="example.com/log")[0] == cp
    with pytest.raises(NoteError):
        open_checkpoint(note, [key.verifier()], origin="example.com/other")


def test_spec_example_checkpoint_text_parses() -> None:
    # c2sp.org/tlog-checkpoint example body
    cp = parse_checkpoint("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
    assert (cp.origin, cp.size, len(cp.root)) == ("example.com/behind-the-sofa", 20852163, 32)


@pytest.mark.parametrize("text", [
    "origin\n5\n",  # no root
    "origin\n05\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
    "origin\n-5\n" + base64.b64encode(ROOT).decode() + "\n",
    "origin\n5\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # short root
    "origin\n5\n" + base64.b64encode(ROOT).decode(),  # missing final newline
    "origin\n5\n" + base64.b64encode(ROOT).decode() + "\n\n",  # empty extension line
    "\n5\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
    "origin\n5\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n",  # unpadded
    "origin\n٥\n" + base64.b64encode(ROOT).decode() + "\n",  # a non-ASCII digit
], ids=range(9))
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


# --- cosignatures (c2sp.org/tlog-cosignature) ------------------------------------------------


def test_cosignature_layout_and_verification() -> None:
    cp = Checkpoint("example.com/log", 7, ROOT)
    log_key = SignerKey.generate("example.com/log")
    witness = SignerKey.generate("witness.example/w1", COSIGNATURE_V1)
    note = sign_checkpoint(cp, log_key)
    line = cosign(cp.body(), witness, 1679315147)
    raw = base64.b64decode(line.removeprefix("— witness.example/w1 ").rstrip("\n"))
    wkey = witness.verifier()
    # key ID uses type byte 0x04; then uint64 timestamp; then the Ed25519 signature
    assert raw[:4] == hashlib.sha256(b"witness.example/w1\n\x04" + wkey.public_key).digest()[:4]
    assert int.from_bytes(raw[4:12], "big") == 1679315147 and len(raw) == 76
    assert cosignature_message(cp.body().encode(), 1679315147).startswith(b"cosignature/v1\ntime 1679315147\n")
    opened = verify_note(note + line, [log_key.verifier(), wkey])
    assert {s.name: s.timestamp for s in opened.verified} == {"example.com/log": None, "witness.example/w1": 1679315147}
    # a verifier that trusts only the witness also accepts the note: its cosignature stands alone
    assert [s.name for s in verify_note(note + line, [wkey]).verified] == ["witness.example/w1"]


def test_cosignature_is_bound_to_time_and_body() -> None:
    cp = Checkpoint("example.com/log", 7, ROOT)
    witness = SignerKey.generate("witness.example/w1", COSIGNATURE_V1)
    line = cosign(cp.body(), witness, 1000)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[11] ^= 1  # change the timestamp
    forged = f"— witness.example/w1 {base64.b64encode(raw).decode()}\n"
    with pytest.raises(BadSignature):
        verify_note(cp.body() + "\n" + forged, [witness.verifier()])
    other = Checkpoint("example.com/log", 8, ROOT).body()
    with pytest.raises(BadSignature):
        verify_note(other + "\n" + line, [witness.verifier()])
    # the same key as a plain note key (type 0x01) has another key ID: the line is unknown to it
    plain = VerifierKey(witness.name, ED25519, witness.verifier().public_key)
    with pytest.raises(UnverifiedNote):
        verify_note(cp.body() + "\n" + line, [plain])


def test_cosign_needs_a_cosignature_key_and_a_checkpoint() -> None:
    with pytest.raises(NoteError):
        cosign(Checkpoint("o", 1, ROOT).body(), SignerKey.generate("w"), 1)
    with pytest.raises(NoteError):
        cosign("not a checkpoint\n", SignerKey.generate("w", COSIGNATURE_V1), 1)
    with pytest.raises(NoteError):
        cosign(Checkpoint("o", 1, ROOT).body(), SignerKey.generate("w", COSIGNATURE_V1), 2**63)
