"""The witness (c2sp.org/tlog-witness add-checkpoint) over a real log's checkpoints and proofs."""

from __future__ import annotations

import base64
import threading

import pytest

from iotfin.ledger.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    SignerKey,
    sign_checkpoint,
    verify_note,
)
from iotfin.ledger.hashing import leaf_hash
from iotfin.ledger.memtree import MemoryTree
from iotfin.ledger.witness import (
    AddCheckpointRequest,
    BadConsistencyProof,
    BadRequest,
    NotSignedByLog,
    RootConflict,
    SizeConflict,
    UnknownLog,
    Witness,
    format_add_checkpoint_request,
    parse_add_checkpoint_request,
    parse_cosignature_response,
)

ORIGIN = "iotfin.example/log"
LOG_KEY = SignerKey.generate(ORIGIN)
W1 = SignerKey.generate("witness.example/w1", COSIGNATURE_V1)
LEAVES = [leaf_hash(b"%d" % i) for i in range(100)]
TREE = MemoryTree(LEAVES)


def _note(size: int, root: bytes | None = None, key: SignerKey = LOG_KEY, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, TREE.root(size) if root is None else root), key)


def _witness(clock: float = 1_700_000_000) -> Witness:
    return Witness([W1], {ORIGIN: [LOG_KEY.verifier()]}, clock=lambda: clock)


def _add(w: Witness, old: int, size: int, proof: list[bytes] | None = None, note: str | None = None) -> bytes:
    if proof is None:
        proof = TREE.consistency_proof(old, size) if 0 < old < size else []
    return w.add_checkpoint(format_add_checkpoint_request(old, proof, note or _note(size)))


def test_request_body_round_trip_matches_spec_layout() -> None:
    proof = TREE.consistency_proof(10, 20)
    note = _note(20)
    body = format_add_checkpoint_request(10, proof, note)
    lines = body.decode().split("\n")
    assert lines[0] == "old 10" and lines[1:1 + len(proof)] == [base64.b64encode(h).decode() for h in proof]
    assert lines[1 + len(proof)] == ""
    assert parse_add_checkpoint_request(body) == AddCheckpointRequest(10, tuple(proof), note.encode())


@pytest.mark.parametrize("body", [
    b"",
    b"old 5\n",  # no empty line
    b"old 05\n\nx",  # leading zero
    b"old -1\n\nx",
    b"new 5\n\nx",
    b"old 5\nnot base64!\n\nx",
    b"old 5\n" + base64.b64encode(b"short") + b"\n\nx",
    b"old 5\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64)) + b"\nx",  # 64 proof lines
], ids=range(8))
def test_malformed_requests(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_add_checkpoint_request(body)


def test_cosigns_a_growing_log() -> None:
    w = _witness()
    first = _add(w, 0, 10)
    lines = parse_cosignature_response(first)
    assert len(lines) == 1 and lines[0].startswith("— witness.example/w1 ")
    opened = verify_note(_note(10) + lines[0], [W1.verifier()])
    assert opened.verified[0].timestamp == 1_700_000_000
    _add(w, 10, 37)
    _add(w, 37, 37)  # same checkpoint again: fine
    assert w.latest(ORIGIN) == (37, TREE.root(37))


def test_stale_old_size_is_a_409_with_the_latest_size() -> None:
    w = _witness()
    _add(w, 0, 10)
    with pytest.raises(SizeConflict) as info:
        _add(w, 0, 20)
    assert info.value.http_status == 409 and info.value.body() == b"10\n"
    assert info.value.content_type == "text/x.tlog.size"


def test_same_size_different_root_is_a_conflict() -> None:
    w = _witness()
    _add(w, 0, 10)
    with pytest.raises(RootConflict):
        _add(w, 10, 10, note=_note(10, root=TREE.root(9)))


def test_bad_consistency_proof_is_422_and_changes_nothing() -> None:
    w = _witness()
    _add(w, 0, 10)
    forked = MemoryTree([*LEAVES[:5], leaf_hash(b"fork"), *LEAVES[6:30]])
    with pytest.raises(BadConsistencyProof) as info:
        _add(w, 10, 30, proof=forked.consistency_proof(10, 30), note=_note(30, root=forked.root()))
    assert info.value.http_status == 422
    with pytest.raises(BadConsistencyProof):
        _add(w, 10, 30, proof=TREE.consistency_proof(10, 30)[:-1])
    assert w.latest(ORIGIN) == (10, TREE.root(10))


def test_unknown_origin_wrong_key_and_bad_sizes() -> None:
    w = _witness()
    with pytest.raises(UnknownLog):
        _add(w, 0, 5, note=_note(5, origin="other.example/log", key=SignerKey.generate("other.example/log")))
    with pytest.raises(NotSignedByLog):
        _add(w, 0, 5, note=_note(5, key=SignerKey.generate(ORIGIN)))  # right name, wrong key
    with pytest.raises(BadRequest):
        _add(w, 6, 5)  # old size beyond the checkpoint
    with pytest.raises(BadRequest):
        _add(w, 0, 5, proof=[LEAVES[0]])  # proof must be empty from size 0
    with pytest.raises(BadRequest):
        w.add_checkpoint(format_add_checkpoint_request(0, [], "not a note\n"))
    with pytest.raises(BadConsistencyProof):
        _add(w, 0, 0, note=_note(0, root=LEAVES[0]))  # an empty tree with a made-up root
    assert w.latest(ORIGIN) is None
    _add(w, 0, 0)  # the genuine empty tree is fine
    assert w.latest(ORIGIN) == (0, TREE.root(0))


def test_concurrent_requests_never_roll_back() -> None:
    w = _witness()
    _add(w, 0, 10)
    outcomes: list[str] = []

    def submit(size: int) -> None:
        try:
            _add(w, 10, size)
            outcomes.append(f"ok {size}")
        except SizeConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=submit, args=(s,)) for s in (20, 30, 40, 50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.startswith("ok") for o in outcomes) == 1
    winner = int(next(o for o in outcomes if o.startswith("ok")).split()[1])
    assert w.latest(ORIGIN) == (winner, TREE.root(winner))


def test_response_parsing_rejects_non_signature_lines() -> None:
    for body in [b"", b"hello\n", "— w1 AAAA".encode()]:
        with pytest.raises(NoteError):
            parse_cosignature_response(body)


def test_witness_needs_cosignature_keys() -> None:
    with pytest.raises(ValueError):
        Witness([LOG_KEY], {ORIGIN: [LOG_KEY.verifier()]})
