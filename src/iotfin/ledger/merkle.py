"""RFC 9162 §2.1 Merkle tree: hashing, proofs over stored perfect subtrees, and independent verifiers.

Pure code, no I/O. A tree of any size is described by its *perfect* subtrees: node (level, index)
is the hash of leaves [index * 2**level, (index + 1) * 2**level). Once written such a node never
changes, so a store keeps every one of them and anything the RFC asks for is assembled from
O(log n) of them:

- the root of a tree of size n folds the perfect subtrees of n's binary decomposition;
- a proof element is either a perfect subtree or a right-edge range [lo, n), which again folds
  O(log n) perfect subtrees; each proof has at most one such range.

Generation takes a batched reader `get_nodes([(level, index), ...]) -> [hash, ...]` so a SQL store
answers a whole proof with one query. The verifiers share nothing with generation: they follow
RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, so a bug in one side is caught by the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

from iotfin.core.errors import ValidationError

HASH_SIZE = 32
#: RFC 9162 §2.1.1: the hash of an empty list is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Sizes are uint64 on the wire (RFC 9162, C2SP checkpoints); larger claims are refused, not hashed.
MAX_SIZE = (1 << 64) - 1
#: A proof in a tree of at most 2**64 leaves has at most 64 elements.
MAX_PROOF_LENGTH = 64

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeId = tuple[int, int]  # (level, index)
GetNodes = Callable[[Sequence[NodeId]], Sequence[bytes]]


class InvalidProof(ValidationError):
    """A proof, a size or a hash that does not verify. The only error the verifiers raise."""

    code = "invalid-proof"


class ProofRequestError(ValidationError):
    """A proof was asked for sizes or an index the tree cannot prove (e.g. index >= size)."""

    code = "bad-proof-request"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2), the split point of RFC 9162 §2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


# --- which perfect subtrees make up a range --------------------------------------------------


def subtree_cover(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees that tile leaves [begin, end), left to right, each as large as alignment allows.

    For the ranges proofs use (begin aligned to a power of two >= end - begin) this is the binary
    decomposition of end - begin in descending size, and the range's RFC hash is their right fold.
    """
    width = end - begin
    if width & (width - 1) == 0 and begin & (width - 1) == 0 and width:  # one perfect subtree: most ranges
        level = width.bit_length() - 1
        return [(level, begin >> level)]
    nodes: list[NodeId] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)  # begin must be aligned to 2**level
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its cover's hashes: H(h0, H(h1, ... H(h[-2], h[-1])))."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = hashlib.sha256(_NODE_PREFIX + h + acc).digest()
    return acc


def root_cover(size: int) -> list[NodeId]:
    """The perfect subtrees whose fold is the root of a tree of `size` leaves (the compact range)."""
    return subtree_cover(0, size)


# --- proof shapes: which leaf ranges a proof's elements hash -----------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as leaf ranges, in proof order (bottom up)."""
    if not 0 <= index < size:
        raise ProofRequestError(f"inclusion proof needs 0 <= index < size (index {index}, size {size})")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]) as leaf ranges, in proof order (bottom up)."""
    if not 0 < size1 <= size2:
        raise ProofRequestError(f"consistency proof needs 0 < size1 <= size2 (got {size1}, {size2})")
    ranges: list[tuple[int, int]] = []
    lo, hi, m = 0, size2, size1
    starts_at_root = True  # SUBPROOF's b: the old tree's root is known to the verifier, so omit it
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            m -= k
            starts_at_root = False
    if not starts_at_root:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def hash_ranges(ranges: Sequence[tuple[int, int]], get_nodes: GetNodes) -> list[bytes]:
    """The RFC hash of each range, reading all the perfect subtrees they need in one batch."""
    covers = [subtree_cover(lo, hi) for lo, hi in ranges]
    wanted = [node for cover in covers for node in cover]
    # Called exactly once, even with no nodes: a store can check the tree size in that same read.
    fetched = get_nodes(wanted)
    if len(fetched) != len(wanted):
        raise RuntimeError(f"node reader returned {len(fetched)} hashes for {len(wanted)} nodes")
    out: list[bytes] = []
    pos = 0
    for cover in covers:
        n = len(cover)
        out.append(fetched[pos] if n == 1 else fold_right(fetched[pos:pos + n]))
        pos += n
    return out


def root_hash(size: int, get_nodes: GetNodes) -> bytes:
    if size < 0:
        raise ProofRequestError(f"tree size must be >= 0, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return hash_ranges([(0, size)], get_nodes)[0]


def inclusion_proof(index: int, size: int, get_nodes: GetNodes) -> list[bytes]:
    return hash_ranges(inclusion_ranges(index, size), get_nodes)


def consistency_proof(size1: int, size2: int, get_nodes: GetNodes) -> list[bytes]:
    return hash_ranges(consistency_ranges(size1, size2), get_nodes)


# --- appending --------------------------------------------------------------------------------


class LevelRun(NamedTuple):
    """New perfect nodes at one level: indexes first, first+1, ... of that level."""

    first: int
    hashes: list[bytes]


class Appended(NamedTuple):
    size: int
    root: bytes
    runs: list[LevelRun]  # runs[level]; runs[0] are the new leaf hashes


def append_leaves(old_size: int, border: Sequence[bytes], leaf_hashes: Sequence[bytes]) -> Appended:
    """Every perfect node completed by appending `leaf_hashes`, and the new root.

    `border` holds the hashes of root_cover(old_size) (the old compact range), the only old nodes
    a new node can have as left child. Work is one hash per new node, level by level, so the
    inner loop stays a list comprehension.
    """
    old_cover = root_cover(old_size)
    if len(border) != len(old_cover):
        raise ValueError(f"border has {len(border)} hashes, size {old_size} needs {len(old_cover)}")
    border_at = {level: h for (level, _), h in zip(old_cover, border, strict=True)}
    sha256 = hashlib.sha256
    runs: list[LevelRun] = []
    first, row = old_size, list(leaf_hashes)
    level = 0
    while row:
        runs.append(LevelRun(first, row))
        if first & 1:  # the left sibling of the first new node is the old border node at this level
            row = [border_at[level], *row]
            first -= 1
        # An odd last node has no right sibling yet: it waits in the new border, hence strict=False.
        row = [sha256(_NODE_PREFIX + left + right).digest()
               for left, right in zip(row[0::2], row[1::2], strict=False)]
        first >>= 1
        level += 1
    new_size = old_size + len(leaf_hashes)
    if new_size == old_size:
        return Appended(old_size, fold_right(list(border)) if border else EMPTY_ROOT, [])

    def node(level: int, index: int) -> bytes:
        if level < len(runs) and index >= runs[level].first:
            return runs[level].hashes[index - runs[level].first]
        return border_at[level]

    return Appended(new_size, fold_right([node(lv, ix) for lv, ix in root_cover(new_size)]), runs)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2, independent of the code above) -------------


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


class MemoryTree:
    """An append-only tree in lists: every perfect node kept per level. For tests, tools and peers
    that check a log without a database; the SQL store runs the same append_leaves."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()):
        self.levels: list[list[bytes]] = []
        self.size = 0
        if leaf_hashes:
            self.append(leaf_hashes)

    def append(self, leaf_hashes: Sequence[bytes]) -> bytes:
        border = self.get_nodes(root_cover(self.size))
        appended = append_leaves(self.size, border, leaf_hashes)
        for level, run in enumerate(appended.runs):
            if level == len(self.levels):
                self.levels.append([])
            if len(self.levels[level]) != run.first:
                raise RuntimeError(f"level {level} run starts at {run.first}, level has {len(self.levels[level])}")
            self.levels[level].extend(run.hashes)
        self.size = appended.size
        return appended.root

    def get_nodes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        return [self.levels[level][index] for level, index in nodes]

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ProofRequestError(f"tree size {size} is beyond the tree's size {self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        return root_hash(self._size(size), self.get_nodes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self._size(size), self.get_nodes)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(size1, self._size(size2), self.get_nodes)
