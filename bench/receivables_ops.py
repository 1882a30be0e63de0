"""Benchmark: durable voucher operations per second on SQLite, and their latency.

    .venv/bin/python bench/receivables_ops.py --vouchers 400 --callers 16

A SQLite workspace (WAL, synchronous=FULL: every commit is durable) with a core enterprise, a tier-1
supplier and 8 tier-2 suppliers, one lender and a rating. Per voucher, in order: issue (against a
matched PO / delivery note / invoice), split into four, three transfers to tier-2 suppliers each
accepted by its receiver, an offer to the lender, then either the lender's acceptance (one in four:
lien + discount loan + ledger leaves) or the offer's withdrawal, and at maturity the core
enterprise's payment (pro rata to every holder, GL postings, loan repayment). `--callers` threads
run the vouchers concurrently (each voucher's operations in order); the service's group committer
applies concurrent operations in one transaction, each in a savepoint, with one ledger batch and one
commit. An operation's latency runs from the call to its return, which is after the commit.
Prints one JSON object: operations, ops/s, latency p50 / p99 per kind and overall, load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.receivables.group_commit import run_batch
from iotfin.receivables.model import Holder
from iotfin.risk.tables import CreditRating
from iotfin.supplychain.tables import Relationship, SupplyChain, TradeDocument

START = date(2026, 3, 2)


def seed(ws: Workspace, vouchers: int) -> tuple[int, int, list[int], int, list[list[int]]]:
    with ws.engine.begin() as conn:
        conn.execute(insert(Enterprise), [
            {"id": i, "uscc": f"91350100{i:010d}", "name": f"企业{i}", "name_en": f"Firm {i}", "sector": "manufacturing",
             "subsector": "x", "region_code": "350100", "region": "福州", "founded_on": date(2015, 1, 1),
             "registered_capital": Decimal("1000000.00"), "legal_rep_name": "x", "legal_rep_id_number": "x",
             "legal_rep_phone": "x", "tax_grade": "B"} for i in range(1, 11)])
        conn.execute(insert(Tenant).values(code="bank-a", name="bank-a", name_en="bank-a", kind="bank"))
        lender = conn.execute(select(Tenant.id).where(Tenant.code == "bank-a")).scalar_one()
        chain = conn.execute(insert(SupplyChain).values(core_enterprise_id=1, name="c")).inserted_primary_key[0]
        conn.execute(insert(Relationship), [{"chain_id": chain, "core_enterprise_id": 1, "supplier_id": s,
                                             "buyer_id": 1 if s == 2 else 2, "tier": 1 if s == 2 else 2,
                                             "since": date(2020, 1, 1)} for s in range(2, 11)])
        conn.execute(insert(CreditRating).values(enterprise_id=1, lender="bank-a", purpose="credit_assessment",
                                                 as_of=START, model_id="bench", pd=0.02, score=700.0, grade="A",
                                                 profile={}, reads=[]))
        docs = []
        for _ in range(vouchers):
            po = conn.execute(insert(TradeDocument).values(doc_type="purchase_order", seller_id=2, buyer_id=1,
                                                           issued_on=START, amount=Decimal("200000"))).inserted_primary_key[0]
            dn = conn.execute(insert(TradeDocument).values(doc_type="delivery_note", seller_id=2, buyer_id=1, order_id=po,
                                                           issued_on=START, amount=Decimal("200000"))).inserted_primary_key[0]
            inv = conn.execute(insert(TradeDocument).values(doc_type="invoice", seller_id=2, buyer_id=1, order_id=po,
                                                            issued_on=START, amount=Decimal("200000"))).inserted_primary_key[0]
            docs.append([po, dn, inv])
    return 1, 2, list(range(3, 11)), int(lender), docs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vouchers", type=int, default=400)
    parser.add_argument("--callers", type=int, default=16,
                        help="concurrent callers (threads), each running its share of the vouchers' operations")
    parser.add_argument("--no-group-commit", action="store_true",
                        help="peer run: every operation commits on its own (as before group commit)")
    parser.add_argument("--batched", type=int, metavar="B", default=0,
                        help="diagnostic: no threads; the same operations applied in batches of B by this thread "
                             "(run_batch, as the writer does), to measure the writer's CPU per operation alone")
    parser.add_argument("--no-anchor", action="store_true",
                        help="diagnostic: skip the ledger leaves of the journal events (not a supported mode)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="iotfin-receivables-bench-"))
    try:
        ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{root / 'iotfin.db'}", simulation=True))
        ws.initialise()
        core, tier1, tier2, lender, docs = seed(ws, args.vouchers + 1)
        svc = ws.receivables
        if args.no_group_commit:
            svc.group = None
        if args.no_anchor:
            svc.ports = dataclasses.replace(svc.ports, anchor=None)
        svc.issue(core, tier1, "1000.00", START, START + timedelta(days=30), docs[-1])  # warm caches
        lat: dict[str, list[float]] = defaultdict(list)
        lock = threading.Lock()
        h1 = Holder("enterprise", tier1)
        day = START + timedelta(days=1)

        def timed(kind: str, call):  # noqa: ANN001, ANN202 - submit to acknowledgement (after the commit)
            t = time.perf_counter()
            out = call()
            took = time.perf_counter() - t
            with lock:
                lat[kind].append(took)
            return out

        def lifecycle(i: int):  # noqa: ANN202 - yields (kind, call) and is sent each call's result
            v = yield "issue", lambda: svc.issue(core, tier1, "100000.00", START, START + timedelta(days=90), docs[i])
            parts = yield "split", lambda: svc.split(h1, v["parts"][0]["id"], ["10000.00", "20000.00", "30000.00"], day)
            for k in range(3):
                to = tier2[(i + k) % len(tier2)]
                yield "transfer", lambda p=parts[k], to=to: svc.transfer(h1, p["id"], to, day)
                yield "accept", lambda p=parts[k], to=to: svc.accept(Holder("enterprise", to), p["id"], day)
            offer = yield "offer", lambda: svc.offer(h1, parts[3]["id"], lender, day)
            if i % 4 == 0:
                yield "finance", lambda: svc.decide(lender, offer["id"], True, day)
            else:
                yield "withdraw", lambda: svc.withdraw(h1, offer["id"])
            return int(v["id"])

        def payment(vid: int):  # noqa: ANN202
            yield "pay", lambda: svc.pay(core, vid, "100000.00", START + timedelta(days=90))

        def drive(steps) -> int | None:  # noqa: ANN001 - one caller runs a generator's operations in order
            try:
                kind, call = next(steps)
                while True:
                    kind, call = steps.send(timed(kind, call))
            except StopIteration as done:
                return done.value

        if args.batched:
            print(json.dumps(batched(svc, [lifecycle(i) for i in range(args.vouchers)], payment, args.batched)))
            ws.close()
            return

        load_before = os.getloadavg()
        cpu_before = time.process_time()
        began = time.perf_counter()
        with ThreadPoolExecutor(args.callers) as pool:
            issued = list(pool.map(drive, [lifecycle(i) for i in range(args.vouchers)]))
            list(pool.map(drive, [payment(v) for v in issued]))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_before
        every = sorted(x for xs in lat.values() for x in xs)
        ops = len(every)
        audits = [svc.audit(v)["ok"] for v in issued[:50]]
        assert all(audits)
        committer = svc.group
        out = {
            "benchmark": "receivables_ops",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_average_before": load_before, "load_average": os.getloadavg()},
            "workload": {"vouchers": args.vouchers, "callers": args.callers, "backend": "sqlite (WAL, synchronous=FULL)",
                         "per_voucher": "issue, split in 4, 3 transfers each accepted by its receiver, offer, "
                                        "finance (1 in 4) or withdraw, pay",
                         "group_commit": committer is not None,
                         "ledger_leaf_per_event": not args.no_anchor},
            "operations": ops, "seconds": round(elapsed, 3), "ops_per_s": round(ops / elapsed, 1),
            # the process's CPU (all threads) per operation: what the machine's load does not change much
            "cpu_ms_per_op": round(cpu / ops * 1e3, 3),
            "commits": committer.commits if committer else ops,
            "latency_ms": {"p50": round(statistics.median(every) * 1e3, 3),
                           "p99": round(every[int(len(every) * 0.99) - 1] * 1e3, 3)},
            "by_kind_ms": {k: {"n": len(v), "p50": round(statistics.median(v) * 1e3, 3),
                               "p99": round(sorted(v)[max(0, int(len(v) * 0.99) - 1)] * 1e3, 3)}
                           for k, v in sorted(lat.items())},
            "targets": {"ops_per_s": 2000, "p99_ms": 20},
        }
        out["targets"]["met"] = out["ops_per_s"] >= 2000 and out["latency_ms"]["p99"] <= 20
        print(json.dumps(out))
        ws.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def batched(svc, lifecycles: list, payment, size: int) -> dict:  # noqa: ANN001
    """The workload's operations in batches of `size` applied by this thread: per voucher its
    operations in order, `size` vouchers interleaved (their payments after all the rest, as the
    threaded run does). The writer's CPU per operation without callers or thread hand-overs."""
    svc._write = lambda op: op  # the use cases hand back their operation instead of running it
    ops = 0
    batches = 0
    cpu, began = time.process_time(), time.perf_counter()

    def run(generators: list) -> list:
        nonlocal ops, batches
        pending, live, nxt, returned = list(enumerate(generators)), {}, {}, {}
        while pending or live:
            while len(live) < size and pending:
                k, g = pending.pop(0)
                live[k], nxt[k] = g, next(g)[1]()
            keys = list(live)
            results = run_batch(svc.engine, [nxt[k] for k in keys], svc._anchor)
            batches += 1
            ops += len(keys)
            for k, (ok, value) in zip(keys, results, strict=True):
                assert ok, value
                try:
                    nxt[k] = live[k].send(value)[1]()
                except StopIteration as done:
                    returned[k] = done.value
                    del live[k], nxt[k]
        return [returned[k] for k in range(len(generators))]

    issued = run(lifecycles)
    run([payment(v) for v in issued])
    cpu, elapsed = time.process_time() - cpu, time.perf_counter() - began
    return {"benchmark": "receivables_ops", "mode": f"batched by this thread, {size} per batch",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
            "operations": ops, "batches": batches, "seconds": round(elapsed, 3), "ops_per_s": round(ops / elapsed, 1),
            "writer_cpu_ms_per_op": round(cpu / ops * 1e3, 3)}


if __name__ == "__main__":
    main()
