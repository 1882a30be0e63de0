"""Properties of generation and verification, against the naive RFC reference.

Generation (stored perfect subtrees, iterative) and verification (RFC 9162 step by step) share no
code, and the reference shares none with either.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotfin.ledger import merkle, tiles
from iotfin.ledger.hashing import EMPTY_ROOT, leaf_hash
from iotfin.ledger.memtree import MemoryTree
from iotfin.ledger.proofs import ProofRequestError
from iotfin.ledger.verify import InvalidProof, verify_consistency, verify_inclusion
from tests.ledger import reference as ref

LEAVES = [leaf_hash(b"leaf %d" % i) for i in range(1100)]


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _grow(batches: list[int]) -> tuple[MemoryTree, dict[tiles.TileId, bytes]]:
    """Append in the given batch sizes, into both the list tree and a tile store."""
    tree = MemoryTree()
    tile_store: dict[tiles.TileId, bytes] = {}
    size = 0
    for count in batches:
        new = LEAVES[size:size + count]
        existing = {t: tile_store[t] for t in tiles.edge_tiles(size, size + count) if t in tile_store}
        appended = merkle.append_leaves(size, tiles.read_nodes(merkle.root_cover(size), existing), new)
        tile_store.update(tiles.write_runs(appended.runs, existing))
        assert tree.append(new) == appended.root
        size = appended.size
    return tree, tile_store


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert MemoryTree().root() == EMPTY_ROOT


def test_known_hashes() -> None:
    # RFC 6962 §2.1 domain separation: 0x00 for leaves, 0x01 for nodes.
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 300), min_size=1, max_size=6).filter(lambda b: sum(b) <= len(LEAVES)))
def test_append_in_any_batches_matches_reference(batches: list[int]) -> None:
    tree, tile_store = _grow(batches)
    size = sum(batches)
    assert tree.root() == ref.mth(LEAVES[:size])
    from_tiles = merkle.root_hash(size, lambda ids: tiles.read_nodes(ids, tile_store))
    assert from_tiles == tree.root()


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 700), st.data())
def test_every_proof_verifies_and_equals_reference(size: int, data: st.DataObject) -> None:
    tree, tile_store = _grow([size])
    from_tiles = lambda ids: tiles.read_nodes(ids, tile_store)  # noqa: E731
    root = ref.mth(LEAVES[:size])
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(index, size, from_tiles)
    assert proof == tree.inclusion_proof(index) == ref.path(index, LEAVES[:size])
    verify_inclusion(LEAVES[index], index, size, proof, root)
    size1 = data.draw(st.integers(1, size), label="size1")
    cproof = merkle.consistency_proof(size1, size, from_tiles)
    assert cproof == ref.proof(size1, LEAVES[:size])
    verify_consistency(size1, size, cproof, ref.mth(LEAVES[:size1]), root)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 255, 256, 257, 600])
def test_all_proofs_of_a_tree(size: int) -> None:
    tree, _ = _grow([size])
    root = tree.root()
    for index in range(size):
        verify_inclusion(LEAVES[index], index, size, tree.inclusion_proof(index), root)
    for size1 in range(1, size + 1):
        verify_consistency(size1, size, tree.consistency_proof(size1), tree.root(size1), root)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 600), st.data())
def test_any_flipped_bit_is_rejected(size: int, data: st.DataObject) -> None:
    tree, _ = _grow([size])
    root = tree.root()
    index = data.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index)
    # the leaf, the root, and every element of the proof
    for bit in data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=8)):
        with pytest.raises(InvalidProof):
            verify_inclusion(_flip(LEAVES[index], bit), index, size, proof, root)
        with pytest.raises(InvalidProof):
            verify_inclusion(LEAVES[index], index, size, proof, _flip(root, bit))
        for k in range(len(proof)):
            bad = [*proof[:k], _flip(proof[k], bit), *proof[k + 1:]]
            with pytest.raises(InvalidProof):
                verify_inclusion(LEAVES[index], index, size, bad, root)
    size1 = data.draw(st.integers(1, size - 1))
    root1 = tree.root(size1)
    cproof = tree.consistency_proof(size1)
    for bit in data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=8)):
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size, cproof, _flip(root1, bit), root)
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size, cproof, root1, _flip(root, bit))
        for k in range(len(cproof)):
            bad = [*cproof[:k], _flip(cproof[k], bit), *cproof[k + 1:]]
            with pytest.raises(InvalidProof):
                verify_consistency(size1, size, bad, root1, root)


def test_exhaustive_bit_flips_on_one_proof() -> None:
    tree, _ = _grow([77])
    root, proof = tree.root(), tree.inclusion_proof(45)
    for k in range(len(proof)):
        for bit in range(256):
            bad = [*proof[:k], _flip(proof[k], bit), *proof[k + 1:]]
            with pytest.raises(InvalidProof):
                verify_inclusion(LEAVES[45], 45, 77, bad, root)


def test_generation_refuses_impossible_requests() -> None:
    tree, _ = _grow([10])
    for index, size in [(10, 10), (-1, 10), (0, 0)]:
        with pytest.raises(ProofRequestError):
            tree.inclusion_proof(index, size)
    for size1, size2 in [(0, 5), (6, 5), (-1, 3)]:
        with pytest.raises(ProofRequestError):
            tree.consistency_proof(size1, size2)
    with pytest.raises(ProofRequestError):
        tree.inclusion_proof(3, 11)  # beyond the tree
    assert tree.consistency_proof(10, 10) == []


def test_proof_reads_are_logarithmic() -> None:
    """A proof reads O(log n) stored nodes, never a range of leaves."""
    size = (1 << 40) + 12345  # no tree is built: count the nodes asked for
    asked: list[int] = []

    def counting(ids):  # noqa: ANN001, ANN202
        asked.append(len(ids))
        return [b"\x00" * 32] * len(ids)

    merkle.inclusion_proof(size - 7, size, counting)
    merkle.consistency_proof(size // 3, size, counting)
    merkle.root_hash(size, counting)
    assert len(asked) == 3 and max(asked) <= 2 * 41
