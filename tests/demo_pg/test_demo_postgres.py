"""`iotfin demo` on a real PostgreSQL beside the same demo on SQLite, same seed: the same invariants
hold on both, the system of record holds the same counts, and PostgreSQL's sequences are past every
bulk-loaded id (a later insert does not collide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.services import PostgresServer, free_port

ENTERPRISES, DAYS, SEED = "20", "30", "11"
# Record types whose anchors depend on timing, not on the data: a telemetry batch anchor per group
# commit (how readings group into commits depends on arrival timing, on SQLite as on PostgreSQL).
TIMING_DEPENDENT = {"telemetry_batch"}


def _demo(workspace: Path, database_url: str | None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "iotfin", "demo", "--headless", "--json", "--enterprises", ENTERPRISES,
            "--days", DAYS, "--seed", SEED, "--workspace", str(workspace)]
    if database_url is not None:
        args += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if k != "IOTFIN_DATABASE_URL"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)



@pytest.fixture(scope="module")
def runs(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo_pg")
    pg_url = postgres.new_database("demo")
    procs = {"postgresql": _demo(root / "pg", pg_url), "sqlite": _demo(root / "sqlite", None)}
    out: dict[str, Any] = {"urls": {"postgresql": pg_url, "sqlite": f"sqlite:///{root / 'sqlite' / 'iotfin.db'}"}}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{name}: {stderr[-3000:]}"
        out[name] = json.loads(stdout)
    yield out


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_demo_invariants_hold_on_each_backend(runs: dict[str, Any], backend: str) -> None:
    s = runs[backend]
    assert s["database_backend"] == backend
    lending = s["lending"]  # GL balanced and reconciled against the loan subledger
    assert lending["loans_booked"] > 0 and lending["business_days_closed"] > 0
    assert lending["trial_balance"]["balanced"] and lending["reconciled"]
    assert s["ledger"]["audit"]["ok"] and s["ledger"]["audit"]["records_checked"] == s["ledger"]["audit"]["leaves"]
    assert s["ledger"]["invoice_evidence"]["record_type"] == "trade_document"
    ingest = s["ingest"]  # every acknowledged reading is stored
    assert ingest["offered"] > 0 and ingest["accepted"] == ingest["offered"] and ingest["rejected"] == 0
    assert s["telemetry"]["data_points"] == ingest["accepted"] + s["ingest_workers"]["points_stored"]
    for name, t in s["telemetry_transports"].items():
        if isinstance(t, dict):
            assert t["acknowledged"] == t["sent"] == t["stored"], (name, t)
    # the rows are where the summary says: in this backend's database
    url = runs["urls"][backend]
    assert _query(url, "SELECT count(*) FROM enterprises")[0][0] == int(ENTERPRISES)
    assert _query(url, "SELECT count(*) FROM ledger_leaves")[0][0] >= s["ledger"]["audit"]["leaves"]


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_demo_counts_equal_the_sqlite_run(runs: dict[str, Any]) -> None:
    pg, lite = runs["postgresql"], runs["sqlite"]
    for key in ("economy", "devices", "trade_documents", "ingest", "loaded_rows", "consent_features", "lending",
                "risk", "decisions", "sample_query", "ground_truth", "quarantine"):
        assert pg[key] == lite[key], key
    for key in ("requests", "placed", "refused", "released_on_repayment"):
        assert pg["financing_registry"][key] == lite["financing_registry"][key], key
    assert pg["telemetry"]["data_points"] == lite["telemetry"]["data_points"]
    assert {k: v for k, v in pg["logins"].items() if k != "password"} == \
        {k: v for k, v in lite["logins"].items() if k != "password"}
    assert pg["open_api"]["complaint"]["status"] == lite["open_api"]["complaint"]["status"] == "resolved"
    # every table of the system of record holds as many rows on both (the ledger apart from the
    # timing-dependent telemetry batch anchors, compared by record type below)
    tables = [t for (t,) in _query(runs["urls"]["sqlite"], "SELECT name FROM sqlite_master WHERE type = 'table' "
                                   "AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version'")]
    skip = {"ledger_leaves", "ledger_anchors", "ledger_tiles", "ledger_checkpoints", "ledger_head",
            "device_events", "device_state", "monitor_alerts", "monitor_signal_state", "webhook_deliveries",
            "access_log", "console_sessions", "idempotency_keys", "telemetry_batches"}
    differ = {}
    for table in tables:
        if table in skip or table.startswith("monitor_"):  # alerts: timing-dependent (device dark)
            continue
        n_pg = _query(runs["urls"]["postgresql"], f'SELECT count(*) FROM "{table}"')[0][0]
        n_lite = _query(runs["urls"]["sqlite"], f'SELECT count(*) FROM "{table}"')[0][0]
        if n_pg != n_lite:
            differ[table] = (n_pg, n_lite)
    assert not differ
    anchors = "SELECT record_type, count(*) FROM ledger_anchors GROUP BY record_type ORDER BY record_type"
    by_type = [{t: n for t, n in _query(runs["urls"][b], anchors) if t not in TIMING_DEPENDENT}
               for b in ("postgresql", "sqlite")]
    assert by_type[0] == by_type[1] and by_type[0]["trade_document"] == pg["loaded_rows"]["trade_documents"]


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_sequences_are_past_every_loaded_id(runs: dict[str, Any]) -> None:
    url = runs["urls"]["postgresql"]
    columns = _query(url, "SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) "
                     "FROM information_schema.columns WHERE table_schema = current_schema() "
                     "AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')")
    checked = behind = 0
    for table, column, sequence in columns:
        if sequence is None:
            continue
        top = _query(url, f'SELECT max("{column}") FROM "{table}"')[0][0]
        if top is None:
            continue
        last, called = _query(url, f"SELECT last_value, is_called FROM {sequence}")[0]
        next_value = last + 1 if called else last
        checked += 1
        behind += next_value <= top
    assert checked >= 10 and behind == 0
    # and a plain insert after the bulk load draws a fresh id (rolled back: the other tests read this database)
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin() as tx:
            new_id = conn.execute(text("INSERT INTO tenants (code, name, name_en, kind, created_at) VALUES "
                                       "('late', '后来的机构', 'Late bank', 'bank', now()) RETURNING id")).scalar_one()
            assert new_id > conn.execute(text("SELECT max(id) FROM tenants WHERE code <> 'late'")).scalar_one()
            tx.rollback()
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_runs_on_the_database_named_by_iotfin_database_url(runs: dict[str, Any]) -> None:
    """`iotfin serve` with IOTFIN_DATABASE_URL serves what the PostgreSQL demo left there."""
    port, mqtt = free_port(), free_port()
    env = dict(os.environ, IOTFIN_DATABASE_URL=runs["urls"]["postgresql"], IOTFIN_DATA_DIR=runs["postgresql"]["workspace"])
    proc = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(port), "--mqtt-port", str(mqtt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.5)
        summary = httpx.get(f"http://127.0.0.1:{port}/api/v1/summary", timeout=30).json()
        assert summary["economy"] == runs["postgresql"]["economy"]
        assert summary["economy"]["enterprises"] == int(ENTERPRISES)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.postgres
def test_demo_refuses_a_postgres_database_it_did_not_create(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.new_database("demo")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE precious (v text)"))
        conn.execute(text("INSERT INTO precious VALUES ('keep me')"))
    proc = _demo(tmp_path / "ws", url)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 78, stderr
    assert "not created by `iotfin demo`" in stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT v FROM precious")).scalar_one() == "keep me"
    engine.dispose()
