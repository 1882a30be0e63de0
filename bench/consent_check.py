"""Benchmark: the overhead a read of enterprise data pays for its consent check.

    .venv/bin/python bench/consent_check.py --grants 3000 --checks 5000

A workspace on SQLite with `--grants` grants spread over 1,000 enterprises and four banks (some
withdrawn, some overdue). Measures per check: (a) the pure decision `model.check` over an
enterprise's grants, and (b) the full `ConsentService.check` (indexed grant query + decision +
access-log append; the batched writer flushes in the background, included). Prints one JSON object
with medians and p99 in microseconds, and the access-log rows written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, insert, select

from iotfin.app.workspace import Workspace
from iotfin.consent.model import SCOPES, GrantRequest, check
from iotfin.consent.store import access_t, grants_for
from iotfin.core.settings import Settings
from iotfin.identity.tables import Enterprise

BANKS = ("bank-a", "bank-b", "bank-c", "bank-d")
ENTERPRISES = 1000


def _quantiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"median_us": round(statistics.median(samples) * 1e6, 1),
            "p99_us": round(samples[int(len(samples) * 0.99) - 1] * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grants", type=int, default=3000)
    parser.add_argument("--checks", type=int, default=5000)
    args = parser.parse_args()
    rnd = random.Random(7)
    root = Path(tempfile.mkdtemp(prefix="iotfin-consent-bench-"))
    try:
        ws = Workspace(Settings(data_dir=root, database_url=f"sqlite:///{root / 'iotfin.db'}"))
        ws.initialise()
        with ws.engine.begin() as conn:
            conn.execute(insert(Enterprise), [
                {"id": i, "uscc": f"91350100{i:010d}", "name": f"企业{i}", "name_en": f"Firm {i}",
                 "sector": "manufacturing", "subsector": "x", "region_code": "350100", "region": "福州",
                 "founded_on": date(2015, 1, 1), "registered_capital": Decimal("1000000.00"), "legal_rep_name": "x",
                 "legal_rep_id_number": "x", "legal_rep_phone": "x", "tax_grade": "B", "litigation_count": 0,
                 "key_person_changes": 0} for i in range(1, ENTERPRISES + 1)])
        now = datetime.now(UTC)
        scopes = list(SCOPES)
        requests = [GrantRequest(
            enterprise_id=rnd.randint(1, ENTERPRISES), recipient=rnd.choice(BANKS), purpose="credit_assessment",
            scopes=tuple(rnd.sample(scopes, 4)), window_start=date(2026, 1, 1), window_end=date(2027, 12, 31),
            expires_at=now + timedelta(days=300)) for _ in range(args.grants)]
        grants = ws.consent.grant_many(requests, now - timedelta(days=rnd.randint(0, 10)))
        for g in grants[: len(grants) // 20]:
            ws.consent.withdraw(g.id)
        reads = [(rnd.choice(BANKS), rnd.randint(1, ENTERPRISES), rnd.choice(scopes)) for _ in range(args.checks)]
        data_range = (date(2026, 6, 1), date(2026, 11, 30))

        with ws.engine.connect() as conn:
            loaded = {(b, e): grants_for(conn, e, b) for b, e, _ in reads}
        pure = []
        for bank, eid, scope in reads:
            started = time.perf_counter()
            check(loaded[(bank, eid)], bank, eid, scope, "credit_assessment", data_range, now)
            pure.append(time.perf_counter() - started)

        full, allowed = [], 0
        for bank, eid, scope in reads:
            started = time.perf_counter()
            allowed += ws.consent.check(bank, eid, scope, "credit_assessment", data_range).allowed
            full.append(time.perf_counter() - started)
        started = time.perf_counter()
        ws.consent.log.flush()
        final_flush = time.perf_counter() - started
        with ws.engine.connect() as conn:
            logged = conn.execute(select(func.count()).select_from(access_t)).scalar_one()
        print(json.dumps({
            "benchmark": "consent_check", "backend": "sqlite", "grants": args.grants, "enterprises": ENTERPRISES,
            "checks": args.checks, "allowed": allowed,
            "pure_check": _quantiles(pure), "service_check_with_log": _quantiles(full),
            "access_log_rows": logged, "final_flush_ms": round(final_flush * 1000, 2),
            "target": "≤ 1 ms per request (issue 9)",
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} "
                       f"{platform.python_version()}, shared with other work",
        }))
        ws.close()
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
