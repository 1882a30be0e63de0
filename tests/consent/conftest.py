from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import insert

from iotfin.identity.tables import Enterprise


def add_enterprises(engine, ids) -> None:  # noqa: ANN001
    """Minimal enterprise rows (the consent tables reference them)."""
    with engine.begin() as conn:
        conn.execute(insert(Enterprise), [
            {"id": i, "uscc": f"9135010000000{i:05d}", "name": f"企业{i}", "name_en": f"Firm {i}",
             "sector": "manufacturing", "subsector": "textiles", "region_code": "350100", "region": "福州",
             "founded_on": date(2015, 1, 1), "registered_capital": Decimal("1000000.00"), "legal_rep_name": "王伟",
             "legal_rep_id_number": "x", "legal_rep_phone": "x", "tax_grade": "B", "litigation_count": 0,
             "key_person_changes": 0} for i in ids])
