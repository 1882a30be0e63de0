"""The system of record keeps the domain's invariants on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from iotfin.app.workspace import Workspace
from iotfin.core.ids import USCC_ALPHABET, uscc_check_char
from iotfin.devices.tables import Device
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.supplychain.store import documents_by_type
from iotfin.supplychain.tables import TradeDocument


def _uscc(n: int) -> str:
    body = "91310000" + "".join(USCC_ALPHABET[(n * 7 + i) % 31] for i in range(9))
    return body + uscc_check_char(body)


def _enterprise(n: int, **over) -> dict:
    row = dict(id=n, uscc=_uscc(n), name=f"企业{n}", name_en=f"Firm {n}", sector="manufacturing",
               subsector="steel", region_code="310000", region="上海", founded_on=date(2015, 3, 1),
               registered_capital=Decimal("5000000.00"), legal_rep_name="张三", legal_rep_id_number="x",
               legal_rep_phone="13800000000", tax_grade="A", litigation_count=0, key_person_changes=0)
    return row | over


def test_money_round_trips_exactly(workspace: Workspace) -> None:
    amounts = [Decimal("9999999999999999.99"), Decimal("0.01"), Decimal("1234567.89"), Decimal("0.00")]
    with workspace.engine.begin() as conn:
        conn.execute(insert(Enterprise), [_enterprise(1), _enterprise(2)])
        conn.execute(insert(TradeDocument), [
            dict(id=i + 1, doc_type="invoice", seller_id=1, buyer_id=2, issued_on=date(2026, 1, 1), amount=a)
            for i, a in enumerate(amounts)
        ])
    with workspace.engine.connect() as conn:
        stored = conn.execute(select(TradeDocument.amount).order_by(TradeDocument.id)).scalars().all()
        totals = documents_by_type(conn)
    assert stored == amounts
    assert all(isinstance(a, Decimal) for a in stored)
    assert totals["invoice"] == {"count": 4, "amount": sum(amounts)}


@pytest.mark.parametrize("bad", [1.5, Decimal("0.001"), "abc", Decimal("NaN")])
def test_money_refuses_floats_and_sub_fen(workspace: Workspace, bad: object) -> None:
    with pytest.raises(StatementError), workspace.engine.begin() as conn:
        conn.execute(insert(Enterprise), [_enterprise(1, registered_capital=bad)])
    with workspace.engine.connect() as conn:  # nothing half-written
        assert conn.execute(select(Enterprise)).all() == []


@pytest.mark.parametrize("override", [{"sector": "mining"}, {"tax_grade": "Z"}, {"litigation_count": -1},
                                      {"registered_capital": Decimal("-1.00")}])
def test_check_constraints(workspace: Workspace, override: dict) -> None:
    with pytest.raises(IntegrityError), workspace.engine.begin() as conn:
        conn.execute(insert(Enterprise), [_enterprise(1, **override)])


def test_unique_uscc_and_foreign_keys(workspace: Workspace) -> None:
    with workspace.engine.begin() as conn:
        conn.execute(insert(Enterprise), [_enterprise(1)])
    with pytest.raises(IntegrityError), workspace.engine.begin() as conn:
        conn.execute(insert(Enterprise), [_enterprise(2, uscc=_uscc(1))])
    with pytest.raises(IntegrityError), workspace.engine.begin() as conn:  # enterprise 99 does not exist
        conn.execute(insert(Device), [dict(id=1, enterprise_id=99, profile_id=1, device_type="generic",
                                           serial="S1", status="active")])
    with pytest.raises(IntegrityError), workspace.engine.begin() as conn:
        conn.execute(insert(TradeDocument), [dict(id=1, doc_type="invoice", seller_id=1, buyer_id=1,
                                                  issued_on=date(2026, 2, 1), due_on=date(2026, 1, 1),
                                                  amount=Decimal("1.00"))])
    with workspace.engine.connect() as conn:
        assert conn.execute(select(Enterprise.id)).scalars().all() == [1]


def test_datetimes_are_aware_utc(workspace: Workspace) -> None:
    shanghai = timezone(timedelta(hours=8))
    created = datetime(2026, 3, 1, 9, 30, tzinfo=shanghai)
    with workspace.engine.begin() as conn:
        conn.execute(insert(Tenant), [dict(id=1, code="bank-a", name="甲银行", name_en="Bank A", kind="bank",
                                           created_at=created)])
    with workspace.engine.connect() as conn:
        stored = conn.execute(select(Tenant.created_at)).scalar_one()
    assert stored == created and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    with pytest.raises(StatementError), workspace.engine.begin() as conn:
        conn.execute(insert(Tenant), [dict(id=2, code="b", name="b", name_en="b", kind="bank",
                                           created_at=datetime(2026, 1, 1))])
    assert datetime.now(UTC) > stored


def test_standard_profiles_seeded_idempotently(workspace: Workspace) -> None:
    from iotfin.devices.tables import DeviceProfile

    workspace.initialise()  # second time: no duplicates, no error
    with workspace.engine.connect() as conn:
        names = conn.execute(select(DeviceProfile.name)).scalars().all()
    assert "generic" in names and "electricity_meter" in names and len(names) == len(set(names))


def test_utc_iso_formats_timestamps_in_the_database_as_python_reads_them(workspace: Workspace) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.dialects import mysql
    from sqlalchemy.exc import CompileError

    from iotfin.db.types import UTCDateTime, utc_iso

    table = Table("t_utc_iso", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    table.create(workspace.engine)
    stored = [datetime(2026, 12, 1, 8, 30, 0, 123456, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),  # no fraction
              datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=8))), None]
    with workspace.engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "at": at} for i, at in enumerate(stored)])
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(table.c.at, utc_iso(table.c.at).label("iso")).order_by(table.c.id)).all()
    for (at, iso), written in zip(rows, stored, strict=True):
        if written is None:
            assert at is None and iso is None
            continue
        assert datetime.fromisoformat(iso) == at == written  # the same instant, read either way
        assert iso == at.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")  # RFC 3339 in UTC, microseconds always
    with pytest.raises(CompileError, match="mysql"):
        select(utc_iso(table.c.at)).compile(dialect=mysql.dialect())
