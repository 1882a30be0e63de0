"""A deliberately naive RFC 9162 §2.1 Merkle tree: recursion straight from the RFC's definitions.

Slow and obviously right; the tests compare the production code (stored subtrees, iterative
proofs) against it.
"""

from __future__ import annotations

import hashlib

from iotfin.ledger.entry import Entry, entry_leaf_hash


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    n = len(leaves)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n])."""
    return subproof(m, leaves, True)


def entries(start: int, count: int, kind: str = "test_record") -> list[Entry]:
    return [Entry(kind, f"r{i}", b'{"n":%d}' % i) for i in range(start, start + count)]


def hashes_of(items: list[Entry]) -> list[bytes]:
    return [entry_leaf_hash(e) for e in items]
