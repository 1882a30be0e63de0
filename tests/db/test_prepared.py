"""Prepared statements (iotfin.db.prepared) write and read what SQLAlchemy does, on both backends,
and fail the way SQLAlchemy fails."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError

from iotfin.db import prepared
from iotfin.db.engine import make_engine
from iotfin.db.types import Money, UTCDateTime

metadata = MetaData()
thing = Table(
    "prepared_thing", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("code", String(20), nullable=False, unique=True),
    Column("amount", Money, nullable=False),
    Column("due_on", Date),
    Column("at", UTCDateTime),
    Column("detail", JSON),
    Column("open", Boolean, nullable=False),
    Column("status", String(10), nullable=False, default="new", onupdate="changed"),
    Column("stamp", String(30), default=lambda: "computed"),
)

INSERT = insert(thing)
INSERT_NO_STAMP = insert(thing).values(stamp=None)
BY_CODE = select(thing.c.id, thing.c.code, thing.c.amount, thing.c.due_on, thing.c.at, thing.c.detail,
                 thing.c.open, thing.c.status).where(thing.c.code == bindparam("code"))
RENAME = update(thing).where(thing.c.id == bindparam("thing_id")).values(code=bindparam("new_code"))
CLOSE_ALL = update(thing).values(open=False)

ROW = dict(code="a", amount=Decimal("1234567.89"), due_on=date(2026, 12, 31),
           at=datetime(2026, 12, 7, 16, 30, 5, 123456, tzinfo=timezone(timedelta(hours=8))),
           detail={"参考": "值", "n": [1, 2]}, open=True, stamp="given")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _expected(row: dict, **over: object) -> dict:
    out = {k: v for k, v in row.items() if k != "stamp"} | {"status": "new"} | over
    out["at"] = out["at"].astimezone(UTC)
    return out


def test_written_by_prepared_reads_back_through_sqlalchemy(engine: Engine) -> None:
    with engine.begin() as conn:
        new_id = prepared.insert_id(conn, INSERT, ROW)
    with engine.connect() as conn:
        row = conn.execute(BY_CODE, {"code": "a"}).one()._asdict()
    assert row == {"id": new_id} | _expected(ROW)
    assert isinstance(row["amount"], Decimal) and row["at"].tzinfo is not None


def test_written_by_sqlalchemy_reads_back_through_prepared(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(thing), [ROW])
    with engine.connect() as conn:
        record = prepared.fetch_one(conn, BY_CODE, {"code": "a"})
        sqlalchemy_row = conn.execute(BY_CODE, {"code": "a"}).one()._asdict()
    assert record is not None
    assert dict(record) == sqlalchemy_row
    assert record.amount == Decimal("1234567.89") and record._mapping["code"] == "a"
    with pytest.raises(AttributeError):
        _ = record.no_such_column


def test_insert_id_returns_the_new_and_the_explicit_id(engine: Engine) -> None:
    with engine.begin() as conn:
        first = prepared.insert_id(conn, INSERT, ROW)
        second = prepared.insert_id(conn, INSERT, ROW | {"code": "b"})
        explicit = prepared.insert_id(conn, INSERT, ROW | {"code": "c", "id": 1000})
    assert second == first + 1
    assert explicit == 1000
    with engine.connect() as conn:
        assert conn.execute(select(thing.c.code).order_by(thing.c.id)).scalars().all() == ["a", "b", "c"]


def test_constant_defaults_are_filled_and_computed_ones_left_to_sqlalchemy(engine: Engine) -> None:
    unstamped = {k: v for k, v in ROW.items() if k != "stamp"}
    with engine.begin() as conn:
        prepared.execute(conn, INSERT, ROW)  # status left to its default
        assert prepared.execute(conn, RENAME, {"thing_id": 1, "new_code": "z"}) == 1
        assert prepared.insert_id(conn, INSERT, unstamped | {"code": "b"}) == 2  # stamp computed
        prepared.execute_many(conn, INSERT, [unstamped | {"code": "c"}, unstamped | {"code": "d"}])
    with engine.connect() as conn:
        assert conn.execute(select(thing.c.code, thing.c.status, thing.c.stamp).order_by(thing.c.id)).all() == [
            ("z", "changed", "given"), ("b", "new", "computed"), ("c", "new", "computed"), ("d", "new", "computed")]


def test_expanding_parameters_are_run_by_sqlalchemy(engine: Engine) -> None:
    in_list = select(thing.c.code, thing.c.amount).where(thing.c.code.in_(bindparam("codes", expanding=True)))
    retire = update(thing).where(thing.c.code.in_(bindparam("codes", expanding=True))).values(open=False)
    with engine.begin() as conn:
        prepared.execute_many(conn, INSERT, [ROW | {"code": c} for c in "abc"])
        assert prepared.fetch(conn, in_list.order_by(thing.c.code), {"codes": ["a", "c", "x"]}) == [
            {"code": "a", "amount": ROW["amount"]}, {"code": "c", "amount": ROW["amount"]}]
        assert prepared.execute(conn, retire, {"codes": ["b", "c"]}) == 2


def test_a_missing_or_unbindable_value_is_a_statement_error_and_nothing_is_written(engine: Engine) -> None:
    with engine.begin() as conn:
        prepared.execute(conn, INSERT, ROW)
    for bad in ({"amount": Decimal("0.001")}, {"amount": 1.5}, {"at": datetime(2026, 1, 1)}):
        with pytest.raises(StatementError), engine.begin() as conn:
            prepared.execute(conn, INSERT, ROW | {"code": "b"} | bad)
    with pytest.raises(StatementError, match="due_on"), engine.begin() as conn:
        prepared.fetch(conn, BY_CODE.with_only_columns(thing.c.id).where(thing.c.due_on == bindparam("due_on")),
                         {"code": "a"})
    with engine.connect() as conn:
        assert conn.execute(select(thing.c.code)).scalars().all() == ["a"]


def test_execute_many_and_rowcount(engine: Engine) -> None:
    rows = [ROW | {"code": f"r{i}", "amount": Decimal(i) / 100, "open": i % 2 == 0} for i in range(7)]
    with engine.begin() as conn:
        prepared.execute_many(conn, INSERT, rows)
        prepared.execute_many(conn, INSERT, [])
        prepared.execute_many(conn, INSERT_NO_STAMP, [ROW | {"code": "single"}])
        assert prepared.execute(conn, CLOSE_ALL) == 8
    with engine.connect() as conn:
        stored = conn.execute(select(thing.c.code, thing.c.amount, thing.c.open).order_by(thing.c.id)).all()
    assert stored == [(f"r{i}", Decimal(i) / 100, False) for i in range(7)] + [("single", ROW["amount"], False)]


def test_a_unique_violation_is_an_integrity_error_and_earlier_rows_stay(engine: Engine) -> None:
    with engine.begin() as conn:
        prepared.execute(conn, INSERT, ROW)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        prepared.execute(conn, INSERT, ROW | {"code": "b"})
        prepared.execute(conn, INSERT, ROW)  # "a" again: the whole transaction goes
    with engine.connect() as conn:
        assert conn.execute(select(thing.c.code)).scalars().all() == ["a"]
        assert prepared.fetch(conn, BY_CODE, {"code": "b"}) == []
