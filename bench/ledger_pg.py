"""Benchmark: ledger leaf appends on SQLite and on PostgreSQL side by side, in one run.

    .venv/bin/python bench/ledger_pg.py                       # 500k leaves per store, 10k per batch
    .venv/bin/python bench/ledger_pg.py --leaves 200000 --pg-url postgresql+psycopg://...

Prints one JSON object. Three logs grow in turn, one 10k-entry batch each round, every batch its
own durable transaction through LedgerStore.append_batch (leaf hashes, Merkle tiles, head):
- sqlite: WAL, synchronous=FULL (the embedded default);
- postgresql_copy: the leaves by one pre-built binary COPY stream (the PostgreSQL path);
- postgresql_copy_write_row: the leaves by binary COPY through psycopg's write_row, one row at a
  time, the Merkle append before it (the COPY path before issue 21's second round; patched in here);
- postgresql_executemany: the same store with the leaves sent by executemany, the path before COPY
  (patched in here only, for the ratio).
Without --pg-url a PostgreSQL server is started from the installed binaries (fsync=on) and removed.
Entry generation is excluded from the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.services: the suite's server starter

from iotfin.db import migrate  # noqa: E402
from iotfin.db.bulk import copy_rows  # noqa: E402
from iotfin.db.engine import make_engine  # noqa: E402
from iotfin.ledger import store as ledger_store  # noqa: E402
from iotfin.ledger.entry import Entry  # noqa: E402
from iotfin.ledger.store import LedgerStore  # noqa: E402


def batch(start: int, count: int) -> list[Entry]:
    # ~60-byte payloads, the size of a telemetry batch summary (as bench/ledger_append.py)
    return [Entry("telemetry_batch", f"b{n}", b'{"device":"dev-%07d","seq":%d,"kwh":%d.%02d}' % (n % 9999991, n, n % 997, n % 100))
            for n in range(start, start + count)]


def executemany_leaves(conn, first_index, entries, _tails, meanwhile):  # noqa: ANN001 - the pre-COPY path
    result = meanwhile()
    rows = [(k, *e) for k, e in zip(range(first_index, first_index + len(entries)), entries, strict=True)]
    conn.exec_driver_sql("INSERT INTO ledger_leaves (idx, record_type, record_id, payload) VALUES (%s, %s, %s, %s)", rows)
    return result


def write_row_leaves(conn, first_index, entries, _tails, meanwhile):  # noqa: ANN001 - the COPY path before (issue 21, round 2)
    result = meanwhile()
    copy_rows(conn, "ledger_leaves", ("idx", "record_type", "record_id", "payload"), ("bigint", "varchar", "varchar", "bytea"),
              zip(range(first_index, first_index + len(entries)), *zip(*entries, strict=True), strict=True))
    return result


def new_pg_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--pg-url", default=None, help="a PostgreSQL server URL (a database is created on it)")
    args = parser.parse_args()
    server = None
    if args.pg_url is None:
        from tests.services import start_postgres

        server = start_postgres()
        args.pg_url = server.url
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ledger-pg-") as tmp:
            urls = {"sqlite": f"sqlite:///{Path(tmp) / 'ledger.db'}",
                    "postgresql_copy": new_pg_database(args.pg_url),
                    "postgresql_copy_write_row": new_pg_database(args.pg_url),
                    "postgresql_executemany": new_pg_database(args.pg_url)}
            stores = {}
            for name, url in urls.items():
                engine = make_engine(url)
                migrate.upgrade(engine)
                stores[name] = LedgerStore(engine)
            samples: dict[str, list[float]] = {name: [] for name in stores}
            size = 0
            while size < args.leaves:
                entries = batch(size, min(args.batch, args.leaves - size))
                for name, store in stores.items():  # interleaved: each store sees the same machine load
                    if name in PATCHES:
                        ledger_store.copy_leaves = PATCHES[name]
                    try:
                        started = time.perf_counter()
                        store.append_batch(entries)
                        samples[name].append(time.perf_counter() - started)
                    finally:
                        ledger_store.copy_leaves = copy_leaves_original
                size += len(entries)
                print(f"  {size:,} leaves", file=sys.stderr, flush=True)
            roots = {name: store.root().hex() for name, store in stores.items()}
            rates = {name: round(args.batch / statistics.median(s)) for name, s in samples.items()}
            out = {
                "bench": "ledger_pg",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                "workload": {"leaves": args.leaves, "batch": args.batch, "payload_bytes": 60,
                             "durability": "sqlite WAL synchronous=FULL; postgresql fsync=on, synchronous_commit=on"},
                "leaves_per_second_median_batch": rates,
                "leaves_per_second_overall": {name: round(args.leaves / sum(s)) for name, s in samples.items()},
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "batch_ms_p50": {name: round(statistics.median(s) * 1000, 2) for name, s in samples.items()},
                "same_root": len(set(roots.values())) == 1,
                "ratio_postgresql_copy_over_executemany": round(rates["postgresql_copy"] / rates["postgresql_executemany"], 2),
                "ratio_postgresql_copy_over_sqlite": round(rates["postgresql_copy"] / rates["sqlite"], 2),
                "ratio_postgresql_copy_over_copy_write_row": round(rates["postgresql_copy"] / rates["postgresql_copy_write_row"], 2),
            }
            for store in stores.values():
                store.engine.dispose()
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(out))


copy_leaves_original = ledger_store.copy_leaves
PATCHES = {"postgresql_executemany": executemany_leaves, "postgresql_copy_write_row": write_row_leaves}

if __name__ == "__main__":
    main()
