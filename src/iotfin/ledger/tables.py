"""Tables of the transparency log, on the platform's one metadata (iotfin.db.models.Base).

The store writes them with SQLAlchemy Core (bulk inserts); the ORM classes exist so Alembic and
the schema checks see the tables, and for convenient reads in admin code.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, LargeBinary, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.types import UTCDateTime


class LedgerHead(Base):
    """The single row every appender locks: current size and root. Serialises writers on PostgreSQL."""

    __tablename__ = "ledger_head"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("size >= 0", name="size_nonnegative"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class LedgerLeaf(Base):
    """One log entry; its leaf hash is SHA-256(0x00 || record_type "\\n" record_id "\\n" payload).

    The hash itself is not repeated here: it is stored once, in tile level 0, and recomputed from
    these columns when read (a mismatch is corruption). A 32-byte column costs ~25% of append
    throughput on SQLite (measured), for no information.
    """

    __tablename__ = "ledger_leaves"
    __table_args__ = (CheckConstraint("idx >= 0", name="idx_nonnegative"),)

    # INTEGER PRIMARY KEY on SQLite is the rowid itself: one B-tree insert per leaf instead of two.
    idx: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # Set by the database: one value per append transaction, and no per-row conversion in Python.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class LedgerTile(Base):
    """Packed perfect-subtree hashes; layout in iotfin.ledger.tiles. `level` is the tile level."""

    __tablename__ = "ledger_tiles"
    __table_args__ = (CheckConstraint("level >= 0 AND idx >= 0", name="position"),)

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LedgerCheckpoint(Base):
    """Every checkpoint the log signed: the note as published, and its size and root for checks."""

    __tablename__ = "ledger_checkpoints"
    __table_args__ = (CheckConstraint("size >= 0", name="size_nonnegative"),)

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


ledger_head = LedgerHead.__table__
ledger_leaves = LedgerLeaf.__table__
ledger_tiles = LedgerTile.__table__
ledger_checkpoints = LedgerCheckpoint.__table__


class LedgerAnchor(Base):
    """Which leaf anchors which record, and the salt of a confidential record's commitment. The salt
    never enters the log; an evidence bundle discloses it for one record only."""

    __tablename__ = "ledger_anchors"
    __table_args__ = (Index("ix_ledger_anchors_record", "record_type", "record_id"),)

    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(128))
    salt: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)


ledger_anchors = LedgerAnchor.__table__
