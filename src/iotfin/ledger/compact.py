"""Compact ranges: the perfect subtrees that make up a range of leaves, and appending to a tree.

A tree of any size is described by its *perfect* subtrees: node (level, index) is the hash of
leaves [index * 2**level, (index + 1) * 2**level). Once written such a node never changes, so a
store keeps every one of them; the root of a tree of size n folds the perfect subtrees of n's
binary decomposition (its compact range), and appending only needs that range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from iotfin.ledger.hashing import EMPTY_ROOT, NODE_PREFIX

NodeId = tuple[int, int]  # (level, index)


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
        acc = hashlib.sha256(NODE_PREFIX + h + acc).digest()
    return acc


def root_cover(size: int) -> list[NodeId]:
    """The perfect subtrees whose fold is the root of a tree of `size` leaves (the compact range)."""
    return subtree_cover(0, size)


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
        row = [sha256(NODE_PREFIX + left + right).digest()
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
