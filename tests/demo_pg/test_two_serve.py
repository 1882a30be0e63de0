"""Two real `iotfin serve` processes on one PostgreSQL and one data folder (telemetry store, keys),
side by side, driven at the same time through their HTTP APIs only: devices post telemetry to both
(each commit is a ledger leaf), lenders place liens on the same assets through both, the operator
submits credit applications (each decision a leaf) and asks both for the same close, repeatedly,
while the rest of the load runs. Then the invariants, in the database and the telemetry store: no
lost or duplicated ledger leaf and the log's root re-derives, one lien per asset, every day closed
once, the books reconciled, every acknowledged reading stored once and each batch in its own file.

What keeps the processes apart is the database and the store's lock files, never process memory:
this test found two real races — the telemetry store numbered batches from process memory (two
processes wrote the same `b<seq>.parquet`, one overwriting the other, and anchored the same
`seq-N` twice), and two close requests to one process both held its lease."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import insert, text

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.codes import make_uscc
from iotfin.identity.tables import Enterprise, Tenant
from iotfin.lending.calendar import today as business_today
from iotfin.lending.service import Offer
from tests.openapi_world import operator_headers
from tests.services import PostgresServer, free_port

ENTERPRISES = 10
LOANS = 2_000
ASSETS = 30
APPLICATIONS = 12  # per process
BATCHES = 15  # telemetry posts per device per process
DAYS = 3
SELLER, BUYER = make_uscc("91", "330100", "MA0000001"), make_uscc("91", "330100", "MA0000002")



class Serve:
    """One `iotfin serve` process on the shared database and folder."""

    def __init__(self, url: str, data: Path, log: Path):
        self.port = free_port()
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {
            "IOTFIN_DATA_DIR": str(data), "IOTFIN_DATABASE_URL": url, "IOTFIN_SIMULATION": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(self.port),
                                      "--mqtt-port", str(free_port())], env=env, stdout=subprocess.DEVNULL,
                                     stderr=log.open("w"), text=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_up(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                httpx.get(f"{self.base}/healthz", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "iotfin serve did not come up:\n" + self.log.read_text()[-3000:]
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def platform(postgres: PostgresServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    url = postgres.new_database("serve2")
    data = tmp_path / "shared"
    ws = Workspace(Settings(data_dir=data, database_url=url, simulation=True))
    ws.initialise()
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"code": "bank-a", "name": "甲银行", "name_en": "Bank A", "kind": "bank"}])
        conn.execute(insert(Enterprise), [
            {"uscc": make_uscc("91", "330100", f"MA{i:07d}"), "name": f"企业{i}", "name_en": f"Enterprise {i}",
             "sector": "manufacturing", "subsector": "machining", "region_code": "330100", "region": "杭州",
             "founded_on": date(2015, 1, 1),
             "registered_capital": Decimal("1000000.00"), "legal_rep_name": "x", "legal_rep_id_number": "x",
             "legal_rep_phone": "x", "tax_grade": "A"} for i in range(10, 10 + ENTERPRISES)])
    # the book starts today: the scheduled close (through yesterday) has nothing to do, the days
    # after today are closed on request only (simulation mode)
    start = business_today()
    ws.lending.book_batch([Offer(1 + i % ENTERPRISES, "iot-term", Decimal(10_000 + i), Decimal("0.08"), 6)
                           for i in range(LOANS)], start)
    devices = [ws.devices.create(enterprise_id=1 + i % ENTERPRISES) for i in range(4)]
    headers = operator_headers(ws)  # signed with the shared folder's token keys: both servers accept it
    before = ws.ledger.store.size()
    servers = [Serve(url, data, tmp_path / f"serve{k}.log") for k in (1, 2)]
    try:
        for s in servers:
            s.wait_up()
        yield {"ws": ws, "servers": servers, "devices": devices, "headers": headers, "before": before,
               "start": start}
    finally:
        for s in servers:
            s.stop()
        ws.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_serve_processes_under_load_keep_the_ledger_liens_and_close_correct(platform: dict[str, Any]) -> None:
    ws, servers, headers = platform["ws"], platform["servers"], platform["headers"]
    start, through = platform["start"], platform["start"] + timedelta(days=DAYS)
    clients = [httpx.Client(base_url=s.base, headers=headers, timeout=120) for s in servers]
    lock = threading.Lock()
    outcome: dict[str, Any] = {"acked": Counter(), "lien_status": [], "decisions": [], "closes": [], "errors": []}

    def job(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            go.wait()
            try:
                fn()
            except Exception as exc:  # reported below: a thread's assertion must fail the test
                with lock:
                    outcome["errors"].append(repr(exc))
        return run

    def telemetry(k: int, device: Any) -> Callable[[], None]:
        def post() -> None:
            base = servers[k].base
            for b in range(BATCHES):
                t0 = 1_767_225_600_000 + ((k * BATCHES + b) * 60) * 60_000
                body = [{"ts": t0 + i * 30_000, "values": {"power_kw": float(i)}} for i in range(120)]
                r = httpx.post(f"{base}/api/v1/{device.token}/telemetry", json=body, timeout=120)
                assert r.status_code == 200, r.text
                with lock:
                    outcome["acked"][device.id] += 120
        return post

    def liens(k: int) -> Callable[[], None]:
        def place() -> None:
            order = range(ASSETS) if k == 0 else reversed(range(ASSETS))  # they meet in the middle
            for i in order:
                r = clients[k].post("/api/v1/financing/liens", json={
                    "asset": {"kind": "receivable", "invoice_code": "3300000000", "invoice_number": f"{i:08d}",
                              "seller_uscc": SELLER, "buyer_uscc": BUYER, "amount": "1000.00"},
                    "tenant": "bank-a", "financing_ref": f"p{k}-{i}", "amount": "1000.00"})
                assert r.status_code in (201, 409), r.text
                with lock:
                    outcome["lien_status"].append((i, r.status_code))
        return place

    def decisions(k: int) -> Callable[[], None]:
        def submit() -> None:
            for j in range(APPLICATIONS):
                r = clients[k].post("/api/v1/credit-applications", json={
                    "enterprise_id": 1 + (j % ENTERPRISES), "product": "iot-working-capital",
                    "amount": "200000.00", "tenor_months": 12, "lender": "bank-a"})
                assert r.status_code == 201, r.text
                with lock:
                    outcome["decisions"].append(r.json()["application_id"])
        return submit

    def close(k: int) -> Callable[[], None]:
        def run() -> None:
            time.sleep(0.5 * k)  # under the load already running
            done = 0
            while done < 2:  # each process asks twice: the second finds every day closed
                r = clients[k].post("/api/v1/lending/close", json={"date": through.isoformat()})
                assert r.status_code in (200, 409), r.text
                if r.status_code == 409:
                    time.sleep(0.05)
                    continue
                done += 1
                with lock:
                    outcome["closes"].append(r.json())
        return run

    jobs = [telemetry(k, d) for k in (0, 1) for d in platform["devices"]]
    jobs += [f(k) for k in (0, 1) for f in (liens, decisions, close, close)]  # two close callers per process
    go = threading.Barrier(len(jobs))  # every thread starts at once
    with ThreadPoolExecutor(len(jobs)) as pool:
        for f in [pool.submit(job(j)) for j in jobs]:
            f.result()
    for c in clients:
        c.close()
    assert not outcome["errors"], outcome["errors"]
    for s in servers:
        assert s.proc.poll() is None, s.log.read_text()[-3000:]

    before = platform["before"]
    with ws.engine.connect() as conn:
        leaves = conn.execute(text("SELECT idx, record_type, record_id FROM ledger_leaves WHERE idx >= :b "
                                   "ORDER BY idx"), {"b": before}).all()
        anchors = conn.execute(text("SELECT count(*) FROM ledger_anchors WHERE leaf_index >= :b"),
                               {"b": before}).scalar_one()
        per_asset = conn.execute(text("SELECT asset_id, count(*) FROM liens WHERE released_at IS NULL "
                                      "GROUP BY asset_id")).all()
        decision_rows = conn.execute(text("SELECT count(*) FROM credit_decisions")).scalar_one()
        runs = conn.execute(text("SELECT business_date, status, loans_closed FROM close_runs ORDER BY 1")).all()
        last = conn.execute(text("SELECT DISTINCT last_closed FROM loans")).scalars().all()

    # the ledger: contiguous, no record twice, one leaf per lien, decision and telemetry commit
    assert [r.idx for r in leaves] == list(range(before, before + len(leaves))) and anchors == len(leaves)
    kinds = Counter(r.record_type for r in leaves)
    assert not [k for k, n in Counter((r.record_type, r.record_id) for r in leaves).items() if n > 1]
    assert kinds["lien"] == ASSETS
    assert kinds["telemetry_batch"] >= 2  # a process may merge devices' posts into one commit (one leaf)
    assert len(set(outcome["decisions"])) == 2 * APPLICATIONS  # every submission its own application
    assert kinds["credit_decision"] == decision_rows >= 2 * APPLICATIONS
    ws.ledger.checkpoint()  # re-derives the root from the stored tiles; raises if they disagree
    audit = ws.ledger.audit()
    assert audit["ok"], audit

    # liens: each asset once, by whichever process came first; the other got 409
    statuses = Counter(status for _, status in outcome["lien_status"])
    assert statuses == {201: ASSETS, 409: ASSETS}
    assert len(per_asset) == ASSETS and all(n == 1 for _, n in per_asset)

    # the close: each day closed once, by one process; the other requests found it done or were refused
    worked = sorted(d["business_date"] for c in outcome["closes"] for d in c["days"] if d["loans_closed"])
    assert worked == [str(start + timedelta(days=k)) for k in range(1, DAYS + 1)]
    # (the scheduled catch-up at start closes through yesterday: a run with no loans, the book starts today)
    assert [(r.business_date, r.status, r.loans_closed) for r in runs if r.business_date > start] == \
        [(start + timedelta(days=k), "done", LOANS) for k in range(1, DAYS + 1)]
    assert all(r.loans_closed == 0 for r in runs if r.business_date <= start)
    assert last == [through]
    assert ws.lending.reconcile()["reconciled"] and ws.lending.trial_balance()["balanced"]

    # the shared telemetry store: every acknowledged reading once, each batch number in one file only
    store = ws.telemetry
    files = sorted(store.root.glob("day=*/b*.parquet"))
    seqs = [int(f.stem[1:]) for f in files]
    assert len(set(seqs)) == kinds["telemetry_batch"]  # one leaf per batch number (a batch may span two days)
    stored = Counter()
    for f in files:
        for device_id in pq.read_table(f, columns=["device_id"])["device_id"].to_pylist():
            stored[device_id] += 1
    assert stored == outcome["acked"]
