"""Benchmark: repayment schedules for a loan book, vectorised (numpy int64 fen) against the Decimal reference.

    .venv/bin/python bench/loan_schedule.py                    # 1,000,000 loans, 3 repeats
    .venv/bin/python bench/loan_schedule.py --loans 200000 --reference 2000

Prints one JSON object: loans/s of `iotfin.lending.vector.schedule_batch` over a mixed book (terms
3/6/12/24/36 months, all four methods, all four day counts, random principals, rates and start dates;
grouped by term, method and day count as a loan book is), the median of --repeats runs; the Decimal
reference `iotfin.lending.model.schedule` on --reference loans of the same mix; the ratio; and a
check that the first --reference loans' schedules are equal to the fen both ways.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from iotfin.lending import model as m
from iotfin.lending import vector as v

TERMS = (3, 6, 12, 24, 36)


def book(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"principal": rng.integers(1_000_00, 5_000_000_00, n), "rate": rng.integers(20_000, 240_000, n),
            "start": v.day(date(2026, 1, 1)) + rng.integers(0, 365, n), "term": rng.choice(TERMS, n),
            "method": rng.integers(0, 4, n), "day_count": rng.integers(0, 4, n)}


def vectorised(b: dict[str, np.ndarray]) -> int:
    methods, counts = list(m.Method), list(m.DayCount)
    key = b["term"] * 16 + b["method"] * 4 + b["day_count"]
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    periods = 0
    for group in np.split(order, bounds):
        k = int(key[group[0]])
        out = v.schedule_batch(b["principal"][group], b["rate"][group], b["start"][group], k // 16,
                               methods[(k // 4) % 4], counts[k % 4])
        periods += out.due.size
    return periods


def reference(b: dict[str, np.ndarray], n: int) -> list[tuple[m.Instalment, ...]]:
    methods, counts = list(m.Method), list(m.DayCount)
    out = []
    for i in range(n):
        start = date(1970, 1, 1) + timedelta(days=int(b["start"][i]))
        out.append(m.schedule(m.Terms(Decimal(int(b["principal"][i])) / 100, Decimal(int(b["rate"][i])) / 10**6,
                                      int(b["term"][i]), start, methods[b["method"][i]], counts[b["day_count"][i]])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loans", type=int, default=1_000_000)
    ap.add_argument("--reference", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    b = book(args.loans)
    runs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        periods = vectorised(b)
        runs.append(time.perf_counter() - t)
        print(f"vectorised: {args.loans / runs[-1]:,.0f} loans/s", file=sys.stderr)
    t = time.perf_counter()
    ref = reference(b, args.reference)
    ref_s = time.perf_counter() - t
    small = {k: a[:args.reference] for k, a in b.items()}
    methods, counts = list(m.Method), list(m.DayCount)
    mismatches = 0
    for i, sched in enumerate(ref):
        got = v.schedule_batch(small["principal"][i:i + 1], small["rate"][i:i + 1], small["start"][i:i + 1],
                               int(small["term"][i]), methods[small["method"][i]], counts[small["day_count"][i]])
        mismatches += [(int(x.principal * 100), int(x.interest * 100)) for x in sched] != list(
            zip(got.principal[0].tolist(), got.interest[0].tolist(), strict=True))
    median = statistics.median(runs)
    result = {
        "benchmark": "loan_schedule",
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine(),
                    "python": f"{platform.python_implementation()} {platform.python_version()}",
                    "numpy": np.__version__},
        "workload": {"loans": args.loans, "instalments": periods, "terms_months": TERMS,
                     "methods": [x.value for x in m.Method], "day_counts": [x.value for x in m.DayCount]},
        "vectorised": {"runs_s": [round(x, 3) for x in runs], "median_s": round(median, 3),
                       "loans_per_s": round(args.loans / median)},
        "reference_decimal": {"loans": args.reference, "seconds": round(ref_s, 3),
                              "loans_per_s": round(args.reference / ref_s)},
        "ratio_vectorised_over_reference": round((args.loans / median) / (args.reference / ref_s), 1),
        "checked_equal_to_the_fen": {"loans": args.reference, "mismatches": mismatches},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
