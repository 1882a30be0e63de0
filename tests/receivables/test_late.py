"""A late core enterprise: past maturity and unpaid raises a `late` event (once a day) and a
`voucher.late` webhook, and the voucher is on the maturity-at-risk list; a partial payment settles
pro rata and the financed part's loan is repaid in the same transaction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from iotfin.app.workspace import Workspace
from iotfin.lending.tables import LoanEvent
from iotfin.receivables.model import Holder
from iotfin.webhooks.tables import WebhookEvent
from tests.receivables.world import TODAY, build


def test_late_core_enterprise_and_partial_payment(sim_workspace: Workspace) -> None:
    ws = sim_workspace
    world = build(ws)
    svc = ws.receivables
    v = svc.issue(world.core, world.tier1, "100000.00", TODAY, date(2026, 5, 29), world.docs)
    h = Holder("enterprise", world.tier1)
    a, _ = svc.split(h, v["parts"][0]["id"], ["40000.00"], date(2026, 3, 3))
    offer = svc.offer(h, a["id"], world.lenders["bank-a"], date(2026, 3, 3))
    financed = svc.decide(world.lenders["bank-a"], offer["id"], True, date(2026, 3, 3))
    assert svc.at_risk(date(2026, 5, 1)) == []
    late = svc.flag_late(date(2026, 6, 3))
    assert [x["voucher_id"] for x in late] == [v["id"]] and late[0]["days_late"] == 5
    assert svc.flag_late(date(2026, 6, 3)) == []  # once a day
    risk = svc.at_risk(date(2026, 6, 3))
    assert [r["voucher_id"] for r in risk] == [v["id"]] and "past maturity" in risk[0]["reason"]
    with ws.engine.connect() as conn:
        types = [r[0] for r in conn.execute(select(WebhookEvent.event_type)).all()]
    assert "voucher.late" in types

    paid = svc.pay(world.core, v["id"], "50000.01", date(2026, 6, 3))["payment"]
    assert paid["by_holder"] == {f"lender:{world.lenders['bank-a']}": 2_000_000, f"enterprise:{world.tier1}": 3_000_001}
    with ws.engine.connect() as conn:  # the lender's share went to the discount loan, in the same transaction
        repaid = conn.execute(select(LoanEvent.detail).where(LoanEvent.loan_id == financed["loan_id"],
                                                             LoanEvent.kind == "repayment")).scalars().all()
    assert [Decimal(str(d["amount"])) for d in repaid] == [Decimal("20000.00")]
    assert svc.voucher(v["id"])["status"] == "active" and svc.voucher(v["id"])["paid_fen"] == 5_000_001
    svc.pay(world.core, v["id"], "49999.99", date(2026, 6, 4))
    assert svc.voucher(v["id"])["status"] == "paid"
    assert ws.lending.trial_balance()["balanced"]
    assert ws.financing.lien(financed["lien_id"]).status == "released"
