"""Benchmark: credit decisions, one at a time end to end, and replay of past applications.

    .venv/bin/python bench/decision.py                          # 300 decisions, replay of 100,000
    .venv/bin/python bench/decision.py --decisions 100 --replay 10000

Prints one JSON object:
- evaluate: one decision without storage (strategy evaluated once with its rule trace, limits,
  pricing, APR by IRR and the zh/en disclosure) — `evaluate_application`;
- decide: one decision end to end through DecisionService.decide on SQLite (assessment from the
  assess port, deployment, enterprise and exposure queries, strategy, limits, pricing,
  disclosure, the application and decision rows and the decision's ledger anchor in ONE
  transaction committed durably (WAL, synchronous=FULL)); and the same without the ledger anchor.
  The assess port returns a prepared RiskAssessment: the risk engine's own cost is measured by its
  own benchmark;
- replay: DecisionService.replay of a draft strategy over --replay stored past applications (read
  from the database, strategy evaluated with zen-engine evaluate_batch in batches of 2,000,
  limits and pricing per application, report); the past decision rows are bulk-inserted synthetic
  records (their bodies carry the exposure replay reads), not decided one by one first;
- with --workspace DIR (a demo workspace, which it adds applications to): decisions end to end with
  the risk engine's online assessment — `features_for` (consent checked, access logged), the
  enterprise model, then DecisionService.decide as above — the issue's "features, model, strategy,
  pricing" in one timing;
- the peers: the same draft evaluated on the same contexts with zen-engine's synchronous
  `evaluate` one call at a time, and with `async_evaluate` gathered, against `evaluate_batch`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.decision.applications import Application
from iotfin.decision.assessment import GRADES, RiskAssessment
from iotfin.decision.limits import Exposure
from iotfin.decision.service import (
    DecisionPolicy,
    DecisionService,
    _evaluate_all,
    evaluate_application,
)
from iotfin.decision.strategies import compile_strategy, default_strategy_text, strategy_context
from iotfin.decision.tables import CreditApplication, CreditDecision
from iotfin.identity.tables import Enterprise
from iotfin.lending.disclosure import offer_terms
from iotfin.supplychain.store import core_enterprise_of


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the replay's worker processes): on a
    machine shared with other work, wall time measures the queue for the cores, CPU time the work."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def stats(samples_ms: list[float]) -> dict[str, float]:
    return {"n": len(samples_ms), "median_ms": round(statistics.median(samples_ms), 3), "p90_ms": pct(samples_ms, 0.9),
            "p99_ms": pct(samples_ms, 0.99), "max_ms": round(max(samples_ms), 3)}


def assessment(rng: random.Random, enterprise_id: int) -> RiskAssessment:
    g = rng.choices(range(len(GRADES)), weights=(3, 8, 14, 20, 20, 14, 8, 3, 2))[0]
    return RiskAssessment(
        enterprise_id=enterprise_id, grade=GRADES[g], pd=Decimal("0.002") * (g + 1) ** 2,
        sub_scores={k: Decimal(rng.randint(20, 95)) for k in ("entity", "asset", "transaction")},
        features={"device_coverage": Decimal(rng.randint(40, 100)) / 100, "history_days": rng.randint(30, 900),
                  "litigation_count": rng.choices((0, 1, 2, 3), weights=(85, 8, 4, 3))[0],
                  "blacklisted": rng.random() < 0.01},
        reasons=(), consent_ok=rng.random() > 0.02, as_of=datetime(2026, 12, 1, tzinfo=UTC),
        collateral_value=Decimal(rng.randint(1, 400)) * 10_000, trade_volume_12m=Decimal(rng.randint(10, 2_000)) * 10_000)


def application(rng: random.Random, enterprise_id: int) -> Application:
    return Application(enterprise_id, "iot-working-capital", Decimal(rng.randint(5, 300)) * 10_000, rng.choice((6, 12, 24)))


def with_risk_engine(workspace: Path, decisions: int, rng: random.Random) -> dict:
    """Decisions on a demo workspace with the platform's online assessor, the way the API decides."""
    from iotfin.demo.run import _lenders
    from iotfin.sim import SimDataset

    ws = Workspace(Settings(data_dir=workspace))
    lender_of = _lenders(SimDataset(workspace / "sim"))
    assessor = ws.risk_assessor()
    if assessor is None:
        raise SystemExit(f"{workspace}: no trained enterprise model (run `iotfin demo --workspace {workspace}`)")
    svc = ws.decisions()
    ids = sorted(lender_of)
    svc.decide(application(rng, ids[0]), assessor(ids[0], lender_of[ids[0]]))  # cold: builds today's snapshot
    lat, outcomes = [], {"approve": 0, "decline": 0, "refer": 0}
    cpu = cpu_seconds()
    for _ in range(decisions):
        eid = rng.choice(ids)
        app = application(rng, eid)
        started = time.perf_counter()
        out = svc.decide(app, assessor(eid, lender_of[eid]))
        lat.append((time.perf_counter() - started) * 1000)
        outcomes[out["decision"]] += 1
    cpu = cpu_seconds() - cpu
    ws.close()
    return stats(lat) | {"outcomes": outcomes, "cpu_ms_per_decision": round(cpu / decisions * 1000, 3),
                         "enterprises": len(ids)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=300)
    ap.add_argument("--evaluations", type=int, default=2_000)
    ap.add_argument("--replay", type=int, default=100_000)
    ap.add_argument("--enterprises", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workspace", type=Path, help="a demo workspace: also decide with the risk engine's features and model")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    root = Path(tempfile.mkdtemp(prefix="iotfin-bench-decision-"))
    try:
        ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{root / 'iotfin.db'}"))
        ws.initialise()
        with ws.engine.begin() as conn:
            conn.execute(insert(Enterprise), [dict(
                id=i, uscc=f"9111000{i:010d}X", name=f"企业{i}", name_en=f"Enterprise {i}", sector="manufacturing",
                subsector="machinery", region_code="110000", region="北京市", founded_on=date(2015, 1, 1),
                registered_capital=Decimal("1000000"), legal_rep_name="-", legal_rep_id_number="-", legal_rep_phone="-",
                tax_grade="A", litigation_count=0, key_person_changes=0) for i in range(1, args.enterprises + 1)])
        prepared = {i: assessment(rng, i) for i in range(1, args.enterprises + 1)}
        svc = ws.decisions(assess=prepared.__getitem__)
        svc.ensure_default()
        compiled = svc.compiled("default", 1)
        policy = DecisionPolicy()

        log(f"evaluate x {args.evaluations}")
        eval_ms = []
        eval_cpu = cpu_seconds()
        for _ in range(args.evaluations):
            eid = rng.randint(1, args.enterprises)
            started = time.perf_counter()
            evaluate_application(compiled, application(rng, eid), prepared[eid], policy, Exposure(), date(2026, 12, 1),
                                 apr=offer_terms)
            eval_ms.append((time.perf_counter() - started) * 1000)
        eval_cpu = cpu_seconds() - eval_cpu

        log(f"decide x {args.decisions}")
        decide_ms, outcomes = [], {"approve": 0, "decline": 0, "refer": 0}
        decide_cpu = cpu_seconds()
        for _ in range(args.decisions):
            eid = rng.randint(1, args.enterprises)
            app = application(rng, eid)
            started = time.perf_counter()
            out = svc.decide(app)
            decide_ms.append((time.perf_counter() - started) * 1000)
            outcomes[out["decision"]] += 1
        decide_cpu = cpu_seconds() - decide_cpu

        log(f"decide without ledger anchoring x {args.decisions}")
        bare = DecisionService(ws.engine, assess=prepared.__getitem__, core_of=core_enterprise_of,
                               apr=offer_terms)
        bare_ms = []
        bare_cpu = cpu_seconds()
        for _ in range(args.decisions):
            app = application(rng, rng.randint(1, args.enterprises))
            started = time.perf_counter()
            bare.decide(app)
            bare_ms.append((time.perf_counter() - started) * 1000)
        bare_cpu = cpu_seconds() - bare_cpu

        log(f"bulk-insert {args.replay} past applications")
        rows_app, rows_dec = [], []
        now = datetime.now(UTC)
        base_id = 1_000_000
        for n in range(args.replay):
            eid = rng.randint(1, args.enterprises)
            app, a = application(rng, eid), assessment(rng, eid)
            decision = "approve" if a.grade in ("AAA", "AA", "A", "BBB", "BB") and a.consent_ok else "decline"
            rows_app.append(dict(id=base_id + n, enterprise_id=eid, product=app.product, amount=app.amount,
                                 tenor_months=app.tenor_months, inputs={"application": app.to_json(), "assessment": a.to_json()},
                                 status="approved" if decision == "approve" else "declined",
                                 approved_amount=app.amount if decision == "approve" else None, received_at=now,
                                 updated_at=now))
            rows_dec.append(dict(application_id=base_id + n, source="strategy", decision=decision, strategy_name="default",
                                 strategy_version=1, arm="champion", offered_amount=app.amount if decision == "approve" else None,
                                 tenor_months=app.tenor_months, rate=None, decided_by="bench", decided_at=now,
                                 result={"exposure": {"borrower": "0.00", "core": "0.00"}, "limit": {"core_headroom": None}}))
        with ws.engine.begin() as conn:
            for start in range(0, len(rows_app), 20_000):
                conn.execute(insert(CreditApplication), rows_app[start:start + 20_000])
                conn.execute(insert(CreditDecision), rows_dec[start:start + 20_000])
        del rows_app, rows_dec

        draft = json.loads(default_strategy_text())
        for node in draft["nodes"]:  # the draft: grade BB goes to review
            if node["id"] == "review-routing":
                node["content"]["rules"][0]["review-routing-in-grade"] = '"B","BB"'
        log(f"replay {args.replay + args.decisions}")
        started, cpu = time.perf_counter(), cpu_seconds()
        report = svc.replay(draft)
        replay_s, replay_cpu = time.perf_counter() - started, cpu_seconds() - cpu

        log("peer: synchronous evaluate vs async gathered, zen only")
        draft_compiled, _ = compile_strategy(draft)
        sample = [strategy_context(application(rng, i % args.enterprises + 1), assessment(rng, i % args.enterprises + 1))
                  for i in range(min(args.replay, 20_000))]
        started = time.perf_counter()
        for ctx in sample:
            draft_compiled.evaluate(ctx, trace=False)
        sync_s = time.perf_counter() - started

        async def gathered() -> None:
            for s in range(0, len(sample), 2_000):
                await asyncio.gather(*(draft_compiled.evaluate_async(c) for c in sample[s:s + 2_000]))

        started = time.perf_counter()
        asyncio.run(gathered())
        async_s = time.perf_counter() - started
        started = time.perf_counter()
        _evaluate_all(draft_compiled, sample, 5_000)
        batch_s = time.perf_counter() - started
        risk_engine = None if args.workspace is None else with_risk_engine(args.workspace, args.decisions, rng)
        result = {
            "benchmark": "decision",
            "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_avg_at_start": load_at_start,
                        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
            "workload": {"strategy": "packaged default (JDM, 4 rule nodes)", "enterprises": args.enterprises,
                         "evaluations": args.evaluations, "decisions": args.decisions, "replayed": report["applications"],
                         "database": "SQLite, WAL, synchronous=FULL", "seed": args.seed},
            "evaluate": stats(eval_ms) | {"cpu_ms_per_evaluation": round(eval_cpu / args.evaluations * 1000, 3)},
            "decide_end_to_end": stats(decide_ms) | {"outcomes": outcomes,
                                                     "cpu_ms_per_decision": round(decide_cpu / args.decisions * 1000, 3)},
            "decide_with_risk_engine": risk_engine,
            "decide_without_anchoring": stats(bare_ms) | {"cpu_ms_per_decision": round(bare_cpu / args.decisions * 1000, 3)},
            "replay": {"applications": report["applications"], "seconds": round(replay_s, 2),
                       "cpu_seconds_all_processes": round(replay_cpu, 2),
                       "cpu_ms_per_application": round(replay_cpu / report["applications"] * 1000, 3),
                       "applications_per_s": round(report["applications"] / replay_s),
                       "changed": report["changed"], "delta": report["delta"]},
            "peer_zen_evaluate": {"contexts": len(sample), "sync_per_s": round(len(sample) / sync_s),
                                  "async_gathered_per_s": round(len(sample) / async_s),
                                  "evaluate_batch_per_s": round(len(sample) / batch_s),
                                  "ratio_batch_to_sync": round(sync_s / batch_s, 2),
                                  "ratio_async_to_sync": round(sync_s / async_s, 2)},
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
