"""Tile layout arithmetic and the entry encoding."""

from __future__ import annotations

import hashlib
import random

import pytest

from iotfin.core.errors import ValidationError
from iotfin.ledger import merkle, tiles
from iotfin.ledger.entry import Entry, check_entry, entry_leaf_hash, leaf_input


def test_every_node_of_a_tile_has_its_own_slot() -> None:
    slots = {}
    for level in range(tiles.TILE_HEIGHT):
        for index in range(tiles.TILE_WIDTH >> level):
            tile, slot = tiles.locate(level, index)
            assert tile == (0, 0)
            slots[slot] = (level, index)
    assert sorted(slots) == list(range(tiles.TILE_NODES))
    # the subtree root lives one tile level up, at the base of that tile
    assert tiles.locate(tiles.TILE_HEIGHT, 0) == ((1, 0), 0)
    assert tiles.locate(tiles.TILE_HEIGHT, 3) == ((1, 0), 3)
    assert tiles.locate(0, 256) == ((0, 1), 0)


def test_proofs_touch_few_tiles_even_at_large_sizes() -> None:
    rng = random.Random(3)
    for size in (10_000_000, 123_456_789, 2**40 + 17):
        tile_levels = (size.bit_length() - 1) // tiles.TILE_HEIGHT + 1
        for _ in range(300):
            index, old = rng.randrange(size), rng.randrange(1, size)
            for ranges in (merkle.inclusion_ranges(index, size), merkle.consistency_ranges(old, size)):
                nodes = [n for lo, hi in ranges for n in merkle.subtree_cover(lo, hi)]
                assert len(tiles.tiles_for(nodes)) <= 2 * tile_levels


def test_unfilled_slots_are_never_served() -> None:
    appended = merkle.append_leaves(0, [], [merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b"), merkle.leaf_hash(b"c")])
    store = tiles.write_runs(appended.runs, {})
    assert tiles.read_nodes([(1, 0)], store)[0] == merkle.node_hash(merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b"))
    with pytest.raises(LookupError):
        tiles.read_nodes([(1, 1)], store)  # leaves 2..3 are not complete
    with pytest.raises(LookupError):
        tiles.read_nodes([(8, 0)], store)  # no such tile


def test_leaf_input_commits_to_type_and_id() -> None:
    entry = Entry("document", "inv-7", b"{}")
    assert leaf_input(*entry) == b"document\ninv-7\n{}"
    assert entry_leaf_hash(entry) == hashlib.sha256(b"\x00document\ninv-7\n{}").digest()
    assert entry_leaf_hash(entry) != entry_leaf_hash(Entry("document", "inv-8", b"{}"))


def test_json_payloads_are_canonical() -> None:
    a = Entry.from_json("consent", "c1", {"b": 1, "a": [1.0, "x"]})
    b = Entry.from_json("consent", "c1", {"a": [1.0, "x"], "b": 1})
    assert a == b and a.payload == b'{"a":[1,"x"],"b":1}'


@pytest.mark.parametrize("entry", [
    Entry("", "x", b""), Entry("t", "", b""), Entry("t\n", "x", b""), Entry("t", "a\nb", b""),
    Entry("t", "a\x00b", b""), Entry("t", "\ud800", b""), Entry("t" * 65, "x", b""), Entry("t", "x" * 129, b""),
    Entry("t", "x", "text"), Entry("t", 5, b""), ("t", "x"), None,
], ids=range(12))
def test_bad_entries(entry: object) -> None:
    with pytest.raises(ValidationError):
        check_entry(entry)  # type: ignore[arg-type]
