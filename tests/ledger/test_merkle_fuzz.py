"""Fuzzing the verifiers: whatever they are fed, they accept only true statements and raise only
InvalidProof.

"True" is judged the way a client relies on a proof: a proof is relative to a (size, root) pair,
which a signed checkpoint authenticates as a whole. So when the claimed pair is a real one of our
tree, acceptance must mean the claim holds in our tree. A mutant that pairs a real root with a
wrong size (e.g. root of 3 leaves claimed for size 4) can still verify for a leaf that really is
in it: nothing true about an authentic checkpoint is contradicted, and RFC 9162 cannot say more.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotfin.ledger.hashing import HASH_SIZE, leaf_hash
from iotfin.ledger.memtree import MemoryTree
from iotfin.ledger.verify import InvalidProof, verify_consistency, verify_inclusion
from tests.ledger import reference as ref

LEAVES = [leaf_hash(b"fuzz %d" % i) for i in range(64)]
TREE = MemoryTree(LEAVES)

anything = st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=4), st.binary(max_size=40),
                     st.lists(st.binary(max_size=40), max_size=3))
sizes = st.one_of(st.integers(-3, 70), st.integers(min_value=2**64 - 3, max_value=2**64 + 3),
                  st.integers(-(2**70), 2**70))
hashes = st.one_of(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), st.binary(max_size=40), st.sampled_from(LEAVES))
proofs = st.one_of(st.lists(hashes, max_size=8), st.lists(hashes, min_size=60, max_size=70))


def _accepts(fn, *args) -> bool:  # noqa: ANN001
    try:
        fn(*args)
    except InvalidProof:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(hashes, sizes, sizes, proofs, hashes)
def test_random_inclusion_claims(leaf, index, size, proof, root) -> None:  # noqa: ANN001
    if _accepts(verify_inclusion, leaf, index, size, proof, root):
        # The only statements true by construction: a one-leaf tree whose root is its leaf.
        assert (index, size, proof) == (0, 1, []) and leaf == root and len(leaf) == HASH_SIZE


@settings(max_examples=1500, deadline=None)
@given(sizes, sizes, proofs, hashes, hashes)
def test_random_consistency_claims(size1, size2, proof, root1, root2) -> None:  # noqa: ANN001
    if _accepts(verify_consistency, size1, size2, proof, root1, root2):
        # True by construction: a non-empty tree is consistent with itself.
        assert size1 == size2 > 0 and proof == [] and root1 == root2


@settings(max_examples=300, deadline=None)
@given(anything, anything, anything, anything, anything)
def test_wrong_types_raise_only_invalid_proof(a, b, c, d, e) -> None:  # noqa: ANN001
    for fn in (verify_inclusion, verify_consistency):
        try:
            fn(a, b, c, d, e)
        except InvalidProof:
            pass


mutation = st.sampled_from(["index", "size", "drop", "insert", "replace", "swap", "leaf", "root", "append"])
PATH_MUTATIONS = ("drop", "insert", "replace", "swap")


def _mutated_path(kind: str, proof: list[bytes], data: st.DataObject) -> list[bytes]:
    """The audit path with one hash dropped, inserted, replaced, or the first two swapped (a mutation
    the path is too short for leaves it as it is)."""
    if kind == "drop" and proof:
        return proof[:-1] if data.draw(st.booleans()) else proof[1:]
    if kind == "insert":
        return [*proof, data.draw(hashes)] if data.draw(st.booleans()) else [data.draw(hashes), *proof]
    if kind == "replace" and proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        return [*proof[:k], data.draw(hashes), *proof[k + 1:]]
    if kind == "swap" and len(proof) > 1:
        return [proof[1], proof[0], *proof[2:]]
    return proof


@settings(max_examples=1500, deadline=None)
@given(st.integers(1, 64), st.data())
def test_mutated_real_inclusion_proofs(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    leaf, proof, root = LEAVES[index], TREE.inclusion_proof(index, size), TREE.root(size)
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(mutation)
        if kind == "index":
            index = data.draw(st.integers(-2, 70))
        elif kind == "size":
            size = data.draw(st.integers(-2, 70))
        elif kind in PATH_MUTATIONS:
            proof = _mutated_path(kind, proof, data)
        elif kind == "leaf":
            leaf = data.draw(hashes)
        elif kind == "root":
            root = data.draw(st.sampled_from([TREE.root(s) for s in range(1, 65)]))
        elif kind == "append":
            proof = [*proof, root]
    if _accepts(verify_inclusion, leaf, index, size, proof, root):
        assert 0 <= index < size
        # Only an authentic (size, root) pair says anything about our tree: a mutant pairing root(3) with
        # size 2 verifies leaf 2 "at index 1" (the same hashing), and RFC 9162 cannot tell (module docstring).
        if size <= 64 and root == ref.mth(LEAVES[:size]):
            assert leaf == LEAVES[index]  # never a leaf that is not there
            assert proof == ref.path(index, LEAVES[:size])  # and exactly the real proof


@settings(max_examples=1500, deadline=None)
@given(st.integers(1, 64), st.data())
def test_mutated_real_consistency_proofs(size2: int, data: st.DataObject) -> None:
    size1 = data.draw(st.integers(1, size2))
    proof, root1, root2 = TREE.consistency_proof(size1, size2), TREE.root(size1), TREE.root(size2)
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(mutation)
        if kind == "index":
            size1 = data.draw(st.integers(-2, 70))
        elif kind == "size":
            size2 = data.draw(st.integers(-2, 70))
        elif kind in PATH_MUTATIONS:
            proof = _mutated_path(kind, proof, data)
        elif kind == "leaf":
            root1 = data.draw(st.sampled_from([TREE.root(s) for s in range(1, 65)]))
        elif kind == "root":
            root2 = data.draw(st.sampled_from([TREE.root(s) for s in range(1, 65)]))
        elif kind == "append":
            proof = [*proof, root1]
    if _accepts(verify_consistency, size1, size2, proof, root1, root2):
        assert 0 < size1 <= size2
        authentic = size2 <= 64 and root1 == ref.mth(LEAVES[:size1]) and root2 == ref.mth(LEAVES[:size2])
        if authentic:  # both pairs real: exactly the real proof
            assert proof == ref.proof(size1, LEAVES[:size2])
        else:  # a real root is never claimed consistent with a different real root of the same size
            assert not (size1 == size2 and root1 != root2)


def test_oversized_inputs_are_refused_cheaply() -> None:
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[0], 0, 2**64, [LEAVES[0]] * 64, LEAVES[0])
    with pytest.raises(InvalidProof):
        verify_consistency(1, 2**63, [LEAVES[0]] * 65, LEAVES[0], LEAVES[0])
