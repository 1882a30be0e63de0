"""Benchmark: the daily close (close of business) over a loan book on the embedded default (SQLite file).

    .venv/bin/python bench/loan_close.py                       # 1,000,000 active loans, 3 business days
    .venv/bin/python bench/loan_close.py --loans 100000 --days 2
    .venv/bin/python bench/loan_close.py --loans 1000000 --days 0 --database-url URL   # book only
    .venv/bin/python bench/loan_close.py --days 3 --booked --database-url URL2          # close a copy of it

Set-up (timed apart): a fresh workspace; --loans term loans booked through `LendingService.book_batch`
(vectorised schedules, bulk inserts: terms 3/6/12 months on the four shelf products, principals
1,000–5,000,000 yuan, start dates spread over the 30 days before the first closed day so that about
1/30 of the book falls due on each closed day); then, to skip a month of closes, every loan's
`last_closed` is set to the day before the first closed day (its first close then accrues the
days since its start — the same work per loan as any day). Measured: `LendingService.close_day`
for --days consecutive business days, each over the whole book in 100,000-loan chunks (one
transaction each, WAL, synchronous=FULL): accrual, due processing with next-instalment fetch,
bills, overdue/dpd, penalty, subsidy claw-back, five-tier classification, the GL entries, and the
run's progress. Then a re-run of the last day (idempotent: nothing to do) and the reconciliation of
the sub-ledger to the GL. Prints one JSON object; the median day is the figure to quote (wall
clock; the process's CPU seconds and the load average are printed beside it, since the machine is
shared; on a local PostgreSQL, the server's CPU seconds per day too, from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.tables import Enterprise
from iotfin.lending.service import Offer

FIRST_DAY = date(2026, 3, 2)
PRODUCTS = ("iot-term", "receivable-bullet", "equipment-principal")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def enterprises(ws: Workspace, n: int) -> None:
    with ws.engine.begin() as conn:
        conn.execute(insert(Enterprise), [
            {"uscc": f"91{i:016d}", "name": f"企业{i}", "name_en": f"Enterprise {i}", "sector": "manufacturing",
             "subsector": "machining", "region_code": "330100", "region": "杭州", "founded_on": date(2015, 1, 1),
             "registered_capital": Decimal("1000000.00"), "legal_rep_name": "x", "legal_rep_id_number": "x",
             "legal_rep_phone": "x", "tax_grade": "A"} for i in range(n)])


def book(ws: Workspace, loans: int) -> tuple[int, float]:
    """The set-up: `loans` term loans booked through book_batch, then every loan's last_closed set to
    the day before the first closed day. Returns (loans booked, seconds)."""
    rng = np.random.default_rng(11)
    n_ent = 10_000
    enterprises(ws, n_ent)
    t = time.perf_counter()
    per_day = -(-loans // 30)
    booked = 0
    for d in range(30):
        count = min(per_day, loans - booked)
        if count <= 0:
            break
        start = FIRST_DAY - timedelta(days=30 - d)
        principal = rng.integers(1_000, 5_000_000, count)
        rates = rng.integers(30_000, 180_000, count)
        terms = rng.choice((3, 6, 12), count)
        prods = rng.integers(0, len(PRODUCTS), count)
        ents = rng.integers(1, n_ent + 1, count)
        subsidy = np.where(rng.random(count) < 0.2, rates // 4, 0)
        offers = [Offer(int(e), PRODUCTS[p], Decimal(int(a)), Decimal(int(r)) / 10**6, int(tm), Decimal(int(s)) / 10**6)
                  for e, p, a, r, tm, s in zip(ents, prods, principal, rates, terms, subsidy, strict=True)]
        ws.lending.book_batch(offers, start)
        booked += count
        log(f"booked {booked:,} loans ({time.perf_counter() - t:.0f} s)")
    setup_s = time.perf_counter() - t
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE loans SET last_closed = :d"), {"d": (FIRST_DAY - timedelta(days=1)).isoformat()})
    return booked, setup_s


def server_cpu_s(ws: Workspace) -> float | None:
    """CPU seconds used so far by a local PostgreSQL server: the postmaster (with its reaped children)
    and its live children (backends, WAL writer, checkpointer, autovacuum). None if not readable here."""
    if ws.engine.dialect.name != "postgresql":
        return None
    try:
        with ws.engine.connect() as conn:
            data_dir = conn.exec_driver_sql("SHOW data_directory").scalar()
        master = int(Path(data_dir, "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == master:
                total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
            elif ppid == master:
                total += int(fields[11]) + int(fields[12])
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loans", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite in --dir)")
    ap.add_argument("--booked", action="store_true",
                    help="--database-url already holds a booked book (from a --days 0 run, or a copy of one): close it")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="iotfin-bench-close-"))
    shutil.rmtree(work, ignore_errors=True)
    ws = Workspace(Settings(data_dir=work, database_url=args.database_url or f"sqlite:///{work / 'iotfin.db'}"))
    ws.initialise()
    if args.booked:
        with ws.engine.connect() as conn:
            booked = conn.execute(text("SELECT count(*) FROM loans WHERE status = 'active'")).scalar()
        setup_s = None
    else:
        booked, setup_s = book(ws, args.loans)
    if args.days == 0:
        print(json.dumps({"benchmark": "loan_close", "booked": booked,
                          "setup_s": None if setup_s is None else round(setup_s, 1),
                          "load_average": [round(x, 2) for x in os.getloadavg()]}))
        ws.close()  # the book stays (in --dir or the database) for --booked runs
        return
    load_start = os.getloadavg()
    days, cpu, server = [], [], []
    for k in range(args.days):
        day = FIRST_DAY + timedelta(days=k)
        t, c, s0 = time.perf_counter(), time.process_time(), server_cpu_s(ws)
        run = ws.lending.close_day(day, chunk=args.chunk)
        days.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        s1 = server_cpu_s(ws)
        server.append(None if s0 is None or s1 is None else round(s1 - s0, 2))
        log(f"closed {day}: {run['loans_closed']:,} loans in {days[-1]:.1f} s ({cpu[-1]:.1f} s CPU here, "
            f"{server[-1]} s PostgreSQL; load {os.getloadavg()[0]:.1f})")
    t = time.perf_counter()
    rerun = ws.lending.close_day(FIRST_DAY + timedelta(days=args.days - 1), chunk=args.chunk)
    rerun_s = time.perf_counter() - t
    t = time.perf_counter()
    recon = ws.lending.reconcile()
    tb = ws.lending.trial_balance()
    recon_s = time.perf_counter() - t
    with ws.engine.connect() as conn:
        billed = conn.execute(text("SELECT count(*) FROM loan_bills WHERE principal > 0 OR interest > 0")).scalar()
        overdue = conn.execute(text("SELECT count(*) FROM loans WHERE dpd > 0")).scalar()
    median = statistics.median(days)
    print(json.dumps({
        "benchmark": "loan_close",
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine(),
                    "python": f"{platform.python_implementation()} {platform.python_version()}",
                    "database": ws.engine.dialect.name + (" (WAL, synchronous=FULL)" if ws.engine.dialect.name == "sqlite"
                                                          else " (psycopg 3 binary COPY, fsync=on)")},
        "workload": {"active_loans": booked, "business_days": args.days, "chunk": args.chunk,
                     "bills_created": billed, "loans_past_due_at_end": overdue},
        "setup_s": None if setup_s is None else round(setup_s, 1),
        "close_day_s": [round(x, 2) for x in days],
        "close_day_median_s": round(median, 2),
        "close_day_cpu_s": [round(x, 2) for x in cpu],
        "close_day_postgresql_cpu_s": server,
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "loans_per_s": round(booked / median),
        "rerun_same_day_s": round(rerun_s, 2), "rerun_loans_closed": rerun["loans_closed"],
        "reconciled": recon["reconciled"], "trial_balance_balanced": tb["balanced"],
        "reconcile_and_trial_balance_s": round(recon_s, 2),
        "target": "<= 60 s for 1,000,000 loans (SQLite); <= 30 s on PostgreSQL (issue 21)",
    }))
    ws.close()
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
