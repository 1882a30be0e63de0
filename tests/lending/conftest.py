from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, insert, select

from iotfin.identity.tables import Enterprise


def make_enterprises(engine: Engine, n: int) -> list[int]:
    """n minimal enterprises to lend to (the lending tests need only their ids)."""
    with engine.begin() as conn:
        start = len(conn.execute(select(Enterprise.id)).all())
        conn.execute(insert(Enterprise), [
            {"uscc": f"91{start + i:016d}", "name": f"企业{start + i}", "name_en": f"Enterprise {start + i}",
             "sector": "manufacturing", "subsector": "machining", "region_code": "330100", "region": "杭州",
             "founded_on": date(2015, 1, 1), "registered_capital": Decimal("1000000.00"), "legal_rep_name": "张三",
             "legal_rep_id_number": "x", "legal_rep_phone": "x", "tax_grade": "A"} for i in range(n)])
        return [r[0] for r in conn.execute(select(Enterprise.id).order_by(Enterprise.id.desc()).limit(n)).all()][::-1]
