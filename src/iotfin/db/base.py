"""The declarative base every context's tables share: one metadata, deterministic constraint names.

Surrogate keys are 64-bit integers: at 11 million devices a compact integer key keeps indexes and
telemetry columns small; public codes (USCC, serials) carry their own unique constraints.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names so migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger autoincrement works on PostgreSQL (BIGSERIAL-like identity) and SQLite (INTEGER PRIMARY KEY).
Id = BigInteger().with_variant(Integer(), "sqlite")


def one_of(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint's text: the column holds one of the values."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utc_now_column() -> datetime:
    """Default of created-at columns: now, timezone-aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
