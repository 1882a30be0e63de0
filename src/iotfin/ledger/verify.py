"""RFC 9162 §2.1.3.2 and §2.1.4.2 proof verification, step by step.

Shares nothing with proof generation but the hash function, so a bug in one side is caught by the
other. Every malformed or out-of-range claim raises InvalidProof; nothing larger than the wire
allows is hashed.
"""

from __future__ import annotations

from collections.abc import Sequence

from iotfin.core.errors import ValidationError
from iotfin.ledger.hashing import HASH_SIZE, node_hash

#: Sizes are uint64 on the wire (RFC 9162, C2SP checkpoints); larger claims are refused, not hashed.
MAX_SIZE = (1 << 64) - 1
#: A proof in a tree of at most 2**64 leaves has at most 64 elements.
MAX_PROOF_LENGTH = 64


class InvalidProof(ValidationError):
    """A proof, a size or a hash that does not verify. The only error the verifiers raise."""

    code = "invalid-proof"


def _check_size(name: str, value: object) -> int:
    if type(value) is not int:
        raise InvalidProof(f"{name} must be an integer")
    if not 0 <= value <= MAX_SIZE:
        raise InvalidProof(f"{name} out of range: {value}")
    return value


def _check_hashes(proof: object) -> list[bytes]:
    if not isinstance(proof, (list, tuple)):
        raise InvalidProof("proof must be a list of hashes")
    if len(proof) > MAX_PROOF_LENGTH:
        raise InvalidProof(f"proof has {len(proof)} elements, more than any tree allows")
    for element in proof:
        if not isinstance(element, bytes) or len(element) != HASH_SIZE:
            raise InvalidProof(f"proof elements must be {HASH_SIZE}-byte hashes")
    return list(proof)


def _same_hash(claimed: object, computed: bytes) -> bool:
    return isinstance(claimed, bytes) and claimed == computed


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise InvalidProof unless `proof` shows leaf hash `leaf` at `index` in the tree `root` of `tree_size`."""
    index = _check_size("leaf index", index)
    tree_size = _check_size("tree size", tree_size)
    path = _check_hashes(proof)
    if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
        raise InvalidProof(f"leaf hash must be {HASH_SIZE} bytes")
    # 1. leaf_index must be below tree_size
    if index >= tree_size:
        raise InvalidProof(f"leaf index {index} is not below tree size {tree_size}")
    # 2. fn = leaf_index, sn = tree_size - 1; 3. r = leaf hash
    fn, sn, r = index, tree_size - 1, leaf
    # 4. fold in each proof element
    for p in path:
        if sn == 0:  # 4a: more elements than the tree has levels (trailing garbage)
            raise InvalidProof("proof is longer than the tree allows")
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    # 5. all levels consumed and the root matches
    if sn != 0:
        raise InvalidProof("proof is shorter than the tree requires")
    if not _same_hash(root, r):
        raise InvalidProof("computed root does not match")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise InvalidProof unless `proof` shows tree (size1, root1) is a prefix of tree (size2, root2).

    RFC 9162 defines the algorithm for 0 < size1 < size2. Equal sizes are consistent exactly when
    the proof is empty and the roots are equal. A claim from size 0 proves nothing and is refused
    (the transparency-dev test vectors expect that).
    """
    size1 = _check_size("size1", size1)
    size2 = _check_size("size2", size2)
    path = _check_hashes(proof)
    if size2 < size1:
        raise InvalidProof(f"size2 ({size2}) is smaller than size1 ({size1})")
    if size1 == 0:
        raise InvalidProof("a consistency proof from an empty tree proves nothing")
    if size1 == size2:
        if path:
            raise InvalidProof("equal sizes need an empty proof")
        if not isinstance(root1, bytes) or not _same_hash(root2, root1):
            raise InvalidProof("equal sizes but different roots")
        return
    # 1. an empty path never proves anything
    if not path:
        raise InvalidProof("empty consistency proof")
    # 2. if size1 is a power of two the old root is itself the first node of the path
    if size1 & (size1 - 1) == 0:
        if not isinstance(root1, bytes) or len(root1) != HASH_SIZE:
            raise InvalidProof(f"root1 must be {HASH_SIZE} bytes")
        path = [root1, *path]
    # 3. fn = first - 1, sn = second - 1
    fn, sn = size1 - 1, size2 - 1
    # 4. skip the levels where the old tree's right edge is a left child
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = first element
    fr = sr = path[0]
    # 6. fold in the rest
    for c in path[1:]:
        if sn == 0:  # 6a
            raise InvalidProof("proof is longer than the trees allow")
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    # 7. both roots reproduced and every level consumed
    if sn != 0:
        raise InvalidProof("proof is shorter than the trees require")
    if not _same_hash(root1, fr):
        raise InvalidProof("computed old root does not match root1")
    if not _same_hash(root2, sr):
        raise InvalidProof("computed new root does not match root2")
