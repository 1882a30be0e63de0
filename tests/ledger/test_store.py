"""The SQL log on SQLite and PostgreSQL: proofs, persistence, crash safety, concurrency, checkpoints."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from iotfin.core.errors import NotFound, ValidationError
from iotfin.db import migrate
from iotfin.db.engine import make_engine, write_transaction
from iotfin.ledger import merkle
from iotfin.ledger.checkpoint import SignerKey, open_checkpoint
from iotfin.ledger.entry import Entry
from iotfin.ledger.proofs import ProofRequestError
from iotfin.ledger.store import InconsistentCheckpoint, LedgerCorrupt, LedgerStore
from iotfin.ledger.tiles import locate
from iotfin.ledger.verify import verify_consistency, verify_inclusion
from tests.ledger import reference as ref

LEDGER_REVISION = "0002"
REPO_SRC = Path(__file__).resolve().parents[2] / "src"
ORIGIN = "iotfin.example/ledger/test"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate.upgrade(engine, LEDGER_REVISION)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def store(engine: Engine) -> LedgerStore:
    return LedgerStore(engine)


def test_empty_log(store: LedgerStore) -> None:
    assert store.size() == 0
    assert store.root() == merkle.EMPTY_ROOT
    assert store.append_batch([]) == (0, 0, merkle.EMPTY_ROOT)
    with pytest.raises(ProofRequestError):
        store.inclusion_proof(0)
    with pytest.raises(NotFound):
        store.leaf(0)


def test_batches_across_tile_boundaries_match_reference(store: LedgerStore) -> None:
    items: list[Entry] = []
    sizes = []
    for count in [1, 254, 1, 1, 300, 7, 1, 500]:  # crosses the 256-leaf tile edge several ways
        batch = ref.entries(len(items), count)
        first, size, root = store.append_batch(batch)
        assert first == len(items)
        items += batch
        assert size == len(items)
        assert root == ref.mth(ref.hashes_of(items))
        sizes.append(size)
    leaves = ref.hashes_of(items)
    n = len(items)
    rng = random.Random(7)
    for index in [0, 1, 255, 256, 257, 511, 512, n - 1, *rng.sample(range(n), 20)]:
        for size in {index + 1, n, rng.randint(index + 1, n)}:
            proof = store.inclusion_proof(index, size)
            assert proof == ref.path(index, leaves[:size])
            verify_inclusion(leaves[index], index, size, proof, store.root(size))
    for size1 in sizes:
        for size2 in sizes:
            if size1 <= size2:
                proof = store.consistency_proof(size1, size2)
                assert proof == ref.proof(size1, leaves[:size2])
                verify_consistency(size1, size2, proof, ref.mth(leaves[:size1]), ref.mth(leaves[:size2]))
    record = store.leaf(300)
    assert (record.index, record.record_type, record.record_id) == (300, "test_record", "r300")
    assert record.payload == b'{"n":300}' and record.leaf_hash == leaves[300]
    assert record.created_at.tzinfo is not None


def test_proof_requests_beyond_the_log_are_refused(store: LedgerStore) -> None:
    store.append_batch(ref.entries(0, 10))
    with pytest.raises(ProofRequestError):
        store.inclusion_proof(3, 11)
    with pytest.raises(ProofRequestError):
        store.inclusion_proof(10)
    with pytest.raises(ProofRequestError):
        store.consistency_proof(4, 11)
    with pytest.raises(ProofRequestError):
        store.root(11)


def test_bad_entries_are_rejected_before_anything_is_written(store: LedgerStore) -> None:
    store.append_batch(ref.entries(0, 3))
    for bad in [Entry("", "x", b""), Entry("t", "a\nb", b""), Entry("t", "x", "not bytes"), Entry("t" * 65, "x", b"")]:
        with pytest.raises(ValidationError):
            store.append_batch([*ref.entries(3, 2), bad])
    assert store.size() == 3


def test_persists_across_reopen(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, LEDGER_REVISION)
    items = ref.entries(0, 700)
    LedgerStore(engine).append_batch(items[:400])
    engine.dispose()

    reopened = make_engine(db_url)
    store = LedgerStore(reopened)
    assert store.size() == 400
    assert store.root() == ref.mth(ref.hashes_of(items[:400]))
    store.append_batch(items[400:])
    assert store.root() == ref.mth(ref.hashes_of(items))
    assert store.leaf(399).record_id == "r399"
    reopened.dispose()


def test_failure_mid_batch_changes_nothing(store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    items = ref.entries(0, 600)
    store.append_batch(items[:300])
    before = (store.size(), store.root())

    def explode(*_args: object) -> None:
        raise RuntimeError("injected failure after the leaves were inserted")

    monkeypatch.setattr(LedgerStore, "_write_tiles", explode)
    with pytest.raises(RuntimeError, match="injected"):
        store.append_batch(items[300:])
    monkeypatch.undo()
    assert (store.size(), store.root()) == before
    with pytest.raises(NotFound):
        store.leaf(300)
    assert store.append_batch(items[300:]).root == ref.mth(ref.hashes_of(items))


def test_append_inside_the_callers_transaction_commits_and_rolls_back_with_it(store: LedgerStore,
                                                                               engine: Engine) -> None:
    """`conn=`: the leaves join the caller's write transaction (one durable commit for a record and
    its anchor); if the caller's transaction fails, the leaves and the head go with it."""
    items = ref.entries(0, 40)
    store.append_batch(items[:10])
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE side_rows (n INTEGER)"))
    with write_transaction(engine) as conn:
        conn.execute(text("INSERT INTO side_rows VALUES (1)"))
        result = store.append_batch(items[10:20], conn=conn)
        assert result.first_index == 10 and result.size == 20
    assert store.size() == 20 and store.root() == ref.mth(ref.hashes_of(items[:20]))
    assert store.leaf(19).record_id == items[19].record_id

    with pytest.raises(RuntimeError, match="caller failed"), write_transaction(engine) as conn:
        conn.execute(text("INSERT INTO side_rows VALUES (2)"))
        store.append_batch(items[20:30], conn=conn)
        raise RuntimeError("caller failed after the append")
    assert store.size() == 20 and store.root() == ref.mth(ref.hashes_of(items[:20]))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM side_rows")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM ledger_leaves")).scalar() == 20
    assert store.append_batch(items[20:], conn=None).root == ref.mth(ref.hashes_of(items))


def test_process_killed_mid_batch_leaves_a_consistent_log(db_url: str) -> None:
    """A real crash: the appending process dies (os._exit) after writing leaves, before commit."""
    engine = make_engine(db_url)
    migrate.upgrade(engine, LEDGER_REVISION)
    store = LedgerStore(engine)
    items = ref.entries(0, 900)
    store.append_batch(items[:500])
    child = textwrap.dedent(f"""
        import os, sys
        from iotfin.db.engine import make_engine, write_transaction
        from iotfin.ledger.store import LedgerStore
        from tests.ledger import reference as ref
        def die(*args):
            sys.stdout.flush()
            os._exit(37)
        LedgerStore._write_tiles = die
        LedgerStore(make_engine({db_url!r})).append_batch(ref.entries(500, 400))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_SRC), str(REPO_SRC.parent)])}
    result = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 37, result.stderr
    engine.dispose()

    reopened = make_engine(db_url)
    store = LedgerStore(reopened)
    assert store.size() == 500
    assert store.root() == ref.mth(ref.hashes_of(items[:500]))
    with reopened.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_leaves")).scalar() == 500
    assert store.append_batch(items[500:]).root == ref.mth(ref.hashes_of(items))
    reopened.dispose()


def test_concurrent_appenders_serialise(store: LedgerStore) -> None:
    writers, batches = 4, 6
    results: list[tuple[int, int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(writer: int) -> None:
        rng = random.Random(writer)
        try:
            for b in range(batches):
                count = rng.randint(1, 120)
                batch = [Entry("w", f"{writer}-{b}-{i}", b"%d" % i) for i in range(count)]
                first, size, _root = store.append_batch(batch)
                assert size - first == count
                with lock:
                    results.append((first, size, f"{writer}-{b}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    # Each batch got a contiguous range of its own, and together they tile [0, size).
    results.sort()
    assert results[0][0] == 0
    assert all(a[1] == b[0] for a, b in zip(results, results[1:], strict=False))
    size = store.size()
    assert size == results[-1][1]
    records = [store.leaf(i) for i in range(size)]
    for first, end, tag in results:
        assert all(r.record_id.startswith(tag + "-") for r in records[first:end])
    leaves = [r.leaf_hash for r in records]
    assert store.root() == ref.mth(leaves)
    proof = store.inclusion_proof(size // 2)
    verify_inclusion(leaves[size // 2], size // 2, size, proof, store.root())


def test_tampered_payload_is_detected(store: LedgerStore, engine: Engine) -> None:
    store.append_batch(ref.entries(0, 5))
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_leaves SET payload = :p WHERE idx = 2"), {"p": b'{"n":999}'})
    with pytest.raises(LedgerCorrupt):
        store.leaf(2)


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_are_signed_and_consistent(store: LedgerStore) -> None:
    key = SignerKey.generate(ORIGIN)
    items = ref.entries(0, 300)
    store.append_batch(items[:100])
    note1 = store.sign_checkpoint(key, ORIGIN)
    store.append_batch(items[100:])
    note2 = store.sign_checkpoint(key, ORIGIN, extensions=["note: test"])
    cp1, _ = open_checkpoint(note1, [key.verifier()], origin=ORIGIN)
    cp2, _ = open_checkpoint(note2, [key.verifier()], origin=ORIGIN)
    assert (cp1.size, cp2.size) == (100, 300) and cp2.extensions == ("note: test",)
    verify_consistency(100, 300, store.consistency_proof(100, 300), cp1.root, cp2.root)
    assert store.sign_checkpoint(key, ORIGIN) == note2  # the head is already signed: same note
    latest = store.latest_checkpoint()
    assert latest is not None and (latest.size, latest.root, latest.note) == (300, cp2.root, note2)


def test_never_signs_a_checkpoint_inconsistent_with_a_signed_one(db_url: str, tmp_path: Path) -> None:
    """Rewrite history under the log (a forked tree at the same positions): signing must refuse."""
    engine = make_engine(db_url)
    migrate.upgrade(engine, LEDGER_REVISION)
    store = LedgerStore(engine)
    key = SignerKey.generate(ORIGIN)
    store.append_batch(ref.entries(0, 200))
    store.sign_checkpoint(key, ORIGIN)

    # A different log of 260 leaves whose leaf 17 differs, built elsewhere ...
    fork_engine = make_engine(f"sqlite:///{tmp_path / 'fork.db'}")
    migrate.upgrade(fork_engine, LEDGER_REVISION)
    forged = ref.entries(0, 260)
    forged[17] = Entry("test_record", "r17", b"forged")
    LedgerStore(fork_engine).append_batch(forged)
    # ... copied over this log's tree (tiles and head), keeping its signed checkpoints.
    with fork_engine.connect() as src:
        tiles = src.execute(text("SELECT level, idx, hashes FROM ledger_tiles")).all()
        head = src.execute(text("SELECT size, root FROM ledger_head")).one()
    with engine.begin() as dst:
        dst.execute(text("DELETE FROM ledger_tiles"))
        for level, idx, hashes in tiles:
            dst.execute(text("INSERT INTO ledger_tiles (level, idx, hashes) VALUES (:l, :i, :h)"),
                        {"l": level, "i": idx, "h": hashes})
        dst.execute(text("UPDATE ledger_head SET size = :s, root = :r"), {"s": head.size, "r": head.root})
    fork_engine.dispose()

    with pytest.raises(InconsistentCheckpoint):
        store.sign_checkpoint(key, ORIGIN)
    assert store.latest_checkpoint().size == 200  # nothing new was signed
    engine.dispose()


def test_refuses_to_sign_a_shrunken_or_corrupted_log(store: LedgerStore, engine: Engine) -> None:
    key = SignerKey.generate(ORIGIN)
    store.append_batch(ref.entries(0, 50))
    store.sign_checkpoint(key, ORIGIN)
    with engine.begin() as conn:  # the head claims fewer leaves than were signed
        conn.execute(text("UPDATE ledger_head SET size = 40"))
    with pytest.raises((InconsistentCheckpoint, LedgerCorrupt)):
        store.sign_checkpoint(key, ORIGIN)
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_head SET size = 50"))
        # flip the stored hash of node (5, 0), the first subtree of the root of 50 leaves
        (tile_level, tile_index), slot = locate(5, 0)
        assert (tile_level, tile_index) == (0, 0)
        blob = bytearray(conn.execute(text("SELECT hashes FROM ledger_tiles WHERE level = 0 AND idx = 0")).scalar())
        blob[slot * 32] ^= 1
        conn.execute(text("UPDATE ledger_tiles SET hashes = :h WHERE level = 0 AND idx = 0"), {"h": bytes(blob)})
    with pytest.raises(LedgerCorrupt):
        store.sign_checkpoint(key, ORIGIN)
    assert store.latest_checkpoint().size == 50


def test_non_ascii_labels_and_binary_payloads_round_trip(store: LedgerStore) -> None:
    # The PostgreSQL path writes the leaves as a hand-built binary COPY stream: field lengths are in
    # bytes (UTF-8), payloads may hold any byte, empty payloads are allowed.
    items = [Entry("贷款合同", f"合同-{i}-é", bytes(range(256)) * (i % 3)) for i in range(50)]
    items += ref.entries(50, 20, kind="a\\b\tc".replace("\t", "-"))
    store.append_batch(items)
    assert store.root() == ref.mth(ref.hashes_of(items))
    for index in (0, 1, 2, 49, 69):
        leaf = store.leaf(index)  # re-hashes the stored row against the tree
        assert (leaf.record_type, leaf.record_id, leaf.payload) == tuple(items[index])
