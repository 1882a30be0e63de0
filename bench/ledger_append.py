"""Benchmark: the transparency log on SQLite (durable commits), and pymerkle's SQLite tree beside it.

    .venv/bin/python bench/ledger_append.py                      # 1M for appends, 10M for proofs
    .venv/bin/python bench/ledger_append.py --leaves 200000 --large 0 --peer-leaves 100000

Prints one JSON object:
- append leaves/s: 10k-entry batches through LedgerStore.append_batch, each its own transaction
  (WAL, synchronous=FULL: every batch is on disk when the call returns), to --leaves;
- checkpoint latency: sign_checkpoint (consistency check against the last signed one + Ed25519
  + insert) after every batch;
- inclusion and consistency proof latency at --leaves and, after growing the same log to --large,
  at that size (random indexes, one proof per call including its connection checkout), timed
  after os.sync(); the first --warmup proofs are reported apart from the steady-state samples;
- pymerkle's SqliteTree fed the same leaf inputs in the same batches (same RFC 9162 hashing, so
  the roots must be equal), its proofs at its size, and the ratios.
Entry generation is excluded from append timings; Python's garbage collector stays on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from iotfin.db import migrate
from iotfin.db.engine import make_engine
from iotfin.ledger.checkpoint import SignerKey
from iotfin.ledger.entry import Entry, leaf_input
from iotfin.ledger.store import LedgerStore
from iotfin.ledger.verify import verify_consistency, verify_inclusion

ORIGIN = "bench.iotfin.example/ledger"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def batch(start: int, count: int) -> list[Entry]:
    # ~60-byte payloads, the size of a telemetry batch summary
    return [Entry("telemetry_batch", f"b{n}", b'{"device":"dev-%07d","seq":%d,"kwh":%d.%02d}' % (n % 9999991, n, n % 997, n % 100))
            for n in range(start, start + count)]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def append_to(store: LedgerStore, target: int, batch_size: int, key: SignerKey | None) -> dict:
    append_s: list[float] = []
    checkpoint_s: list[float] = []
    size = store.size()
    while size < target:
        entries = batch(size, min(batch_size, target - size))
        started = time.perf_counter()
        _, size, _ = store.append_batch(entries)
        append_s.append(time.perf_counter() - started)
        if key is not None:
            started = time.perf_counter()
            store.sign_checkpoint(key, ORIGIN)
            checkpoint_s.append(time.perf_counter() - started)
        if len(append_s) % 100 == 0:
            log(f"  {size:,} leaves, {sum(append_s[-100:]) / 100 * 1000:.1f} ms per batch")
    out = {
        "batches": len(append_s),
        "leaves_per_second": round(batch_size * len(append_s) / sum(append_s)) if append_s else None,
        "batch_ms_p50": ms(pct(append_s, 0.5)) if append_s else None,
        "batch_ms_p99": ms(pct(append_s, 0.99)) if append_s else None,
    }
    if checkpoint_s:
        out |= {"checkpoint_ms_p50": ms(pct(checkpoint_s, 0.5)), "checkpoint_ms_p99": ms(pct(checkpoint_s, 0.99))}
    return out


def settle() -> None:
    """Flush dirty pages first, so proofs are timed on a log at rest, not against the kernel's
    write-back of the bulk load that just happened."""
    os.sync()
    time.sleep(2)


def timed(samples: int, fn) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def latency(prefix: str, first: list[float], steady: list[float]) -> dict:
    return {f"{prefix}_ms_first_{len(first)}_p99": ms(pct(first, 0.99)),
            f"{prefix}_ms_p50": ms(pct(steady, 0.5)), f"{prefix}_ms_p99": ms(pct(steady, 0.99)),
            f"{prefix}_ms_p999": ms(pct(steady, 0.999)), f"{prefix}_ms_max": ms(max(steady))}


def proof_latency(store: LedgerStore, samples: int, warmup: int, seed: int) -> dict:
    settle()
    size, root = store.size(), store.root()
    rng = random.Random(seed)

    def inclusion() -> None:
        store.inclusion_proof(rng.randrange(size), size)

    def consistency() -> None:
        store.consistency_proof(rng.randrange(1, size), size)

    first = timed(warmup, inclusion)
    steady = timed(samples, inclusion)
    consistency_steady = timed(samples // 4, consistency)
    # verify a sample outside the timing: the numbers are for proofs that check out
    for index in rng.sample(range(size), 50):
        record = store.leaf(index)
        verify_inclusion(record.leaf_hash, index, size, store.inclusion_proof(index, size), root)
    old = size // 3
    verify_consistency(old, size, store.consistency_proof(old, size), store.root(old), root)
    return {"size": size, "samples": samples, "warmup_excluded": warmup,
            **latency("inclusion", first, steady),
            "consistency_ms_p50": ms(pct(consistency_steady, 0.5)),
            "consistency_ms_p99": ms(pct(consistency_steady, 0.99))}


def run_pymerkle(workdir: Path, leaves: int, batch_size: int, samples: int, warmup: int, seed: int) -> dict:
    from pymerkle import SqliteTree
    from pymerkle import verify_inclusion as pm_verify_inclusion

    tree = SqliteTree(str(workdir / "pymerkle.db"))
    append_s: list[float] = []
    size = 0
    while size < leaves:
        data = [leaf_input(*e) for e in batch(size, min(batch_size, leaves - size))]
        started = time.perf_counter()
        size = tree.append_entries(data)  # one transaction per call, rollback journal, synchronous=FULL
        append_s.append(time.perf_counter() - started)
        if len(append_s) % 20 == 0:
            log(f"  pymerkle {size:,} leaves")
    settle()
    started = time.perf_counter()
    root = tree.get_root()
    first_root_s = time.perf_counter() - started
    rng = random.Random(seed)

    def inclusion() -> None:
        tree.prove_inclusion(rng.randrange(size) + 1, size)  # pymerkle counts leaves from one

    first = timed(warmup, inclusion)
    steady = timed(samples, inclusion)
    pm_verify_inclusion(tree.get_leaf(1), root, tree.prove_inclusion(1, size))
    roots: list[float] = []
    for _ in range(20):
        started = time.perf_counter()
        tree.get_root(rng.randrange(1, size + 1))
        roots.append(time.perf_counter() - started)
    tree.close()
    return {
        "size": size, "root": root.hex(),
        "leaves_per_second": round(size / sum(append_s)),
        "batch_ms_p50": ms(pct(append_s, 0.5)), "batch_ms_p99": ms(pct(append_s, 0.99)),
        "first_root_ms": ms(first_root_s),
        "root_at_random_size_ms_p50": ms(pct(roots, 0.5)),
        **latency("inclusion", first, steady),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=1_000_000, help="append throughput run")
    parser.add_argument("--large", type=int, default=10_000_000, help="grow on to this size for proofs (0: skip)")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000, help="proofs timed separately before the samples")
    parser.add_argument("--peer-leaves", type=int, default=1_000_000, help="pymerkle run size (0: skip)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="iotfin-ledger-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "benchmark": "ledger_append",
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine(),
                    "python": f"{platform.python_implementation()} {platform.python_version()}",
                    "sqlite": sqlite3.sqlite_version},
        "workload": {"batch": args.batch, "payload_bytes": len(batch(0, 1)[0].payload),
                     "durability": "SQLite WAL, synchronous=FULL, one transaction per batch"},
    }
    try:
        engine = make_engine(f"sqlite:///{workdir / 'ledger.db'}")
        migrate.upgrade(engine)
        store = LedgerStore(engine)
        key = SignerKey.generate(ORIGIN)

        log(f"iotfin: appending {args.leaves:,} leaves, signing a checkpoint after each batch")
        result["iotfin"] = append_to(store, args.leaves, args.batch, key)
        result["iotfin"]["proofs"] = proof_latency(store, args.samples, args.warmup, args.seed)
        our_root_1m = store.root(min(args.peer_leaves, store.size())) if args.peer_leaves else None
        if args.large > args.leaves:
            log(f"iotfin: growing to {args.large:,} leaves")
            result["iotfin_large"] = append_to(store, args.large, args.batch, None)
            result["iotfin_large"]["proofs"] = proof_latency(store, args.samples, args.warmup, args.seed + 1)
            result["iotfin_large"]["db_bytes"] = sum(p.stat().st_size for p in workdir.glob("ledger.db*"))
        engine.dispose()

        if args.peer_leaves:
            try:
                import pymerkle
            except ImportError:
                result["pymerkle"] = "not installed"
            else:
                log(f"pymerkle {pymerkle.__version__}: appending {args.peer_leaves:,} leaves")
                peer = run_pymerkle(workdir, args.peer_leaves, args.batch, min(args.samples, 5000), args.warmup, args.seed)
                peer["version"] = pymerkle.__version__
                peer["roots_match"] = our_root_1m is not None and bytes.fromhex(peer.pop("root")) == our_root_1m
                result["pymerkle"] = peer
                ours = result["iotfin"]
                result["ratios"] = {
                    "append_iotfin_over_pymerkle": round(ours["leaves_per_second"] / peer["leaves_per_second"], 2),
                    "inclusion_p99_pymerkle_over_iotfin": round(
                        peer["inclusion_ms_p99"] / ours["proofs"]["inclusion_ms_p99"], 2),
                    "compared_at_sizes": [ours["proofs"]["size"], peer["size"]],
                }
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
