"""The financing registry on SQLite and PostgreSQL: liens, refusals with details, releases, races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select

from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict, ValidationError
from iotfin.financing.model import receivable_key, warehouse_receipt_key
from iotfin.financing.service import DoubleFinancing, FinancingRegistry
from iotfin.financing.tables import FinancingAttempt, Lien
from iotfin.identity.tables import Tenant

SELLER, BUYER = "91350100M000100Y43", "91110000100000585X"
INVOICE = receivable_key("370226123451", "01234567", SELLER, BUYER, "125000.00")


@pytest.fixture
def registry(workspace: Workspace) -> FinancingRegistry:
    with workspace.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"id": i, "code": f"bank-{i}", "name": f"银行{i}", "name_en": f"Bank {i}",
                                       "kind": "bank"} for i in range(1, 9)])
    return FinancingRegistry(workspace.engine)


def test_second_financing_is_refused_with_the_existing_lien(registry: FinancingRegistry) -> None:
    registered = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    lien = registry.finance(INVOICE, 1, "FAC-2026-001", "100000.00", registration_no="ZD2026030100012",
                            registered_at=registered)
    assert lien.status == "active" and lien.amount == Decimal("100000.00") and lien.registered_at == registered
    # The same invoice, typed differently, at another bank.
    again = receivable_key("3702-2612-3451", "No.0123 4567", SELLER.lower(), BUYER, "125000")
    with pytest.raises(DoubleFinancing) as refused:
        registry.finance(again, 2, "LOAN-77", "90000")
    assert refused.value.existing.id == lien.id
    message = str(refused.value)
    assert "bank-1" in message and "ZD2026030100012" in message and "100000.00" in message
    status = registry.status(INVOICE)
    assert status["active_lien"]["id"] == lien.id
    assert [(a["tenant"], a["outcome"], a["lien_id"]) for a in status["attempts"]] == [
        ("bank-1", "placed", lien.id), ("bank-2", "refused", lien.id)]


def test_release_on_repayment_allows_new_financing(registry: FinancingRegistry) -> None:
    first = registry.finance(INVOICE, 1, "FAC-1", "50000")
    with pytest.raises(ValidationError, match="reason"):
        registry.release(first.id, " ")
    released = registry.release(first.id, "repaid in full 2026-05-30")
    assert released.status == "released" and released.released_at is not None
    with pytest.raises(Conflict, match="already released"):
        registry.release(first.id, "twice")
    second = registry.finance(INVOICE, 2, "FAC-2", "40000")
    assert second.id != first.id and second.status == "active"
    assert len(registry.status(INVOICE)["liens"]) == 2


def test_bad_requests_change_nothing(registry: FinancingRegistry, workspace: Workspace) -> None:
    lien = registry.finance(INVOICE, 1, "FAC-1", "50000")
    for bad in ({"amount": "0"}, {"amount": "-5"}, {"amount": 1.5}, {"financing_ref": "  "}):
        kwargs = {"amount": "100", "financing_ref": "X"} | bad
        with pytest.raises(ValidationError):
            registry.finance(warehouse_receipt_key(SELLER, "WR-1"), 2, kwargs["financing_ref"], kwargs["amount"])
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Lien)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(FinancingAttempt)).scalar_one() == 1
    assert registry.status(INVOICE)["active_lien"]["id"] == lien.id


def test_exactly_one_of_many_concurrent_attempts_wins(registry: FinancingRegistry) -> None:
    receipt = warehouse_receipt_key(SELLER, "QD-WR-2026-0042")
    barrier = threading.Barrier(8)
    outcomes: list[object] = []
    lock = threading.Lock()

    def attempt(tenant: int) -> None:
        barrier.wait()
        try:
            result: object = registry.finance(receipt, tenant, f"REF-{tenant}", "1000")
        except DoubleFinancing as exc:
            result = exc
        except Exception as exc:  # noqa: BLE001 - any other failure is a test failure, reported below
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(t,)) for t in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, DoubleFinancing)]
    assert len(outcomes) == 8 and len(winners) == 1 and len(refused) == 7, outcomes
    assert all(r.existing.id == winners[0].id for r in refused)  # type: ignore[attr-defined]
    status = registry.status(receipt)
    assert sum(a["outcome"] == "placed" for a in status["attempts"]) == 1
    assert sum(a["outcome"] == "refused" for a in status["attempts"]) == 7


def test_competing_claims_are_ranked(registry: FinancingRegistry) -> None:
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    registry.finance(INVOICE, 1, "FAC-1", "60000", notice_at=t0)
    registry.add_external_claim(INVOICE, "某保理公司", "30000", registration_no="ZD1", registered_at=t0 + timedelta(days=3))
    registry.add_external_claim(INVOICE, "某小贷公司", "20000")
    groups = registry.competing_claims(INVOICE)
    assert [[c.claimant for c in g] for g in groups] == [["某保理公司"], ["bank-1"], ["某小贷公司"]]
