"""8 simultaneous transfers, acceptances, offers or financing decisions of one part, on SQLite and
PostgreSQL: exactly one wins; every other is refused (409) with the winner named, and the part is held once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any

from iotfin.app.workspace import Workspace
from iotfin.receivables.model import Holder
from iotfin.receivables.service import Refused
from tests.receivables.world import TODAY, build, tier2_suppliers

N = 8
DAY = date(2026, 3, 3)


def race(calls: list[Callable[[], Any]]) -> tuple[list[tuple[int, Any]], list[tuple[int, Exception]]]:
    barrier = threading.Barrier(len(calls))
    wins: list[tuple[int, Any]] = []
    losses: list[tuple[int, Exception]] = []
    lock = threading.Lock()

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            result = call()
            with lock:
                wins.append((i, result))
        except Exception as exc:  # noqa: BLE001 - every outcome is collected and checked below
            with lock:
                losses.append((i, exc))

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return wins, losses


def issued_part(ws: Workspace, world: Any) -> tuple[int, int]:
    v = ws.receivables.issue(world.core, world.tier1, "100000.00", TODAY, date(2026, 6, 30), world.docs)
    return v["id"], v["parts"][0]["id"]


def test_eight_transfers_of_one_part(sim_workspace: Workspace) -> None:
    ws = sim_workspace
    world = build(ws)
    receivers = tier2_suppliers(ws, world, N)
    voucher_id, part = issued_part(ws, world)
    holder = Holder("enterprise", world.tier1)
    wins, losses = race([lambda r=r: ws.receivables.transfer(holder, part, r, DAY) for r in receivers])
    assert len(wins) == 1, (wins, losses)
    winner = wins[0][1]["pending_to_id"]
    assert winner in receivers and wins[0][1]["holder_id"] == world.tier1  # sent, not yet accepted
    assert len(losses) == N - 1
    for _, exc in losses:
        assert isinstance(exc, Refused), repr(exc)
        assert exc.http_status == 409 and exc.winner["to"] == f"enterprise:{winner}"
        assert f"enterprise:{winner}" in str(exc)
    # the receiver's 8 simultaneous acceptances: title passes once, the others are told it already did
    receiver = Holder("enterprise", winner)
    wins, losses = race([lambda: ws.receivables.accept(receiver, part, DAY) for _ in range(N)])
    assert len(wins) == 1 and len(losses) == N - 1, (wins, losses)
    for _, exc in losses:
        assert isinstance(exc, Refused) and exc.winner["holder"] == f"enterprise:{winner}", repr(exc)
        assert "already accepted" in str(exc)
    got = ws.receivables.part(part)
    assert (got["holder_id"], got["pending_to_id"]) == (winner, None)
    assert [e["kind"] for e in ws.receivables.chain_of_title(voucher_id)] == ["issue", "send", "transfer"]
    assert ws.receivables.audit(voucher_id)["ok"]


def test_eight_offers_of_one_part_to_eight_lenders(sim_workspace: Workspace) -> None:
    ws = sim_workspace
    world = build(ws, lenders=N)
    voucher_id, part = issued_part(ws, world)
    holder = Holder("enterprise", world.tier1)
    lenders = sorted(world.lenders.values())
    wins, losses = race([lambda t=t: ws.receivables.offer(holder, part, t, DAY) for t in lenders])
    assert len(wins) == 1 and len(losses) == N - 1, (wins, losses)
    offer = wins[0][1]
    for _, exc in losses:
        assert isinstance(exc, Refused), repr(exc)
        assert exc.winner["offer_id"] == offer["id"] and exc.winner["lender_tenant_id"] == offer["lender_tenant_id"]
    # and eight simultaneous acceptances of that offer: one financing, one lien, one loan
    wins, losses = race([lambda: ws.receivables.decide(offer["lender_tenant_id"], offer["id"], True, DAY)
                         for _ in range(N)])
    assert len(wins) == 1 and len(losses) == N - 1, (wins, losses)
    for _, exc in losses:
        assert isinstance(exc, Refused) and exc.winner["status"] == "accepted", repr(exc)
    p = ws.receivables.part(part)
    assert (p["status"], p["holder_kind"], p["holder_id"]) == ("financed", "lender", offer["lender_tenant_id"])
    assert p["lien_id"] == wins[0][1]["lien_id"] and p["loan_id"] == wins[0][1]["loan_id"]
    assert ws.receivables.audit(voucher_id)["ok"]
    assert ws.lending.trial_balance()["balanced"]


def test_a_split_racing_transfers_keeps_every_fen_once(sim_workspace: Workspace) -> None:
    ws = sim_workspace
    world = build(ws)
    receivers = tier2_suppliers(ws, world, N - 1)
    voucher_id, part = issued_part(ws, world)
    holder = Holder("enterprise", world.tier1)
    calls: list[Callable[[], Any]] = [lambda r=r: ws.receivables.transfer(holder, part, r, DAY) for r in receivers]
    calls.insert(3, lambda: ws.receivables.split(holder, part, ["1000.00"], DAY))
    wins, losses = race(calls)
    assert len(wins) == 1 and all(isinstance(e, Refused) for _, e in losses), (wins, losses)
    assert ws.receivables.audit(voucher_id)["ok"]
