"""Prebuilt statements run straight on the DB-API cursor: the hot paths' executor.

A voucher operation runs 4–14 small statements, each under 10 µs in SQLite itself, and SQLAlchemy's
execution path around each (execution context, parameter construction, result set-up) cost about
twice the statement (py-spy, bench/receivables_ops.py: ~19 µs a statement, about 40 % of a voucher
payment). Here a statement is compiled once per dialect and set of parameter keys — by SQLAlchemy,
so the SQL is exactly what `Connection.execute` would send — and each call only binds the values
through the types' own bind processors (Money, dates, JSON, booleans) and hands them to the driver.
Rows read come back as `Record`s with the types' result processors applied.

Hand-written because SQLAlchemy has no public "prepared" execution mode. What of its behaviour
this keeps is decided once, at preparation: a statement that needs SQLAlchemy at each execution
(expanding or literal-execute parameters, Python-side column defaults that are not constants) is
run by `conn.execute` instead, with the same answers (a long `where_in` list, say). Errors are
raised as SQLAlchemy raises them. SQLAlchemy's cursor events do not see prepared statements. Use
it only for statements built once (module-level or cached): plans are kept per statement object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.sql.dml import Insert

from iotfin.db.engine import driver_cursor

_MISSING = object()


class _NeedsSQLAlchemy(Exception):
    """The statement needs SQLAlchemy at each execution: it is run by `conn.execute`."""


class Record(dict[str, Any]):
    """A row as a dict with attribute access and the `_mapping` of a Row, so that code reading
    SQLAlchemy rows reads these the same way."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return self


class _Plan:
    """One statement compiled for one dialect and one set of parameter keys."""

    __slots__ = ("sql", "binds", "positional", "columns", "_result_types", "_results")

    def __init__(self, conn: Connection, stmt: Any, keys: Sequence[str], *, many: bool, returns_id: bool) -> None:
        dialect = conn.dialect
        if returns_id and dialect.name != "sqlite":  # SQLite reports the new row's id itself (lastrowid)
            stmt = stmt.returning(*stmt.table.primary_key.columns)
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys), for_executemany=many)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise _NeedsSQLAlchemy("expanding or literal-execute parameters")
        defaults = _column_defaults(compiled)
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        escaped = compiled.escaped_bind_names or {}
        binds = []
        for name in names:
            param = compiled.binds[name]
            if param.key in defaults:
                default = defaults[param.key]
            elif param.callable is not None:
                raise _NeedsSQLAlchemy(f"parameter {param.key!r} has a callable value")
            else:
                default = _MISSING if param.required else param.value
            processor = param.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((param.key, escaped.get(name, name), processor, default))
        self.sql = compiled.string
        self.binds = tuple(binds)
        self.positional = compiled.positional
        self.columns = tuple(c.key for c in getattr(stmt, "selected_columns", ()))
        self._result_types = [c.type.dialect_impl(dialect) for c in getattr(stmt, "selected_columns", ())]
        self._results: list[Callable[[Any], Any] | None] | None = None

    def values(self, params: Mapping[str, Any]) -> Any:
        out = []
        for key, _, processor, default in self.binds:
            value = params.get(key, default)
            if value is _MISSING:
                raise InvalidRequestError(f"a value is required for the statement's parameter {key!r}")
            out.append(value if processor is None else processor(value))
        if self.positional:
            return tuple(out)
        return {name: value for (_, name, _, _), value in zip(self.binds, out, strict=True)}

    def result_processors(self, conn: Connection, description: Sequence[Any]) -> list[Callable[[Any], Any] | None]:
        if self._results is None:  # as SQLAlchemy does: from the driver's column types, once
            self._results = [t.result_processor(conn.dialect, d[1])
                             for t, d in zip(self._result_types, description, strict=True)]
        return self._results


def _column_defaults(compiled: Any) -> dict[str, Any]:
    """The constant Python-side defaults SQLAlchemy would fill in at execution (INSERT defaults,
    UPDATE onupdates of columns not given); anything else it would compute then is refused."""
    out: dict[str, Any] = {}
    for columns, kind in ((compiled.insert_prefetch, "default"), (compiled.update_prefetch, "onupdate")):
        for column in columns:
            default = getattr(column, kind)
            if default is None or not default.is_scalar:
                raise _NeedsSQLAlchemy(f"column {column.key!r} has a computed {kind}")
            out[column.key] = default.arg
    return out


_MAX_PLANS = 2048
_plans: dict[tuple[Any, str, str, tuple[str, ...], bool, bool], _Plan | None] = {}


def _plan(conn: Connection, stmt: Any, keys: tuple[str, ...], many: bool = False,
          returns_id: bool = False) -> _Plan | None:
    """The statement's plan, or None when SQLAlchemy must run it."""
    cache_key = (stmt, conn.dialect.name, conn.dialect.driver, keys, many, returns_id)  # driver: paramstyle
    try:
        return _plans[cache_key]
    except KeyError:
        pass
    try:
        plan: _Plan | None = _Plan(conn, stmt, keys, many=many, returns_id=returns_id)
    except _NeedsSQLAlchemy:
        plan = None
    if len(_plans) >= _MAX_PLANS:  # statements built per call would otherwise be kept forever
        _plans.clear()
    _plans[cache_key] = plan
    return plan


@contextmanager
def _cursor(conn: Connection, sql: str) -> Iterator[Any]:
    """The driver's cursor; errors raised as SQLAlchemy raises them, so callers catch the same
    things: the driver's as IntegrityError and the rest of DBAPIError (a lost connection
    invalidated, as SQLAlchemy would), a value a type refuses to bind as StatementError."""
    cursor = driver_cursor(conn)
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        yield cursor
    except Exception as exc:
        lost = isinstance(exc, dbapi_error) and conn.dialect.is_disconnect(
            exc, conn.connection.dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, dbapi_error, connection_invalidated=lost,
                                  dialect=conn.dialect) from exc
    finally:
        cursor.close()


def execute(conn: Connection, stmt: Any, params: Mapping[str, Any] | None = None) -> int:
    """Run a prebuilt INSERT, UPDATE or DELETE; the number of rows it touched."""
    params = params or {}
    plan = _plan(conn, stmt, tuple(sorted(params)))
    if plan is None:
        return conn.execute(stmt, params).rowcount
    with _cursor(conn, plan.sql) as cursor:
        cursor.execute(plan.sql, plan.values(params))
        return cursor.rowcount


def execute_many(conn: Connection, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run a prebuilt INSERT (or UPDATE) once per row of parameters, every row with the same keys."""
    if not rows:
        return
    plan = _plan(conn, stmt, tuple(sorted(rows[0])), many=len(rows) > 1)
    if plan is None:
        conn.execute(stmt, list(rows))
        return
    with _cursor(conn, plan.sql) as cursor:
        cursor.executemany(plan.sql, [plan.values(r) for r in rows])


def insert_id(conn: Connection, stmt: Insert, params: Mapping[str, Any]) -> int:
    """Run a prebuilt single-row INSERT; the new row's primary key (SQLite's lastrowid, or
    RETURNING elsewhere)."""
    plan = _plan(conn, stmt, tuple(sorted(params)), returns_id=True)
    if plan is None:
        return int(conn.execute(stmt, params).inserted_primary_key[0])
    with _cursor(conn, plan.sql) as cursor:
        cursor.execute(plan.sql, plan.values(params))
        if conn.dialect.name == "sqlite":
            return int(cursor.lastrowid)
        return int(cursor.fetchone()[0])


def fetch(conn: Connection, stmt: Any, params: Mapping[str, Any] | None = None) -> list[Record]:
    """Run a prebuilt SELECT; its rows as Records keyed by the selected columns' keys, values as
    SQLAlchemy's types return them."""
    params = params or {}
    plan = _plan(conn, stmt, tuple(sorted(params)))
    if plan is None:
        return [Record(row._mapping) for row in conn.execute(stmt, params)]
    with _cursor(conn, plan.sql) as cursor:
        cursor.execute(plan.sql, plan.values(params))
        rows = cursor.fetchall()
        processors = plan.result_processors(conn, cursor.description)
    columns = plan.columns
    return [Record(zip(columns, [v if p is None or v is None else p(v) for p, v in zip(processors, row, strict=True)],
                       strict=True))
            for row in rows]


def fetch_one(conn: Connection, stmt: Any, params: Mapping[str, Any] | None = None) -> Record | None:
    """`fetch`'s first row, or None."""
    rows = fetch(conn, stmt, params)
    return rows[0] if rows else None
