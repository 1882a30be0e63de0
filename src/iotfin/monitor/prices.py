"""Daily commodity price series: import (CSV or the simulator's Parquet), validation, look-up.

A series is accepted only whole: one price per calendar day between its first and last day, each a
positive decimal with at most two places (yuan per t, m³ or head). A gap, a duplicate, a negative
or a malformed value is refused with the commodity and dates named; nothing of a refused file is kept.
"""

from __future__ import annotations

import bisect
import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from iotfin.core.errors import ValidationError

MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class PricePoint:
    commodity: str
    day: date
    price: Decimal
    unit: str = ""


class PriceBook:
    def __init__(self) -> None:
        self._days: dict[str, list[date]] = {}
        self._points: dict[str, list[PricePoint]] = {}

    @property
    def commodities(self) -> list[str]:
        return sorted(self._points)

    def add(self, points: list[PricePoint]) -> dict[str, int]:
        """Validate and merge points (all or nothing); returns the number of days per commodity."""
        merged = {c: {p.day: p for p in self._points.get(c, [])} for c in {p.commodity for p in points}}
        problems: list[str] = []
        seen: set[tuple[str, date]] = set()
        for p in points:
            if (p.commodity, p.day) in seen:
                problems.append(f"{p.commodity}: two prices for {p.day}")
            seen.add((p.commodity, p.day))
            merged[p.commodity][p.day] = p
        for commodity, by_day in merged.items():
            days = sorted(by_day)
            missing = [d for a, b in zip(days, days[1:], strict=False) for d in _between(a, b)]
            if missing:
                listed = ", ".join(d.isoformat() for d in missing[:MAX_LISTED])
                more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
                problems.append(f"{commodity}: no price for {listed}{more} (a daily series must have no gaps)")
        if problems:
            raise ValidationError("prices refused: " + "; ".join(problems[:MAX_LISTED]))
        for commodity, by_day in merged.items():
            days = sorted(by_day)
            self._days[commodity] = days
            self._points[commodity] = [by_day[d] for d in days]
        return {c: len(self._points[c]) for c in merged}

    def latest(self, commodity: str, as_of: date | None = None) -> PricePoint | None:
        points = self._points.get(commodity)
        if not points:
            return None
        if as_of is None:
            return points[-1]
        i = bisect.bisect_right(self._days[commodity], as_of)
        return points[i - 1] if i else None

    def series(self, commodity: str) -> list[PricePoint]:
        return list(self._points.get(commodity, []))


def _between(a: date, b: date) -> list[date]:
    return [a + timedelta(days=k) for k in range(1, (b - a).days)]


def parse_price(text: Any, where: str) -> Decimal:
    try:
        price = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{where}: price {text!r} is not a number") from None
    if not price.is_finite():
        raise ValidationError(f"{where}: price {text!r} is not a finite number")
    if price <= 0:
        raise ValidationError(f"{where}: price must be positive, not {price}")
    if price != price.quantize(Decimal("0.01")):
        raise ValidationError(f"{where}: price {price} has more than two decimal places")
    return price


def read_csv(text: str, source: str = "prices.csv") -> list[PricePoint]:
    """CSV with a header: day (YYYY-MM-DD), commodity, price[, unit]."""
    reader = csv.DictReader(io.StringIO(text))
    need = {"day", "commodity", "price"}
    if reader.fieldnames is None or not need <= {f.strip() for f in reader.fieldnames}:
        raise ValidationError(f"{source}: header must name the columns day, commodity, price (and optionally unit)")
    points, problems = [], []
    for line, row in enumerate(reader, start=2):
        where = f"{source} line {line}"
        try:
            day = date.fromisoformat((row.get("day") or "").strip())
        except ValueError:
            problems.append(f"{where}: day {row.get('day')!r} is not YYYY-MM-DD")
            continue
        commodity = (row.get("commodity") or "").strip().lower()
        if not commodity:
            problems.append(f"{where}: commodity is empty")
            continue
        try:
            price = parse_price(row.get("price"), where)
        except ValidationError as exc:
            problems.append(str(exc))
            continue
        points.append(PricePoint(commodity, day, price, (row.get("unit") or "").strip()))
    if problems:
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise ValidationError("prices refused: " + "; ".join(problems[:MAX_LISTED]) + more)
    if not points:
        raise ValidationError(f"{source}: no prices")
    return points


def read_file(path: Path) -> list[PricePoint]:
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # lazy: pyarrow loads only when this runs

        table = pq.read_table(path)
        points = []
        for i, row in enumerate(table.to_pylist(), start=1):
            points.append(PricePoint(str(row["commodity"]), row["day"], parse_price(row["price"], f"{path.name} row {i}"),
                                     str(row.get("unit") or "")))
        return points
    return read_csv(path.read_text(encoding="utf-8-sig"), path.name)
