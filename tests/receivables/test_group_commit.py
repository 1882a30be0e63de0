"""Group commit of voucher operations, on SQLite and PostgreSQL: operations batched into one
transaction each apply in their own savepoint — a refused one (a double spend, a receiver outside
the chain) rolls back only itself, with its reason, and the others commit, their journal events
anchored in one ledger batch; and concurrent callers through the committer share commits."""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Any

from iotfin.app.receivables_evidence import verify_title
from iotfin.app.workspace import Workspace
from iotfin.core.errors import ValidationError
from iotfin.receivables import store
from iotfin.receivables.group_commit import run_batch
from iotfin.receivables.model import Holder
from iotfin.receivables.service import Refused
from tests.receivables.world import TODAY, build, tier2_suppliers

DAY = date(2026, 3, 3)


def test_one_batch_applies_each_operation_in_its_own_savepoint(sim_workspace: Workspace) -> None:
    ws = sim_workspace
    world = build(ws)
    svc = ws.receivables
    a, b = tier2_suppliers(ws, world, 2)
    v = svc.issue(world.core, world.tier1, "100000.00", TODAY, date(2026, 6, 30), world.docs)
    holder = Holder("enterprise", world.tier1)
    whole = v["parts"][0]["id"]
    first, second = svc.split(holder, whole, ["40000.00"], DAY)
    leaves = ws.ledger.store.size()

    ops: list[Any] = []
    svc._write = ops.append  # type: ignore[method-assign] # collect the use cases' operations, unrun
    svc.transfer(holder, first["id"], a, DAY)  # wins
    svc.transfer(holder, first["id"], b, DAY)  # the same part again: refused naming the receiver
    svc.transfer(holder, second["id"], world.outsider, DAY)  # outside the chain: 422
    svc.offer(holder, second["id"], world.lenders["bank-a"], DAY)  # applies
    del svc._write
    results = run_batch(ws.engine, ops, svc._anchor)

    assert [ok for ok, _ in results] == [True, False, False, True]
    assert results[0][1]["pending_to_id"] == a
    refused = results[1][1]
    assert isinstance(refused, Refused) and refused.winner["to"] == f"enterprise:{a}", repr(refused)
    assert isinstance(results[2][1], ValidationError) and "supply chain" in str(results[2][1])
    assert svc.part(first["id"])["pending_to_id"] == a and svc.part(second["id"])["status"] == "offered"
    kinds = [e["kind"] for e in svc.chain_of_title(v["id"])]
    assert kinds == ["issue", "split", "send", "offer"]  # nothing of the refused ones
    assert ws.ledger.store.size() == leaves + 2  # one ledger batch: the two applied operations' events
    bundle = ws.voucher_evidence(v["id"])
    assert verify_title(bundle, ws.ledger.verifier_key)["events"] == 4
    assert svc.audit(v["id"])["ok"]


def test_concurrent_callers_share_commits(sim_workspace: Workspace) -> None:
    ws = sim_workspace
    world = build(ws)
    svc = ws.receivables
    n = 16
    vouchers = [svc.issue(world.core, world.tier1, "1000.00", TODAY, date(2026, 6, 30), world.docs) for _ in range(n)]
    receivers = tier2_suppliers(ws, world, n)
    holder = Holder("enterprise", world.tier1)
    commits = svc.group.commits
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def send(i: int) -> None:
        barrier.wait()
        results[i] = svc.transfer(holder, vouchers[i]["parts"][0]["id"], receivers[i], DAY)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r["pending_to_id"] for r in results] == receivers
    assert svc.group.commits - commits < n  # some operations shared a commit
    for v, r in zip(vouchers, receivers, strict=True):
        assert svc.part(v["parts"][0]["id"])["pending_to_id"] == r


def test_a_database_error_in_one_operation_rolls_back_only_that_one(sim_workspace: Workspace) -> None:
    """A constraint violation inside the batch (here: a second pending offer of one part, refused by
    the partial unique index) aborts only its savepoint; on PostgreSQL the transaction goes on."""
    ws = sim_workspace
    world = build(ws)
    svc = ws.receivables
    v = svc.issue(world.core, world.tier1, "1000.00", TODAY, date(2026, 6, 30), world.docs)
    part = v["parts"][0]["id"]
    offer = svc.offer(Holder("enterprise", world.tier1), part, world.lenders["bank-a"], DAY)
    def duplicate(conn: Any) -> int:
        return store.insert_offer(conn, part_id=part, lender_tenant_id=world.lenders["bank-b"], holder_id=world.tier1,
                                  status="pending", created_at=datetime.fromisoformat(offer["created_at"]))

    ops: list[Any] = []
    svc._write = ops.append  # type: ignore[method-assign]
    svc.withdraw(Holder("enterprise", world.tier1), offer["id"])
    del svc._write
    results = run_batch(ws.engine, [duplicate, *ops], svc._anchor)
    assert results[0][0] is False and "unique" in str(results[0][1]).lower(), results[0]
    assert results[1][0] is True and results[1][1]["status"] == "withdrawn"
    assert svc.part(part)["status"] == "held"
    assert [e["kind"] for e in svc.chain_of_title(v["id"])] == ["issue", "offer", "withdraw"]


def test_what_a_batch_anchors_is_what_the_ledger_proves_from_the_tables(sim_workspace: Workspace) -> None:
    """Journal events are anchored from the values inserted (not read back), liens and loan contracts
    as they stood when placed, all in the batch's one ledger append: the ledger's audit re-derives
    each record's commitment from its table and finds every one equal, and the loader reads each
    event back exactly as it was anchored."""
    ws = sim_workspace
    world = build(ws)
    svc = ws.receivables
    a, b = tier2_suppliers(ws, world, 2)
    holder = Holder("enterprise", world.tier1)
    v = svc.issue(world.core, world.tier1, "100000.00", TODAY, date(2026, 6, 30), world.docs)
    first, second = svc.split(holder, v["parts"][0]["id"], ["40000.00"], DAY)
    ops: list[Any] = []
    svc._write = ops.append  # type: ignore[method-assign] # the next operations in one batch
    svc.transfer(holder, first["id"], a, DAY)
    svc.offer(holder, second["id"], world.lenders["bank-a"], DAY)
    del svc._write
    assert all(ok for ok, _ in run_batch(ws.engine, ops, svc._anchor))
    svc.accept(Holder("enterprise", a), first["id"], DAY)
    offer = next(o for o in svc.offers(world.lenders["bank-a"], _page())[0] if o["part_id"] == second["id"])
    financed = svc.decide(world.lenders["bank-a"], offer["id"], True, DAY)
    assert financed["loan_id"] and financed["lien_id"]
    paid = svc.pay(world.core, v["id"], "100000.00", date(2026, 6, 30))  # releases the lien, repays the loan
    assert paid["voucher"]["status"] == "paid"

    audit = ws.ledger.audit()
    assert audit["ok"] and audit["records_checked"] >= 7 + 2, audit  # the events, the lien, the loan
    with ws.engine.connect() as conn:
        events = store.events_of(conn, v["id"])
        loaded = store.voucher_event_records(conn, [str(e.id) for e in events])
    assert [e.kind for e in events] == ["issue", "split", "send", "offer", "transfer", "finance", "pay"]
    for e in events:
        values = {"voucher_id": v["id"], "part_id": e.part_id, "kind": e.kind, "actor": e.actor, "detail": e.detail,
                  "at": e.at}
        assert store.event_record(e.id, values) == loaded[str(e.id)]
    assert verify_title(ws.voucher_evidence(v["id"]), ws.ledger.verifier_key)["events"] == 7


def _page() -> Any:
    from iotfin.db.pagination import PageParams  # noqa: PLC0415 - a test helper's import

    return PageParams(50, None)
