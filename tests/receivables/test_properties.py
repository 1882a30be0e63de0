"""Stateful property test: random sequences of issue / split / transfer (sent, then accepted, rejected or
recalled) / offer / decide / pay / cancel
against the real service and database. After every step: each voucher's live and paid parts tile its
issue exactly (parts sum to the issue, no fen held twice), the service's parts equal a shadow model
of who holds which fen, every payment's shares add up to the amount paid to the fen, the GL balances
and the voucher clearing account is back to zero; a refused operation changes nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.core.errors import IotfinError
from iotfin.core.settings import Settings
from iotfin.lending.tables import GlLine
from iotfin.receivables.model import Holder
from iotfin.receivables.tables import VoucherEvent
from tests.receivables.world import TODAY, build, documents, tier2_suppliers


def run_machine(ws: Workspace, examples: int, steps: int) -> None:
    world = build(ws, lenders=3)
    suppliers = [world.tier2a, world.tier2b, *tier2_suppliers(ws, world, 2)]
    lenders = sorted(world.lenders.values())
    svc = ws.receivables
    refusals: list[str] = []

    class Vouchers(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.today = TODAY
            self.vouchers: dict[int, dict[str, Any]] = {}  # id -> {total, matures, paid}
            self.shadow: dict[int, tuple[int, int, int, str, str]] = {}  # part -> (voucher, start, end, holder, status)
            self.offers: dict[int, int] = {}  # offer -> part
            self.pending: dict[int, int] = {}  # part -> receiver of a transfer sent, not yet accepted

        # --- helpers -----------------------------------------------------------------------
        def live(self, statuses: tuple[str, ...] = ("held",)) -> list[int]:
            return sorted(p for p, s in self.shadow.items() if s[4] in statuses and
                          self.today < self.vouchers[s[0]]["matures"])

        def holder(self, part: int) -> Holder:
            kind, _, hid = self.shadow[part][3].partition(":")
            return Holder(kind, int(hid))

        def snapshot(self) -> Any:
            return {v: (svc.voucher(v)["parts"], len(svc.chain_of_title(v))) for v in self.vouchers}

        def attempt(self, call: Any) -> Any:
            before = self.snapshot()
            try:
                return call()
            except IotfinError as exc:
                refusals.append(f"{type(exc).__name__}: {exc}"[:160])
                assert exc.http_status in (403, 404, 409, 422), repr(exc)
                assert self.snapshot() == before, f"a refused operation changed state: {exc!r}"
                return None

        # --- rules -------------------------------------------------------------------------
        @rule(amount=st.integers(200_00, 500_000_00) | st.integers(5_000_00, 500_000_00), term=st.integers(20, 150),
              cancel=st.integers(0, 7), data=st.data())
        def issue(self, amount: int, term: int, cancel: int, data: st.DataObject) -> None:
            docs = documents(ws.engine, world.tier1, world.core, "5000000.00", self.today)
            matures = self.today + timedelta(days=term)
            v = self.attempt(lambda: svc.issue(world.core, world.tier1, Decimal(amount) / 100, self.today, matures, docs))
            if v is not None:
                assert v == svc.voucher(v["id"])  # the answer is the voucher as stored
                self.vouchers[v["id"]] = {"total": amount, "matures": matures, "paid": 0}
                self.shadow[v["parts"][0]["id"]] = (v["id"], 0, amount, f"enterprise:{world.tier1}", "held")
            if cancel == 0 and self.vouchers:  # now and then the issuer cancels one (refused once any part moved)
                self.cancel(data.draw(st.sampled_from(sorted(self.vouchers))))

        def cancel(self, vid: int) -> None:
            out = self.attempt(lambda: svc.cancel(world.core, vid))
            if out is not None:
                self.vouchers[vid]["cancelled"] = True
                for p, (v, s0, e0, h, st_) in list(self.shadow.items()):
                    if v == vid and st_ == "held":
                        self.shadow[p] = (v, s0, e0, h, "cancelled")

        @precondition(lambda self: self.live())
        @rule(data=st.data(), cuts=st.lists(st.integers(1, 99), min_size=1, max_size=3))
        def split(self, data: st.DataObject, cuts: list[int]) -> None:
            part = data.draw(st.sampled_from(self.live()))
            vid, start, end, holder, _ = self.shadow[part]
            sizes = [max(1, (end - start) * c // 300) for c in cuts]
            out = self.attempt(lambda: svc.split(self.holder(part), part, [Decimal(s) / 100 for s in sizes], self.today))
            if out is not None:
                assert out == [svc.part(p["id"]) for p in out]  # the answer is the parts as stored
                self.shadow[part] = (vid, start, end, holder, "split")
                for p in out:
                    self.shadow[p["id"]] = (vid, p["start_fen"], p["end_fen"], holder, "held")

        @precondition(lambda self: self.live())
        @rule(data=st.data(), wrong_holder=st.booleans())
        def transfer(self, data: st.DataObject, wrong_holder: bool) -> None:
            part = data.draw(st.sampled_from(self.live()))
            to = data.draw(st.sampled_from(suppliers + [world.tier1]))
            actor = Holder("enterprise", world.outsider) if wrong_holder else self.holder(part)
            out = self.attempt(lambda: svc.transfer(actor, part, to, self.today))
            if out is not None:  # sent: still the holder's until the receiver accepts
                assert not wrong_holder and actor.kind == "enterprise" and out["pending_to_id"] == to
                assert part not in self.pending
                self.pending[part] = to

        @precondition(lambda self: self.pending)
        @rule(data=st.data(), how=st.sampled_from(["accept", "accept", "reject", "recall", "outsider"]))
        def answer(self, data: st.DataObject, how: str) -> None:
            part = data.draw(st.sampled_from(sorted(self.pending)))
            to = self.pending[part]
            if how == "accept":
                out = self.attempt(lambda: svc.accept(Holder("enterprise", to), part, self.today))
            elif how == "outsider":
                out = self.attempt(lambda: svc.accept(Holder("enterprise", world.outsider), part, self.today))
                assert out is None
            else:
                who = Holder("enterprise", to) if how == "reject" else self.holder(part)
                out = self.attempt(lambda: svc.reject(who, part))
            if out is not None:
                del self.pending[part]
                vid, start, end, holder, status = self.shadow[part]
                if how == "accept":
                    assert out["holder_id"] == to
                    holder = f"enterprise:{to}"
                self.shadow[part] = (vid, start, end, holder, status)

        @precondition(lambda self: self.live())
        @rule(data=st.data())
        def offer(self, data: st.DataObject) -> None:
            part = data.draw(st.sampled_from(self.live()))
            lender = data.draw(st.sampled_from(lenders))
            out = self.attempt(lambda: svc.offer(self.holder(part), part, lender, self.today))
            if out is not None:
                vid, start, end, holder, _ = self.shadow[part]
                self.shadow[part] = (vid, start, end, holder, "offered")
                self.offers[out["id"]] = part

        @precondition(lambda self: any(self.shadow[p][4] == "offered" for p in self.offers.values()))
        @rule(data=st.data(), accept=st.booleans())
        def decide(self, data: st.DataObject, accept: bool) -> None:
            offer = data.draw(st.sampled_from(sorted(o for o, p in self.offers.items() if self.shadow[p][4] == "offered")))
            part = self.offers[offer]
            lender = svc.offers(None, _page())[0]
            lender_id = next(o["lender_tenant_id"] for o in lender if o["id"] == offer)
            out = self.attempt(lambda: svc.decide(lender_id, offer, accept, self.today))
            if out is None:
                return
            vid, start, end, holder, _ = self.shadow[part]
            if out["status"] == "accepted":
                self.shadow[part] = (vid, start, end, f"lender:{lender_id}", "financed")
            else:
                self.shadow[part] = (vid, start, end, holder, "held")

        @rule(days=st.integers(1, 40))
        def advance(self, days: int) -> None:
            self.today += timedelta(days=days)

        @precondition(lambda self: any(v["paid"] < v["total"] and v["matures"] <= self.today for v in self.vouchers.values()))
        @rule(data=st.data(), whole=st.booleans())
        def pay(self, data: st.DataObject, whole: bool) -> None:
            due = sorted(i for i, v in self.vouchers.items() if v["paid"] < v["total"] and v["matures"] <= self.today
                         and not v.get("cancelled"))
            if not due:
                return
            vid = data.draw(st.sampled_from(due))
            owed = self.vouchers[vid]["total"] - self.vouchers[vid]["paid"]
            amount = owed if whole else data.draw(st.integers(1, owed))
            out = self.attempt(lambda: svc.pay(world.core, vid, Decimal(amount) / 100, self.today))
            if out is None:
                return
            payment = out["payment"]
            assert out["voucher"] == svc.voucher(vid)  # the answer is the voucher as stored after the payment
            assert sum(s["fen"] for s in payment["shares"]) == amount  # to the fen
            assert sum(payment["by_holder"].values()) == amount
            sizes = {s["part_id"]: self.shadow[s["part_id"]][2] - self.shadow[s["part_id"]][1] for s in payment["shares"]}
            weight = sum(sizes.values())
            for s in payment["shares"]:  # each share is its holding's pro-rata part, within a fen
                assert abs(s["fen"] * weight - amount * sizes[s["part_id"]]) < weight
            self.vouchers[vid]["paid"] += amount
            if amount == owed:
                for p, (v, s0, e0, h, st_) in list(self.shadow.items()):
                    if v == vid and st_ in ("held", "offered", "financed"):
                        self.shadow[p] = (v, s0, e0, h, "paid")
                        self.pending.pop(p, None)  # a transfer not accepted by payment lapses

        # --- invariants --------------------------------------------------------------------
        @invariant()
        def parts_tile_the_issue_and_match_the_shadow(self) -> None:
            for vid, v in self.vouchers.items():
                assert svc.audit(vid)["ok"], svc.audit(vid)
                parts = svc.voucher(vid)["parts"]
                got = {p["id"]: (vid, p["start_fen"], p["end_fen"], f"{p['holder_kind']}:{p['holder_id']}", p["status"])
                       for p in parts}
                assert {p["id"]: p["pending_to_id"] for p in parts if p["pending_to_id"] is not None} == \
                    {p: to for p, to in self.pending.items() if self.shadow[p][0] == vid}
                want = {p: s for p, s in self.shadow.items() if s[0] == vid and s[4] != "split"}
                assert got == want
                assert sum(e - s for _, s, e, _, _ in got.values()) == v["total"]
                assert svc.voucher(vid)["paid_fen"] == v["paid"]

        @invariant()
        def ledger_balances(self) -> None:
            tb = ws.lending.trial_balance()
            assert tb["balanced"]
            with ws.engine.connect() as conn:
                net = conn.execute(select(func.coalesce(func.sum(GlLine.debit - GlLine.credit), 0))
                                   .where(GlLine.account == "2241.01")).scalar_one()
            assert Decimal(net) == 0

    kinds: dict[str, int] = {}
    # The sequences are derandomised, yet which ones Hypothesis draws has been seen to move with the
    # process (the same seed reached no accepted transfer after some other modules were imported):
    # a pass that leaves an operation unreached is followed by another, with other sequences (one
    # step more each), on the same world, at most three in all. Every pass checks every invariant.
    for extra in range(3):
        Vouchers.TestCase.settings = settings(max_examples=examples, stateful_step_count=steps + extra, deadline=None,
                                              suppress_health_check=list(HealthCheck),
                                              # no shrinking: each step is a real transaction, and shrinking a
                                              # long failing run took minutes; the failing sequence is printed
                                              phases=[Phase.explicit, Phase.reuse, Phase.generate],
                                              derandomize=True)  # reproducible: the same sequences every run
        Vouchers.TestCase().runTest()
        with ws.engine.connect() as conn:  # the sequences did reach every operation
            kinds = dict(conn.execute(select(VoucherEvent.kind, func.count()).group_by(VoucherEvent.kind)).all())
        if all(kinds.get(k, 0) > 0 for k in KINDS):
            break
    assert all(kinds.get(k, 0) > 0 for k in KINDS), (kinds, sorted(set(refusals)))


KINDS = ("issue", "split", "send", "transfer", "reject", "offer", "finance", "decline", "pay", "cancel")


def _page() -> Any:
    from iotfin.db.pagination import PageParams  # noqa: PLC0415 - a test helper's import

    return PageParams(200, None)


def test_random_voucher_sequences_sqlite(tmp_path: Path) -> None:
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=f"sqlite:///{tmp_path / 'r.db'}", simulation=True))
    ws.initialise()
    try:
        run_machine(ws, examples=25, steps=30)
    finally:
        ws.close()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_random_voucher_sequences_postgresql(sim_workspace: Workspace) -> None:
    run_machine(sim_workspace, examples=25, steps=30)
