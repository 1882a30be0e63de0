"""Engine and session factory for the system of record."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from iotfin.core.errors import ConfigError


def make_engine(url: str, echo: bool = False) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"IOTFIN_DATABASE_URL: cannot parse {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # The API runs sync endpoints on a pool of up to 40 threads: with SQLAlchemy's default pool
        # (5 + 10 overflow) each request beyond 15 in flight opened and closed its own connection
        # (open + pragmas: a third of a complaint read's CPU in a py-spy profile). Keep 40 open.
        engine = create_engine(parsed, echo=echo, connect_args={"timeout": 30}, pool_size=40, max_overflow=20)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    raise ConfigError(f"IOTFIN_DATABASE_URL: unsupported backend {parsed.get_backend_name()!r}")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; synchronous=FULL keeps every commit durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def driver_cursor(conn: Connection) -> Any:
    """A DB-API cursor on the connection's transaction, for hot-path statements whose SQLAlchemy
    execution cost more than the statements themselves (the ledger's append, a voucher batch's
    savepoints); values stay bound parameters. SQLAlchemy's transaction is begun first: had only the
    driver run statements, the caller's `commit()` would be a no-op for SQLAlchemy and the pool's
    reset would roll the work back (seen on PostgreSQL)."""
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that takes the write lock up front.

    On SQLite a deferred transaction that reads and then writes can fail with "database is locked"
    when another writer got in between; BEGIN IMMEDIATE makes concurrent writers queue on the busy
    timeout instead. PostgreSQL needs nothing special here (row locks and constraints do the work).
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
