"""The transparency log in the system of record (SQLite or PostgreSQL, same code).

Appending a batch is one transaction: the leaves, every perfect-subtree hash the batch completes
(packed into tiles, see iotfin.ledger.tiles) and the new head. A crash leaves either all of it or
none of it. Writers serialise on the head row (PostgreSQL: SELECT ... FOR UPDATE) or on SQLite's
write lock (BEGIN IMMEDIATE), so concurrent appenders each see the previous one's head.

Readers need no lock: complete nodes never change once written, so a proof for any size up to
the head is assembled from whatever snapshot the query sees.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, Result, Row, func, select
from sqlalchemy.dialects import postgresql, sqlite

from iotfin.core.errors import Conflict, IotfinError, NotFound
from iotfin.db.bulk import (
    BINARY_COPY_HEADER,
    BINARY_COPY_TRAILER,
    binary_copy,
    binary_field_length,
    copy_rows,
)
from iotfin.db.engine import driver_cursor, write_transaction
from iotfin.ledger import merkle, tiles
from iotfin.ledger.checkpoint import Checkpoint, SignerKey, sign_checkpoint
from iotfin.ledger.entry import Entry, LeafRecord, check_entry, entry_leaf_hash
from iotfin.ledger.tables import ledger_anchors, ledger_checkpoints, ledger_head, ledger_leaves

HEAD_ID = 1


class AppendResult(NamedTuple):
    first_index: int
    size: int
    root: bytes


class CheckpointRecord(NamedTuple):
    size: int
    root: bytes
    note: str


class InconsistentCheckpoint(Conflict):
    """Signing would contradict a checkpoint the log already signed. Nothing was signed."""

    code = "inconsistent-checkpoint"


class LedgerCorrupt(IotfinError):
    """Stored hashes disagree with each other (a tampered or damaged database)."""

    http_status = 500
    code = "ledger-corrupt"


# Hot-path statements go to the DB-API driver directly; written with "?" and adapted to the
# driver's placeholder. Table and column names are constants, values are always parameters.
_LEAF_INSERT_SQL = "INSERT INTO ledger_leaves (idx, record_type, record_id, payload) VALUES (?, ?, ?, ?)"
_LEAF_COLUMNS = ("idx", "record_type", "record_id", "payload")
_HEAD_SQL = f"SELECT size, root FROM ledger_head WHERE id = {HEAD_ID}"
_HEAD_UPDATE_SQL = f"UPDATE ledger_head SET size = ?, root = ?, updated_at = CURRENT_TIMESTAMP WHERE id = {HEAD_ID}"
_TILE_INSERT_SQL = "INSERT INTO ledger_tiles (level, idx, hashes) VALUES (?, ?, ?)"
_TILE_UPDATE_SQL = "UPDATE ledger_tiles SET hashes = ? WHERE level = ? AND idx = ?"
_ANCHOR_INSERT_SQL = "INSERT INTO ledger_anchors (leaf_index, record_type, record_id, salt) VALUES (?, ?, ?, ?)"


_ROW_HEAD = struct.Struct(">hiq").pack  # a leaf's COPY row: 4 fields, then idx (8 bytes)
_T = TypeVar("_T")


def _hashes_and_copy_tails(entries: Sequence[Entry]) -> tuple[list[bytes], list[bytes]]:
    """One pass over checked entries: each leaf hash, and each leaf's binary COPY row after its idx
    (record_type, record_id, payload as length-prefixed fields). Hand-written rather than psycopg's
    `write_row`: its dumpers (bytea's is pure Python) cost ~1 µs a row, about 10 ms of a 10k-leaf
    batch's ~68 ms (measured, issue 21); here the encoding is done once for the hash and the row."""
    sha256, length = hashlib.sha256, binary_field_length
    hashes: list[bytes] = []
    tails: list[bytes] = []
    add_hash, add_tail = hashes.append, tails.append
    for t, i, p in entries:
        tb, ib = t.encode(), i.encode()
        add_hash(sha256(b"\x00%b\n%b\n%b" % (tb, ib, p)).digest())  # entry.leaf_input's bytes
        add_tail(b"%b%b%b%b%b%b" % (length(len(tb)), tb, length(len(ib)), ib, length(len(p)), p))
    return hashes, tails


def copy_leaves(conn: Connection, first_index: int, entries: Sequence[Entry], tails: Sequence[bytes],
                meanwhile: Callable[[], _T]) -> _T:
    """The leaves from `first_index` on by one binary COPY (`tails` from _hashes_and_copy_tails);
    `meanwhile()` runs while the server inserts them (the Merkle append: the two overlap on two
    cores) and its result is returned. `entries` are for other write paths (bench/ledger_pg.py)."""
    stream = b"".join([BINARY_COPY_HEADER, *[_ROW_HEAD(4, 8, k) + tail
                                             for k, tail in zip(range(first_index, first_index + len(tails)), tails, strict=True)],
                       BINARY_COPY_TRAILER])
    with binary_copy(conn, "ledger_leaves", _LEAF_COLUMNS) as copy:
        copy.write(stream)
        return meanwhile()


_ANCHOR_COLUMNS = ("leaf_index", "record_type", "record_id", "salt")
_ANCHOR_PG_TYPES = ("bigint", "varchar", "varchar", "bytea")

_HEAD_MARK = -1  # the "level" of the head row when it rides along with tiles


@lru_cache(maxsize=128)
def _tiles_sql(count: int, with_head: bool) -> str:
    # OR of (level, idx) pairs: SQLite plans a row-value IN (VALUES ...) as a full scan (measured
    # 2 ms at 300k leaves), while each OR term is an index lookup on both backends.
    parts = []
    if count:
        pairs = " OR ".join(["(level = ? AND idx = ?)"] * count)
        parts.append(f"SELECT level, idx, hashes FROM ledger_tiles WHERE {pairs}")
    if with_head:
        parts.append(f"SELECT {_HEAD_MARK}, size, root FROM ledger_head WHERE id = {HEAD_ID}")
    return " UNION ALL ".join(parts)


def _sql(conn: Connection, statement: str) -> str:
    return statement if conn.dialect.paramstyle == "qmark" else statement.replace("?", "%s")


def _fetchone(cursor: Any, sql: str) -> Any:
    cursor.execute(sql)
    return cursor.fetchone()


class LedgerStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        # On PostgreSQL reads skip the transaction: no BEGIN/ROLLBACK round trips, and nothing to
        # isolate since complete nodes never change. On SQLite that option costs more than it
        # saves (it switches isolation with PRAGMAs at every checkout; measured +0.2 ms a proof).
        self._reader = (engine.execution_options(isolation_level="AUTOCOMMIT")
                        if engine.dialect.name == "postgresql" else engine)

    # --- writing ------------------------------------------------------------------------------

    def append_batch(self, entries: Sequence[Entry],
                     also: Callable[[Connection, int], None] | None = None,
                     conn: Connection | None = None) -> AppendResult:
        """Append entries in order, atomically. Returns (index of the first, new size, new root).

        `also(conn, first_index)` runs inside the same transaction, for rows that must commit with
        the leaves (e.g. the salts of confidential records). With `conn`, the leaves join the
        caller's write transaction (opened with `write_transaction`) instead of committing on their
        own: the records and their anchor then commit, or roll back, together with one durable
        commit; the head row is locked until the caller commits."""
        for entry in entries:
            check_entry(entry)
        # Leaf hashes (and, for PostgreSQL, the leaves' COPY rows) do not depend on position:
        # computed before taking the write lock.
        tails = None
        if self.engine.dialect.name == "postgresql":
            hashes, tails = _hashes_and_copy_tails(entries)
        else:
            sha256 = hashlib.sha256
            hashes = [sha256(b"\x00%s\n%s\n%s" % (t.encode(), i.encode(), p)).digest() for t, i, p in entries]
            # (the same bytes as entry.leaf_input, inlined: this loop runs 10k times per batch)
        if conn is not None:
            return self._append(conn, entries, hashes, tails, also)
        with write_transaction(self.engine) as own:
            return self._append(own, entries, hashes, tails, also)

    def _append(self, conn: Connection, entries: Sequence[Entry], hashes: list[bytes], tails: list[bytes] | None,
                also: Callable[[Connection, int], None] | None) -> AppendResult:
        size, root = self._lock_head(conn)
        if not entries:
            return AppendResult(size, size, root)
        new_size = size + len(entries)
        existing, _ = self._fetch_tiles(conn, tiles.edge_tiles(size, new_size))
        try:
            border = tiles.read_nodes(merkle.root_cover(size), existing)
        except LookupError as exc:
            raise LedgerCorrupt(f"cannot append: {exc}") from exc
        if tails is not None:  # binary COPY: ~3x executemany's leaves/s (bench/ledger_pg.py)
            appended = copy_leaves(conn, size, entries, tails, lambda: merkle.append_leaves(size, border, hashes))
        else:
            appended = merkle.append_leaves(size, border, hashes)
            # Straight to the driver: SQLAlchemy's per-row parameter processing costs more than
            # SQLite's insert itself (measured: 61k vs 97k leaves/s end to end). Values still
            # travel as bound parameters only.
            rows = zip(range(size, new_size), *zip(*entries, strict=True), strict=True)
            driver_cursor(conn).executemany(_sql(conn, _LEAF_INSERT_SQL), list(rows))
        self._write_tiles(conn, tiles.write_runs(appended.runs, existing), existing)
        driver_cursor(conn).execute(_sql(conn, _HEAD_UPDATE_SQL), (appended.size, appended.root))
        if also is not None:
            also(conn, size)
        return AppendResult(size, appended.size, appended.root)

    def sign_checkpoint(self, signer: SignerKey, origin: str, extensions: Sequence[str] = ()) -> str:
        """Sign and persist a checkpoint of the current head; returns the signed note.

        The log must never sign two inconsistent checkpoints (c2sp.org/tlog-checkpoint). Under the
        write lock, the head is re-derived from the stored nodes and a consistency proof from the
        latest signed checkpoint is built and verified against that checkpoint's persisted root;
        any disagreement raises and signs nothing. Consistency is transitive, so checking the
        latest one covers all earlier ones. If the head is already signed, that note is returned.
        """
        with write_transaction(self.engine) as conn:
            size, head_root = self._lock_head(conn)
            get_nodes = self._node_reader(conn)
            root = merkle.root_hash(size, get_nodes)
            if root != head_root:
                raise LedgerCorrupt(f"head root at size {size} does not match the stored nodes")
            latest = self._latest_checkpoint(conn)
            if latest is not None:
                if latest.size > size:
                    raise InconsistentCheckpoint(f"log has {size} leaves but a checkpoint at {latest.size} is signed")
                if latest.size == size:
                    if latest.root != root:
                        raise InconsistentCheckpoint(f"signed root at size {size} differs from the log's")
                    return latest.note
                if latest.size > 0:
                    proof = merkle.consistency_proof(latest.size, size, get_nodes)
                    try:
                        merkle.verify_consistency(latest.size, size, proof, latest.root, root)
                    except merkle.InvalidProof as exc:
                        raise InconsistentCheckpoint(
                            f"log at {size} is not an extension of the checkpoint at {latest.size}: {exc}") from exc
            note = sign_checkpoint(Checkpoint(origin, size, root, tuple(extensions)), signer)
            conn.execute(ledger_checkpoints.insert().values(size=size, root=root, note=note))
        return note

    @staticmethod
    def insert_anchors(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Remember which record each leaf anchors (leaf_index, record_type, record_id, salt), on the
        caller's connection: inside the append's transaction, so they commit with the leaves."""
        if len(rows) > 100 and conn.dialect.name == "postgresql":  # a bulk anchoring: COPY
            copy_rows(conn, "ledger_anchors", _ANCHOR_COLUMNS, _ANCHOR_PG_TYPES,
                      ((r["leaf_index"], r["record_type"], r["record_id"], r.get("salt")) for r in rows))
        else:
            driver_cursor(conn).executemany(_sql(conn, _ANCHOR_INSERT_SQL), [
                (r["leaf_index"], r["record_type"], r["record_id"], r.get("salt")) for r in rows])

    # --- reading ------------------------------------------------------------------------------

    def size(self) -> int:
        with self._reader.connect() as conn:
            return self._head(conn)[0]

    def root(self, size: int | None = None) -> bytes:
        with self._reader.connect() as conn:
            if size is None:
                return self._head(conn)[1]
            return merkle.root_hash(size, self._node_reader(conn, check_size=size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        with self._reader.connect() as conn:
            if size is None:
                return merkle.inclusion_proof(index, self._head(conn)[0], self._node_reader(conn))
            return merkle.inclusion_proof(index, size, self._node_reader(conn, check_size=size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        with self._reader.connect() as conn:
            if size2 is None:
                return merkle.consistency_proof(size1, self._head(conn)[0], self._node_reader(conn))
            return merkle.consistency_proof(size1, size2, self._node_reader(conn, check_size=size2))

    def leaf(self, index: int) -> LeafRecord:
        """The entry at `index`, with its leaf hash checked against the tree (LedgerCorrupt if not)."""
        c = ledger_leaves.c
        with self._reader.connect() as conn:
            row = conn.execute(select(c.idx, c.record_type, c.record_id, c.payload, c.created_at)
                               .where(c.idx == index)).first()
            if row is None:
                raise NotFound(f"no ledger leaf at index {index}")
            stored = self._node_reader(conn)([(0, index)])[0]
        entry = Entry(row.record_type, row.record_id, bytes(row.payload))
        if entry_leaf_hash(entry) != stored:
            raise LedgerCorrupt(f"leaf {index} does not hash to the tree's leaf hash")
        return LeafRecord(index, stored, *entry, row.created_at)

    def latest_checkpoint(self) -> CheckpointRecord | None:
        with self._reader.connect() as conn:
            return self._latest_checkpoint(conn)

    # Reads on the caller's connection (a use case reading anchors, leaves and records together).

    @staticmethod
    def latest_anchor(conn: Connection, record_type: str, record_id: str) -> Row[Any] | None:
        """The record's latest anchor row (None: never anchored)."""
        return conn.execute(select(ledger_anchors).where(
            ledger_anchors.c.record_type == record_type, ledger_anchors.c.record_id == record_id)
            .order_by(ledger_anchors.c.leaf_index.desc())).first()

    @staticmethod
    def anchors(conn: Connection) -> Result[Any]:
        """Every anchor row, in leaf order."""
        return conn.execute(select(ledger_anchors).order_by(ledger_anchors.c.leaf_index))

    @staticmethod
    def recent_anchors(conn: Connection, limit: int) -> Sequence[Row[Any]]:
        """The latest `limit` anchors (leaf_index, record_type, record_id), newest first."""
        c = ledger_anchors.c
        return conn.execute(select(c.leaf_index, c.record_type, c.record_id)
                            .order_by(c.leaf_index.desc()).limit(limit)).all()

    @staticmethod
    def anchor_counts(conn: Connection) -> dict[str, int]:
        """Anchors per record type."""
        c = ledger_anchors.c
        return {str(t): int(n) for t, n in conn.execute(select(c.record_type, func.count()).group_by(c.record_type))}

    @staticmethod
    def checkpoint_roots(conn: Connection) -> Result[Any]:
        """(size, root) of every signed checkpoint."""
        return conn.execute(select(ledger_checkpoints.c.size, ledger_checkpoints.c.root))

    @staticmethod
    def leaves_from(conn: Connection, start: int, limit: int) -> Sequence[Row[Any]]:
        """Up to `limit` leaves (idx, record_type, record_id, payload) from index `start`, in order."""
        c = ledger_leaves.c
        return conn.execute(select(c.idx, c.record_type, c.record_id, c.payload)
                            .where(c.idx >= start).order_by(c.idx).limit(limit)).all()

    # --- internals ----------------------------------------------------------------------------

    def _head(self, conn: Connection) -> tuple[int, bytes]:
        row = conn.exec_driver_sql(_HEAD_SQL).first()
        return (0, merkle.EMPTY_ROOT) if row is None else (row[0], bytes(row[1]))

    def _lock_head(self, conn: Connection) -> tuple[int, bytes]:
        # FOR UPDATE on PostgreSQL; SQLite's writer already holds the database's write lock
        sql = _HEAD_SQL + (" FOR UPDATE" if conn.dialect.name == "postgresql" else "")
        row = _fetchone(driver_cursor(conn), sql)
        if row is None:  # a schema created without the migration's seed row
            dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(dialect_insert(ledger_head).values(id=HEAD_ID, size=0, root=merkle.EMPTY_ROOT)
                         .on_conflict_do_nothing())
            row = _fetchone(driver_cursor(conn), sql)
        return int(row[0]), bytes(row[1])

    def _fetch_tiles(self, conn: Connection, tile_ids: Sequence[tiles.TileId],
                     with_head: bool = False) -> tuple[dict[tiles.TileId, bytes], int | None]:
        """The tiles asked for, and with `with_head` the log size, in one round trip."""
        if not tile_ids and not with_head:
            return {}, None
        params = tuple(value for tile_id in tile_ids for value in tile_id)
        cursor = driver_cursor(conn)  # every append and proof reads tiles (SQLAlchemy's path cost more)
        cursor.execute(_sql(conn, _tiles_sql(len(tile_ids), with_head)), params)
        rows = cursor.fetchall()
        found: dict[tiles.TileId, bytes] = {}
        head_size = None
        for level, idx, blob in rows:
            if level == _HEAD_MARK:
                head_size = idx
            else:
                found[(level, idx)] = bytes(blob)
        return found, head_size

    def _node_reader(self, conn: Connection, check_size: int | None = None) -> merkle.GetNodes:
        """A batched node reader; with `check_size`, it also refuses a size beyond the log's head."""

        def get_nodes(nodes: Sequence[merkle.NodeId]) -> list[bytes]:
            found, head_size = self._fetch_tiles(conn, tiles.tiles_for(nodes), with_head=check_size is not None)
            if check_size is not None and check_size > (head_size or 0):
                raise merkle.ProofRequestError(f"tree size {check_size} is beyond the log's size {head_size or 0}")
            try:
                return tiles.read_nodes(nodes, found)
            except LookupError as exc:
                raise LedgerCorrupt(str(exc)) from exc

        return get_nodes

    def _write_tiles(self, conn: Connection, changed: dict[tiles.TileId, bytes],
                     existing: dict[tiles.TileId, bytes]) -> None:
        new = [(t, i, blob) for (t, i), blob in changed.items() if (t, i) not in existing]
        grown = [(blob, t, i) for (t, i), blob in changed.items() if (t, i) in existing]
        cursor = driver_cursor(conn)
        if new:
            cursor.executemany(_sql(conn, _TILE_INSERT_SQL), new)
        if grown:
            cursor.executemany(_sql(conn, _TILE_UPDATE_SQL), grown)

    def _latest_checkpoint(self, conn: Connection) -> CheckpointRecord | None:
        c = ledger_checkpoints.c
        row = conn.execute(select(c.size, c.root, c.note).order_by(c.size.desc()).limit(1)).first()
        return None if row is None else CheckpointRecord(row.size, bytes(row.root), row.note)
