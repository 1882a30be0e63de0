"""RFC 9162 §2.1.3.1 and §2.1.4.1 proofs, and the root, assembled from stored perfect subtrees.

A proof element is either a perfect subtree or a right-edge range [lo, n), which again folds
O(log n) perfect subtrees; each proof has at most one such range. Generation takes a batched
reader `get_nodes([(level, index), ...]) -> [hash, ...]` so a SQL store answers a whole proof with
one query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from iotfin.core.errors import ValidationError
from iotfin.ledger.compact import NodeId, fold_right, subtree_cover
from iotfin.ledger.hashing import EMPTY_ROOT

GetNodes = Callable[[Sequence[NodeId]], Sequence[bytes]]


class ProofRequestError(ValidationError):
    """A proof was asked for sizes or an index the tree cannot prove (e.g. index >= size)."""

    code = "bad-proof-request"


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2), the split point of RFC 9162 §2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


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
