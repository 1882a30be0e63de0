"""A Merkle tree in memory, built with the same append as the SQL store (no database)."""

from __future__ import annotations

from collections.abc import Sequence

from iotfin.ledger.compact import NodeId, append_leaves, root_cover
from iotfin.ledger.proofs import ProofRequestError, consistency_proof, inclusion_proof, root_hash


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
