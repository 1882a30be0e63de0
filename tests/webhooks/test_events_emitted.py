"""The advertised webhook events are emitted where they happen, in the business transaction, to the
lender tenant and the enterprise, and reach a real HTTP receiver: consent granted / withdrawn, loan
disbursed, repayment received / due / overdue; a ping reaches the subscription pinged whatever event
types it chose."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from iotfin.consent.model import GrantRequest
from iotfin.identity.access import set_owner
from iotfin.identity.tables import Tenant
from iotfin.lending.service import Offer
from iotfin.webhooks.worker import DeliveryWorker
from tests.openapi_world import World
from tests.webhooks.test_delivery import Receiver, _drain, receiver  # noqa: F401 - the fixture

LOAN_TYPES = ["loan.disbursed", "repayment.received", "repayment.due", "repayment.overdue",
              "consent.granted", "consent.withdrawn"]


def _events(rec: Receiver) -> list[dict]:
    seen, out = set(), []
    for r in rec.requests:
        body = json.loads(r["body"])
        if body["id"] not in seen:
            seen.add(body["id"])
            out.append(body)
    return out


def test_lending_and_consent_events_reach_the_lender_and_the_enterprise(world: World, receiver: Receiver) -> None:  # noqa: F811
    receiver.fail_first = 0
    ws = world.ws
    bank, ent = world["bank_a"], world["ent_1"]
    sub = bank.subscribe(receiver.url, LOAN_TYPES)
    receiver.secret = sub["secret"]
    with ws.engine.connect() as conn:
        bank_a = conn.execute(select(Tenant.id).where(Tenant.code == "bank-a")).scalar_one()

    now = datetime.now(UTC)
    grant = ws.consent.grant(GrantRequest(1, "bank-a", "credit_assessment", ("credit_report",), date(2026, 1, 1),
                                          date(2026, 12, 31), now + timedelta(days=90)), now)
    ws.consent.withdraw(grant.id, 1)

    start = date(2026, 1, 1)
    loan = ws.lending.book(Offer(1, "iot-term", Decimal("12000"), Decimal("0.06"), 3), start,
                           lender_tenant_id=bank_a)
    set_owner(ws.engine, "loan", loan, bank_a, 1)
    first_due = ws.lending.loan(loan)["schedule"][0]["due"]
    ws.lending.close_through(first_due - timedelta(days=3))  # repayment.due, 3 days ahead
    ws.lending.close_through(first_due + timedelta(days=1))  # unpaid the day after: repayment.overdue
    ws.lending.repay(loan, Decimal("100"), first_due + timedelta(days=1))
    asyncio.run(_drain(DeliveryWorker(ws.webhooks)))

    events = _events(receiver)
    types = [e["type"] for e in events]
    assert sorted(types) == ["consent.granted", "consent.withdrawn", "loan.disbursed", "repayment.due",
                             "repayment.overdue", "repayment.received"], types  # each once
    by = {e["type"]: e["data"] for e in events}
    assert by["consent.granted"]["recipient"] == "bank-a" and by["consent.granted"]["enterprise_id"] == 1
    assert by["loan.disbursed"]["loan_id"] == loan and by["loan.disbursed"]["principal"] == "12000.00"
    assert by["repayment.due"]["due_date"] == first_due.isoformat() and by["repayment.due"]["instalment"] == 1
    assert by["repayment.overdue"]["due_date"] == first_due.isoformat()
    assert by["repayment.received"]["amount"] == "100.00"
    for data in by.values():  # amounts as decimal strings, no personal data
        assert not any(k in data for k in ("legal_rep_name", "legal_rep_phone", "legal_rep_id_number"))

    # the enterprise sees its own copies in its delivery log when it subscribes; the other bank nothing
    assert list(world["bank_b"].deliveries()) == []
    # once per instalment: closing again changes nothing
    before = len(list(bank.deliveries()))
    ws.lending.close_through(first_due + timedelta(days=1))
    assert len(list(bank.deliveries())) == before
    assert ent is not None


def test_a_ping_reaches_a_subscription_without_the_ping_type(world: World, receiver: Receiver) -> None:  # noqa: F811
    receiver.fail_first = 0
    bank = world["bank_a"]
    sub = bank.subscribe(receiver.url, ["loan.disbursed"])
    receiver.secret = sub["secret"]
    bank.ping(sub["id"])
    asyncio.run(_drain(DeliveryWorker(world.ws.webhooks)))
    assert [e["type"] for e in _events(receiver)] == ["ping"]
