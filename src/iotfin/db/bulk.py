"""Bulk writes and identity sequences, per backend.

PostgreSQL: psycopg 3 binary COPY (`COPY t (cols) FROM STDIN (FORMAT BINARY)` with `set_types` and
`write_row`), measured ~1.7M rows/s against ~78k with executemany (../shared/TOOLING.md). SQLite:
executemany on the driver, already the fastest path there. Both run on the caller's connection, so
the rows commit, or roll back, with the caller's transaction.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def draw_ids(conn: Connection, table: str, count: int) -> list[int]:
    """`count` ids from the sequence of `table`.id on PostgreSQL, in one query: for a batch that
    names its rows' ids before inserting them (and their children) in bulk."""
    return [int(i) for i in conn.exec_driver_sql(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", (count,)).scalars()]


def copy_rows(conn: Connection, table: str, columns: Sequence[str], pg_types: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> int:
    """Write `rows` (tuples in `columns` order) into `table` on the caller's transaction.

    `pg_types` are the PostgreSQL type names of the columns (binary COPY sends each value in its
    type's wire format, so they must match the columns: "bigint", "varchar", "bytea", "numeric",
    "date", "timestamptz", ...). Table and column names are the caller's constants, never input."""
    cols = ", ".join(columns)
    if not is_postgres(conn):
        marks = ", ".join("?" * len(columns))
        rows = list(rows)
        if rows:
            conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        return len(rows)
    n = 0
    # The DB-API cursor of the connection SQLAlchemy holds: same session, same transaction.
    with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(pg_types))
            for row in rows:
                copy.write_row(row)
                n += 1
    return n


# PostgreSQL's binary COPY stream (docs: "COPY", "Binary Format"): a signature, flags and header
# extension length, then per row a 16-bit field count and per field a 32-bit length and the bytes;
# a field count of -1 ends it.
BINARY_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
BINARY_COPY_TRAILER = b"\xff\xff"
binary_field_length = struct.Struct(">i").pack


@contextmanager
def binary_copy(conn: Connection, table: str, columns: Sequence[str]) -> Iterator[Any]:
    """A binary COPY into `table` on the caller's transaction (PostgreSQL); the caller writes a whole
    pre-built stream (BINARY_COPY_HEADER, rows, BINARY_COPY_TRAILER) with `.write(buffer)`. For hot
    paths where copy_rows' per-row `write_row` (Python dumpers, ~1 µs a row) is a measured cost.
    The server inserts the rows while the `with` body goes on; leaving it waits for the result."""
    with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            yield copy


def _int8_row_dtype(columns: int) -> np.dtype:
    # a binary COPY row of `columns` non-null bigints: field count, then (length 8, value) per field
    fields = [("count", ">i2")]
    for k in range(columns):
        fields += [(f"len{k}", ">i4"), (f"v{k}", ">i8")]
    return np.dtype(fields)


def read_int8_table(conn: Connection, query: str, params: Sequence[Any], columns: int) -> np.ndarray:
    """The rows of `query` (PostgreSQL; every output column a non-null bigint) as an int64 array of
    shape (rows, columns), by `COPY (query) TO STDOUT (FORMAT BINARY)`: fixed-width rows that numpy
    takes in one call, with no Python object per value (a cursor's fetchall makes one int per value,
    3 M for a close chunk, then numpy converts them back). Hand-written parse of the documented
    binary COPY format; a NULL or a non-bigint column fails loudly (the widths would not match)."""
    parts = []
    with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy:
            for data in copy:
                parts.append(bytes(data))
    data = b"".join(parts)
    if not data.startswith(BINARY_COPY_HEADER) or not data.endswith(BINARY_COPY_TRAILER):
        raise ValueError("not a binary COPY stream without header extensions")
    dtype = _int8_row_dtype(columns)
    body = data[len(BINARY_COPY_HEADER):-len(BINARY_COPY_TRAILER)]
    if len(body) % dtype.itemsize:
        raise ValueError(f"binary COPY rows are not {columns} non-null bigints")
    rows = np.frombuffer(body, dtype)
    if rows.size and (np.any(rows["count"] != columns)
                      or any(np.any(rows[f"len{k}"] != 8) for k in range(columns))):
        raise ValueError(f"binary COPY rows are not {columns} non-null bigints")
    out = np.empty((rows.size, columns), np.int64)
    for k in range(columns):
        out[:, k] = rows[f"v{k}"]
    return out


def int8_copy_stream(columns: Sequence[np.ndarray]) -> bytes:
    """A whole binary COPY stream of bigint rows, one array per column, built by numpy (no Python
    per row; copy_rows' write_row costs ~1 µs a row)."""
    n = len(columns[0]) if columns else 0
    rows = np.empty(n, _int8_row_dtype(len(columns)))
    rows["count"] = len(columns)
    for k, values in enumerate(columns):
        rows[f"len{k}"] = 8
        rows[f"v{k}"] = values
    return BINARY_COPY_HEADER + rows.tobytes() + BINARY_COPY_TRAILER


def copy_int8_columns(conn: Connection, table: str, names: Sequence[str], columns: Sequence[np.ndarray]) -> None:
    """COPY bigint columns (numpy arrays, same length) into `table` on the caller's transaction (PostgreSQL)."""
    with binary_copy(conn, table, names) as copy:
        copy.write(int8_copy_stream(columns))


def copy_dicts(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """COPY (PostgreSQL) or executemany INSERT (SQLite) rows given as dicts, all with the same keys,
    into a SQLAlchemy table; the column types come from the table itself."""
    if not rows:
        return 0
    if not is_postgres(conn):
        conn.execute(table.insert(), list(rows))
        return len(rows)
    names = list(rows[0])
    # COPY applies server defaults only: fill the columns' Python-side defaults (created_at = now ...)
    # as an INSERT through SQLAlchemy would, once per call (as a multi-row INSERT does).
    defaults = {c.name: (c.default.arg(None) if c.default.is_callable else c.default.arg)
                for c in table.columns if c.name not in rows[0] and c.default is not None
                and (c.default.is_callable or c.default.is_scalar)}
    if defaults:
        names += list(defaults)
        rows = [row | defaults for row in rows]
    dialect = conn.dialect
    types = [_pg_type_name(table.c[name].type.compile(dialect=dialect)) for name in names]
    processors = [_numeric_from_float(table.c[name].type.bind_processor(dialect)) if t == "numeric"
                  else table.c[name].type.bind_processor(dialect) for name, t in zip(names, types, strict=True)]
    n = 0
    with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row([v if p is None or v is None else p(v)
                                for v, p in zip((row[k] for k in names), processors, strict=True)])
                n += 1
    return n


def _numeric_from_float(processor: Any) -> Any:
    """A float bound to a numeric column: an INSERT sends it as float8 and PostgreSQL casts it; binary
    COPY takes only Decimal, so convert through the float's shortest repr (the same number)."""

    def convert(value: Any) -> Any:
        if processor is not None:
            value = processor(value)
        return Decimal(repr(value)) if isinstance(value, float) else value

    return convert


def _pg_type_name(compiled: str) -> str:
    # "VARCHAR(64)" -> "varchar", "NUMERIC(20, 2)" -> "numeric", "TIMESTAMP WITH TIME ZONE" -> "timestamptz"
    base = compiled.split("(")[0].strip().lower()
    return {"timestamp with time zone": "timestamptz", "timestamp without time zone": "timestamp",
            "double precision": "float8", "float": "float8", "real": "float4", "boolean": "bool"}.get(base, base)


def advance_sequences(conn: Connection, tables: Iterable[str] | None = None) -> int:
    """After rows were written with their ids given (a bulk load, a COPY), move each identity or
    serial sequence past the largest id, so the next single insert draws a fresh one. PostgreSQL
    only (SQLite's rowid always continues after the largest id). Returns how many were moved."""
    if not is_postgres(conn):
        return 0
    found = conn.exec_driver_sql(
        "SELECT c.table_name, c.column_name, pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) "
        "FROM information_schema.columns c WHERE c.table_schema = current_schema() "
        "AND (c.is_identity = 'YES' OR c.column_default LIKE 'nextval(%%')").all()
    wanted = None if tables is None else set(tables)
    moved = 0
    for table, column, sequence in found:
        if sequence is None or (wanted is not None and table not in wanted):
            continue
        # setval(seq, max, true): the next value is max + 1; an empty table restarts at 1.
        conn.exec_driver_sql(
            f'SELECT setval(%s, COALESCE((SELECT max("{column}") FROM "{table}"), 0) + 1, false)', (sequence,))
        moved += 1
    return moved
