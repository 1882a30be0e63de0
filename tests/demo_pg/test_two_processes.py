"""Two platform processes on one PostgreSQL and one data folder, side by side under load: the ledger
loses and duplicates no leaf, each asset carries one lien, and the close runs once per day. What
keeps them apart is the database (the head row's SELECT ... FOR UPDATE, the partial unique index on
active liens, the close's lease row), not process memory: each process has its own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.lending.service import Offer
from tests.services import PostgresServer

ASSETS = 60
LOANS = 3_000
START = date(2026, 3, 2)
THROUGH = START + timedelta(days=3)



@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_share_one_postgres_safely(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.new_database("two")
    data = tmp_path / "shared"
    ws = Workspace(Settings(data_dir=data, database_url=url, simulation=True))
    ws.initialise()
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"code": "bank-a", "name": "甲银行", "name_en": "Bank A", "kind": "bank"}])
        conn.execute(insert(Enterprise), [
            {"uscc": f"91{i:016d}", "name": f"企业{i}", "name_en": f"Enterprise {i}", "sector": "manufacturing",
             "subsector": "machining", "region_code": "330100", "region": "杭州", "founded_on": date(2015, 1, 1),
             "registered_capital": Decimal("1000000.00"), "legal_rep_name": "x", "legal_rep_id_number": "x",
             "legal_rep_phone": "x", "tax_grade": "A"} for i in range(50)])
    ws.lending.book_batch([Offer(1 + i % 50, "iot-term", Decimal(10_000 + i), Decimal("0.08"), 6)
                           for i in range(LOANS)], START)
    before = ws.ledger.store.size()  # the ledger key is created here, once, in the shared folder
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.demo_pg.two_process_worker", url, str(data), name,
                               str(go), str(ASSETS), THROUGH.isoformat()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("p1", "p2")]
    time.sleep(3)  # both connected and waiting
    go.touch()
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))

    # the ledger: every anchored record exactly once, at contiguous indexes, the tree consistent
    with ws.engine.connect() as conn:
        leaves = conn.execute(text("SELECT idx, record_type, record_id FROM ledger_leaves WHERE idx >= :b ORDER BY idx"),
                              {"b": before}).all()
        anchors = conn.execute(text("SELECT leaf_index FROM ledger_anchors WHERE leaf_index >= :b"), {"b": before}).all()
    anchored = outs[0]["anchored"] + outs[1]["anchored"]
    batch_ids = Counter(r.record_id for r in leaves if r.record_type == "telemetry_batch")
    assert sorted(batch_ids) == sorted(anchored) and set(batch_ids.values()) == {1}
    assert [r.idx for r in leaves] == list(range(before, before + len(leaves)))
    assert len(anchors) == len(leaves)
    ws.ledger.checkpoint()  # re-derives the root from the stored tiles; raises if they disagree
    assert ws.ledger.audit()["ok"]

    # liens: each asset financed once, by whichever process came first; the other was refused
    placed = outs[0]["placed"] + outs[1]["placed"]
    assert len(placed) == ASSETS == len(set(placed))
    assert outs[0]["refused"] + outs[1]["refused"] == ASSETS
    with ws.engine.connect() as conn:
        per_asset = conn.execute(text("SELECT asset_id, count(*) FROM liens WHERE released_at IS NULL "
                                      "GROUP BY asset_id")).all()
        lien_leaves = conn.execute(text("SELECT count(*) FROM ledger_anchors WHERE record_type = 'lien' "
                                        "AND leaf_index >= :b"), {"b": before}).scalar_one()
    assert len(per_asset) == ASSETS and all(n == 1 for _, n in per_asset)
    assert lien_leaves == ASSETS

    # the close: each day closed once, by one of them; the books balanced and reconciled
    # each day's loans closed by one process only (a run finding the day closed has 0 loans to do)
    worked = sorted(day for o in outs for day, n in o["close_days"] if n)
    assert worked == [str(START + timedelta(days=k)) for k in range(1, (THROUGH - START).days + 1)]
    assert sum(o["loans_closed"] for o in outs) == LOANS * (THROUGH - START).days
    with ws.engine.connect() as conn:
        runs = conn.execute(text("SELECT business_date, status, loans_closed FROM close_runs ORDER BY 1")).all()
        last = conn.execute(text("SELECT DISTINCT last_closed FROM loans")).scalars().all()
    assert [(r.business_date, r.status, r.loans_closed) for r in runs] == \
        [(START + timedelta(days=k), "done", LOANS) for k in range(1, (THROUGH - START).days + 1)]
    assert last == [THROUGH]
    assert ws.lending.reconcile()["reconciled"] and ws.lending.trial_balance()["balanced"]
    ws.close()
