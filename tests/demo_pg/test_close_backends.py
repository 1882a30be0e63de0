"""The daily close gives the same books on PostgreSQL (binary COPY into staging tables, set-based
UPDATEs over the chunk's id range, fillfactor 45) as on SQLite (executemany): the same book, closed
over the same days in small chunks, ends with every loan's balances, bills and GL lines equal, value
by value."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.tables import Enterprise
from iotfin.lending.service import Offer
from iotfin.lending.tables import Loan, LoanBill
from tests.services import PostgresServer

START = date(2026, 3, 2)
DAYS = 70  # past the first two instalments: bills, overdue loans, penalties, tiers
PRODUCTS = ("iot-term", "receivable-bullet", "equipment-principal")


def _book(url: str, data: Path) -> Workspace:
    ws = Workspace(Settings(data_dir=data, database_url=url, simulation=True))
    ws.initialise()
    with ws.engine.begin() as conn:
        conn.execute(insert(Enterprise), [
            {"uscc": f"91{i:016d}", "name": f"企业{i}", "name_en": f"Enterprise {i}", "sector": "manufacturing",
             "subsector": "machining", "region_code": "330100", "region": "杭州", "founded_on": date(2015, 1, 1),
             "registered_capital": Decimal("1000000.00"), "legal_rep_name": "x", "legal_rep_id_number": "x",
             "legal_rep_phone": "x", "tax_grade": "A"} for i in range(20)])
    for d in range(10):  # start dates spread over ten days, as bench/loan_close.py
        ws.lending.book_batch([Offer(1 + (i % 20), PRODUCTS[i % 3], Decimal(1_000 + 37 * i + d), Decimal("0.0735"),
                                     (3, 6, 12)[i % 3], Decimal("0.01") if i % 5 == 0 else Decimal(0))
                               for i in range(150)], START - timedelta(days=10 - d))
    return ws


LOAN_COLUMNS = ("id", "last_closed", "principal_not_due", "accrued", "principal_due", "interest_due", "fee_due",
                "penalty_due", "subsidy_due", "subsidy_clawed", "overdue_since", "dpd", "tier", "provision", "cur_seq",
                "cur_due", "cur_principal")


def _books(ws: Workspace) -> dict[str, Any]:
    # through the tables' types: dates, money and booleans come back as the same Python values on both
    loans, bills = Loan.__table__.c, LoanBill.__table__.c
    with ws.engine.connect() as conn:
        loan_rows = conn.execute(select(*[loans[c] for c in LOAN_COLUMNS]).order_by(loans.id)).all()
        bill_rows = conn.execute(select(bills.loan_id, bills.due_date, bills.fee, bills.interest, bills.principal)
                                 .order_by(bills.loan_id, bills.due_date)).all()
    return {"loans": [tuple(r) for r in loan_rows], "bills": [tuple(r) for r in bill_rows],
            "trial_balance": ws.lending.trial_balance(), "reconciled": ws.lending.reconcile()["reconciled"]}


@pytest.mark.postgres
@pytest.mark.slow
def test_the_close_gives_the_same_books_on_postgresql_as_on_sqlite(postgres: PostgresServer, tmp_path: Path) -> None:
    pg_url = postgres.new_database("close")
    books = {}
    for backend, url in (("sqlite", f"sqlite:///{tmp_path / 'lite.db'}"), ("postgresql", pg_url)):
        ws = _book(url, tmp_path / backend)
        # chunks of 400: several chunks a day, each one set-based UPDATE over its id range on PostgreSQL
        ws.lending.close_through(START + timedelta(days=DAYS), chunk=400, simulate=True)
        books[backend] = _books(ws)
        if backend == "postgresql":
            with ws.engine.connect() as conn:
                assert conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'loans'")).scalar() == \
                    ["fillfactor=45"]
        ws.close()
    lite, pg = books["sqlite"], books["postgresql"]
    assert len(lite["loans"]) == 1_500 and len(lite["bills"]) > 1_500
    assert {r[11] > 0 for r in lite["loans"]} == {True, False}  # some loans overdue, some not: a real test
    assert pg["loans"] == lite["loans"]
    assert pg["bills"] == lite["bills"]
    assert pg["trial_balance"] == lite["trial_balance"]
    assert lite["reconciled"] and pg["reconciled"] and lite["trial_balance"]["balanced"]


@pytest.mark.postgres
def test_a_loan_changed_while_a_close_chunk_runs_keeps_the_change(postgres: PostgresServer, tmp_path: Path) -> None:
    """Another process changes a loan (a servicing change: the row locked FOR UPDATE, updated,
    committed) while the close works on the loan's chunk. The chunk must not write back values it
    computed from the row before the change (PostgreSQL's read takes no row locks: before the chunk's
    table lock, the close's UPDATE waited for the row and then overwrote the change)."""
    import threading  # here: only this test runs the close beside another transaction

    pg_url = postgres.new_database("close")
    ws = _book(pg_url, tmp_path / "pg")
    loan = 1
    with ws.engine.connect() as other:
        before = other.execute(text("SELECT penalty_due, dpd FROM loans WHERE id = :i"), {"i": loan}).one()
        assert before.dpd == 0  # not overdue: the close keeps its penalty as it reads it
        other.execute(text("SELECT id FROM loans WHERE id = :i FOR UPDATE"), {"i": loan})
        done: list[Any] = []
        closer = threading.Thread(target=lambda: done.append(
            ws.lending.close_day(START - timedelta(days=9), simulate=True)))
        closer.start()
        closer.join(3)  # the close reaches the chunk (and, unlocked, its read) meanwhile
        assert not done, "the close finished while a loan of its chunk was locked"
        other.execute(text("UPDATE loans SET penalty_due = penalty_due + 7.00 WHERE id = :i"), {"i": loan})
        other.commit()
    closer.join(120)
    assert done and done[0]["loans_closed"] > 0
    with ws.engine.connect() as conn:
        after = conn.execute(text("SELECT penalty_due FROM loans WHERE id = :i"), {"i": loan}).scalar_one()
    assert after == before.penalty_due + Decimal("7.00")
    ws.close()
