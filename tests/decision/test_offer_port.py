"""The offer port: an approval's offer is created in the approving transaction, so a failing offer
leaves no decision behind, and a decline or referral makes none."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.decision.applications import Application
from iotfin.decision.ports import ApprovedTerms
from iotfin.decision.tables import CreditApplication
from iotfin.lending.tables import LoanOffer
from tests.decision.conftest import add_enterprises, assessment


def _count(ws: Workspace, table: type) -> int:
    with ws.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_an_approval_offers_the_decided_terms(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    add_enterprises(ws.engine, range(1, 3))
    svc = ws.decisions(assess=lambda eid: assessment(eid, grade="A" if eid == 1 else "B",
                                                     pd="0.01" if eid == 1 else "0.05"))
    approved = svc.decide(Application(1, "receivable-financing", Decimal("200000.00"), 6))
    offer = approved["offer"]
    assert (offer["application_id"], offer["decision_id"], offer["amount"], offer["tenor_months"]) == (
        approved["application_id"], approved["decision_id"], Decimal("200000.00"), 6)
    assert offer["servicing_product"] == "receivable-bullet" and offer["lender"] is None  # the operator's
    assert offer["annual_rate"] == Decimal(approved["rate"])
    referred = svc.decide(Application(2, "receivable-financing", Decimal("200000.00"), 6))
    assert referred["decision"] == "refer" and referred["offer"] is None
    assert _count(ws, LoanOffer) == 1


def test_a_failing_offer_rolls_the_decision_back(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    add_enterprises(ws.engine, range(1, 2))
    svc = ws.decisions(assess=lambda eid: assessment(eid))
    seen: list[ApprovedTerms] = []

    def broken(conn: object, terms: ApprovedTerms) -> dict:
        seen.append(terms)
        raise RuntimeError("offer store unavailable")

    svc.offers = broken
    with pytest.raises(RuntimeError):
        svc.decide(Application(1, "iot-working-capital", Decimal("500000.00"), 12))
    assert seen and seen[0].servicing == "iot-line"
    assert _count(ws, CreditApplication) == 0 and _count(ws, LoanOffer) == 0
