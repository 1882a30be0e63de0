"""RFC 9162 §2.1 Merkle tree as one name space: re-exports hashing, compact ranges, proofs,
verification and the in-memory tree, for code that reads `merkle.<name>`. Pure code, no I/O."""

from iotfin.ledger.compact import (
    Appended,
    LevelRun,
    NodeId,
    append_leaves,
    fold_right,
    root_cover,
    subtree_cover,
)
from iotfin.ledger.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from iotfin.ledger.memtree import MemoryTree
from iotfin.ledger.proofs import (
    GetNodes,
    ProofRequestError,
    consistency_proof,
    consistency_ranges,
    hash_ranges,
    inclusion_proof,
    inclusion_ranges,
    root_hash,
)
from iotfin.ledger.verify import (
    MAX_PROOF_LENGTH,
    MAX_SIZE,
    InvalidProof,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT", "HASH_SIZE", "MAX_PROOF_LENGTH", "MAX_SIZE",
    "Appended", "GetNodes", "InvalidProof", "LevelRun", "MemoryTree", "NodeId", "ProofRequestError",
    "append_leaves", "consistency_proof", "consistency_ranges", "fold_right", "hash_ranges", "inclusion_proof",
    "inclusion_ranges", "leaf_hash", "node_hash", "root_cover", "root_hash", "subtree_cover",
    "verify_consistency", "verify_inclusion",
]
