from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from iotfin.decision.assessment import RiskAssessment
from iotfin.identity.tables import Enterprise
from iotfin.supplychain.tables import ChainMember, SupplyChain


def assessment(enterprise_id: int, grade: str = "A", pd: str = "0.01", *, consent: bool = True, coverage: str = "0.95",
               history: int = 300, litigation: int = 0, blacklisted: bool = False, collateral: str = "2000000",
               trade: str = "3000000", transaction: str = "65", **features: Any) -> RiskAssessment:
    return RiskAssessment(
        enterprise_id=enterprise_id, grade=grade, pd=Decimal(pd),
        sub_scores={"entity": Decimal("70"), "asset": Decimal("60"), "transaction": Decimal(transaction)},
        features={"device_coverage": Decimal(coverage), "history_days": history, "litigation_count": litigation,
                  "blacklisted": blacklisted, **features},
        reasons=(), consent_ok=consent, as_of=datetime(2026, 11, 30, 8, tzinfo=UTC),
        collateral_value=Decimal(collateral), trade_volume_12m=Decimal(trade))


def add_enterprises(engine: Any, ids: range, core: int | None = None) -> None:
    """Minimal enterprises; with core, the others join that core enterprise's chain as suppliers."""
    with engine.begin() as conn:
        conn.execute(insert(Enterprise), [dict(
            id=i, uscc=f"9111000{i:010d}X", name=f"企业{i}", name_en=f"Enterprise {i}", sector="manufacturing",
            subsector="machinery", region_code="110000", region="北京市", founded_on=date(2015, 1, 1),
            registered_capital=Decimal("1000000"), legal_rep_name="张三", legal_rep_id_number="1",
            legal_rep_phone="1", tax_grade="A", litigation_count=0, key_person_changes=0) for i in ids])
        if core is not None:
            chain = conn.execute(insert(SupplyChain).values(core_enterprise_id=core, name="链").returning(SupplyChain.id)).scalar_one()
            conn.execute(insert(ChainMember), [dict(chain_id=chain, enterprise_id=i, role="core" if i == core else "supplier",
                                                    tier=0 if i == core else 1) for i in ids])


