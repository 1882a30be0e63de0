"""Commodity prices: CSV and the simulator's Parquet accepted; gaps, duplicates, negatives and
malformed rows refused with the reason, and nothing of a refused import kept."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iotfin.core.errors import ValidationError
from iotfin.monitor.prices import PriceBook, read_csv, read_file

GOOD = "day,commodity,price,unit\n2026-01-01,coal,850.00,t\n2026-01-02,coal,851.20,t\n2026-01-03,Coal,790.5,t\n"


def test_csv_series_is_imported_and_looked_up_by_business_day() -> None:
    book = PriceBook()
    assert book.add(read_csv(GOOD)) == {"coal": 3}
    assert book.latest("coal").price == Decimal("790.5") and book.latest("coal").day == date(2026, 1, 3)
    assert book.latest("coal", as_of=date(2026, 1, 2)).price == Decimal("851.20")
    assert book.latest("coal", as_of=date(2025, 12, 31)) is None and book.latest("steel") is None


@pytest.mark.parametrize("text, reason", [
    ("day,commodity,price\n2026-01-01,coal,-5\n", "price must be positive, not -5"),
    ("day,commodity,price\n2026-01-01,coal,0\n", "price must be positive"),
    ("day,commodity,price\n2026-01-01,coal,abc\n", "'abc' is not a number"),
    ("day,commodity,price\n2026-01-01,coal,NaN\n", "not a finite number"),
    ("day,commodity,price\n2026-01-01,coal,1.234\n", "more than two decimal places"),
    ("day,commodity,price\n01/02/2026,coal,850\n", "is not YYYY-MM-DD"),
    ("day,commodity,price\n2026-01-01,,850\n", "commodity is empty"),
    ("day,price\n2026-01-01,850\n", "header must name the columns"),
    ("day,commodity,price\n", "no prices"),
])
def test_bad_rows_are_refused_with_line_and_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        read_csv(text)


def test_gaps_and_duplicates_are_refused_and_nothing_is_kept() -> None:
    book = PriceBook()
    book.add(read_csv(GOOD))
    gap = read_csv("day,commodity,price\n2026-01-06,coal,700\n2026-01-07,steel,3800\n")
    with pytest.raises(ValidationError, match=r"coal: no price for 2026-01-04, 2026-01-05 \(a daily series must have no gaps\)"):
        book.add(gap)
    assert book.latest("coal").day == date(2026, 1, 3) and book.latest("steel") is None  # all or nothing
    dup = read_csv("day,commodity,price\n2026-01-04,coal,700\n2026-01-04,coal,701\n")
    with pytest.raises(ValidationError, match="two prices for 2026-01-04"):
        book.add(dup)


def test_the_simulators_price_file_imports(tmp_path: Path) -> None:
    days = [date(2026, 1, d) for d in range(1, 11)]
    table = pa.table({"day": pa.array(days * 2, pa.date32()), "commodity": ["coal"] * 10 + ["milk"] * 10,
                      "unit": ["t"] * 20, "price": pa.array([Decimal("850.00")] * 10 + [Decimal("3600.00")] * 10,
                                                            pa.decimal128(18, 2))})
    pq.write_table(table, tmp_path / "commodity_prices.parquet")
    book = PriceBook()
    assert book.add(read_file(tmp_path / "commodity_prices.parquet")) == {"coal": 10, "milk": 10}
    with pytest.raises(ValidationError, match="no such file"):
        read_file(tmp_path / "missing.csv")
