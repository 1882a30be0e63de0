"""Where each perfect-subtree hash lives in the tile table. Pure layout arithmetic, no I/O.

Writing one row per Merkle node costs as much as writing the leaf itself, which halves append
throughput on SQLite (measured: ~5 µs per row either way). So nodes are packed into tiles: the
tile at (tile level t, index i) holds, for the subtree rooted at node (H*(t+1), i), every node of
levels H*t .. H*t+H-1, i.e. the subtree minus its root, with H = TILE_HEIGHT. Tile level 0 thus
starts with the leaf hashes themselves.

Why this cut: an inclusion path walks up one subtree per tile level, and every sibling on that
walk lies inside the same tile, so a proof at ten million leaves reads 3 or 4 tiles.

Inside a tile, nodes are stored level by level (the tile's base level first), each level left to
right, 32 bytes each. A tile on the right edge of the tree is partly filled; its unfilled slots are
zero bytes, which are never read because proofs only ask for complete nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from iotfin.ledger.compact import LevelRun, NodeId
from iotfin.ledger.hashing import HASH_SIZE

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # nodes on a tile's base level
TILE_NODES = 2 * TILE_WIDTH - 2  # base level + each level above it, below the subtree root
TILE_BYTES = TILE_NODES * HASH_SIZE

TileId = tuple[int, int]  # (tile level, tile index)

# Offset (in nodes) of each relative level inside a tile: level r starts after levels 0..r-1.
_LEVEL_OFFSET = [sum(TILE_WIDTH >> q for q in range(r)) for r in range(TILE_HEIGHT)]
_EMPTY_SLOT = bytes(HASH_SIZE)


def locate(level: int, index: int) -> tuple[TileId, int]:
    """The tile holding node (level, index) and the node's slot in it."""
    tile_level, rel_level = divmod(level, TILE_HEIGHT)
    span = TILE_HEIGHT - rel_level  # the tile's subtree root is `span` levels above the node
    tile_index = index >> span
    slot = _LEVEL_OFFSET[rel_level] + index - (tile_index << span)
    return (tile_level, tile_index), slot


def tiles_for(nodes: Iterable[NodeId]) -> list[TileId]:
    """The distinct tiles a set of nodes needs, in first-use order."""
    return list(dict.fromkeys(locate(level, index)[0] for level, index in nodes))


def read_nodes(nodes: Sequence[NodeId], tiles: dict[TileId, bytes]) -> list[bytes]:
    """Slice each node's hash out of the fetched tiles; a missing tile or empty slot is corruption."""
    out: list[bytes] = []
    for level, index in nodes:
        tile_id, slot = locate(level, index)
        blob = tiles.get(tile_id)
        start = slot * HASH_SIZE
        h = blob[start:start + HASH_SIZE] if blob is not None else b""
        if len(h) != HASH_SIZE or h == _EMPTY_SLOT:
            raise LookupError(f"node {(level, index)} is not stored (tile {tile_id} missing or not filled there)")
        out.append(h)
    return out


def edge_tiles(size: int, new_size: int) -> list[TileId]:
    """The right-edge tile of every tile level a log growing from `size` to `new_size` touches.

    These are the only tiles that may already exist and receive new nodes; they also hold every
    node of the old compact range (root_cover(size)), which appending needs.
    """
    top_level = max(new_size.bit_length() - 1, 0)
    return [(t, size >> (TILE_HEIGHT * (t + 1))) for t in range(top_level // TILE_HEIGHT + 1)]


def write_runs(runs: Sequence[LevelRun], existing: dict[TileId, bytes]) -> dict[TileId, bytes]:
    """Merge newly completed nodes into their tiles; returns every changed tile's full new content."""
    changed: dict[TileId, bytearray] = {}
    for level, (first, hashes) in enumerate(runs):
        tile_level, rel_level = divmod(level, TILE_HEIGHT)
        span = TILE_HEIGHT - rel_level
        offset = _LEVEL_OFFSET[rel_level]
        end = first + len(hashes)
        index = first
        while index < end:
            tile_index = index >> span
            stop = min(end, (tile_index + 1) << span)
            tile_id = (tile_level, tile_index)
            blob = changed.get(tile_id)
            if blob is None:
                blob = changed[tile_id] = bytearray(existing.get(tile_id) or bytes(TILE_BYTES))
            start = (offset + index - (tile_index << span)) * HASH_SIZE
            blob[start:start + (stop - index) * HASH_SIZE] = b"".join(hashes[index - first:stop - first])
            index = stop
    return {tile_id: bytes(blob) for tile_id, blob in changed.items()}
