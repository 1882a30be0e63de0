"""`iotfin loan ...` as a user runs it, the HTTP API, and a close killed mid-run (SIGKILL) that resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.lending import model as m
from iotfin.lending import store
from iotfin.lending.service import Offer
from iotfin.lending.tables import CloseRun, Loan
from tests.lending.conftest import make_enterprises
from tests.openapi_world import operator_headers


def _iotfin(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=timeout)


def test_schedule_and_apr_commands() -> None:
    done = _iotfin("loan", "schedule", "--principal", "100", "--annual-rate", "0.094822", "--term", "6",
                   "--start", "2024-01-01", "--method", "equal-instalment", "--day-count", "30/360", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [r["interest"] for r in data["instalments"]] == ["0.79", "0.66", "0.53", "0.40", "0.27", "0.13"]
    assert "last instalment absorbs" in data["rounding"]
    done = _iotfin("loan", "apr", "--principal", "100000", "--annual-rate", "0.08", "--term", "12",
                   "--product", "iot-term", "--subsidy-rate", "0.03", "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["apr_gross_percent"] == "9.02%" and facts["apr_net_percent"] == "5.98%"
    assert "年化利率" in facts["text_zh"] and "Annualised rate" in facts["text_en"]


def test_bad_input_is_one_line_and_exit_65() -> None:
    for args in (["--annual-rate", "0.1234567"], ["--method", "balloon"]):
        base = {"--principal": "100", "--annual-rate": "0.1", "--term": "6", "--start": "2024-01-01"}
        base[args[0]] = args[1]
        done = _iotfin("loan", "schedule", *[x for kv in base.items() for x in kv])
        assert done.returncode == 65, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("iotfin: error:")


def _workspace(path: Path) -> Workspace:
    ws = Workspace(Settings(data_dir=path, database_url=f"sqlite:///{path / 'iotfin.db'}"))
    ws.initialise()
    return ws


def test_close_killed_mid_run_resumes_cleanly(tmp_path: Path) -> None:
    """A real `iotfin loan close-day` process killed with SIGKILL between chunks; running it again
    finishes the day, and every loan equals what the reference model computes."""
    ws = _workspace(tmp_path / "ws")
    ent = make_enterprises(ws.engine, 1)[0]
    start = date(2026, 1, 1)
    offers = [Offer(ent, "iot-term", Decimal(2000 + k), Decimal("0.09"), 1 + k % 12) for k in range(1200)]
    ws.lending.book_batch(offers, start)
    day = start + timedelta(days=1)
    with ws.engine.connect() as conn:
        expected = {lid: m.close_day(store.load_state(conn, lid)[1], day).state
                    for lid in range(1, 1201, 37)}
    proc = subprocess.Popen([sys.executable, "-m", "iotfin", "loan", "close-day", "--date", day.isoformat(),
                             "--chunk", "10", "--data-dir", str(tmp_path / "ws")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    chunks = 0
    while chunks < 3:
        assert proc.poll() is None, "the close finished before it could be killed"
        assert time.monotonic() < deadline
        with ws.engine.connect() as conn:
            chunks = conn.execute(select(CloseRun.chunks).where(CloseRun.business_date == day)).scalar() or 0
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with ws.engine.connect() as conn:
        done_before = conn.execute(select(func.count()).where(Loan.last_closed == day)).scalar()
        assert conn.execute(select(CloseRun.status).where(CloseRun.business_date == day)).scalar() == "running"
    assert 0 < done_before < 1200
    again = _iotfin("loan", "close-day", "--date", day.isoformat(), "--data-dir", str(tmp_path / "ws"), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["loans_closed"] == 1200 - done_before
    with ws.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(Loan.last_closed == day)).scalar() == 1200
        for lid, state in expected.items():
            assert store.load_state(conn, lid)[1] == state
    assert ws.lending.reconcile()["reconciled"] and ws.lending.trial_balance()["balanced"]
    tb = _iotfin("loan", "trial-balance", "--data-dir", str(tmp_path / "ws"), "--json")
    assert tb.returncode == 0 and json.loads(tb.stdout)["reconciliation"]["reconciled"] is True


def test_http_api(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    ent = make_enterprises(ws.engine, 1)[0]
    client = TestClient(create_app(ws), headers=operator_headers(ws))
    r = client.post("/api/v1/lending/key-facts", json={"principal": "100", "annual_rate": "0.12", "term": 6,
                                                       "start": "2024-01-01"})
    assert r.status_code == 200 and r.json()["total_interest"] == "3.53"
    r = client.post("/api/v1/lending/schedules", json={"principal": 100, "annual_rate": "0.12", "term": 6,
                                                       "start": "2024-01-01"})
    assert r.status_code == 422  # a JSON number for money is refused
    line = ws.lending.open_line(ent, Decimal("50000"), Decimal("0.06"), date(2027, 1, 1))
    r = client.post("/api/v1/lending/loans", json={"enterprise_id": ent, "product": "iot-line", "principal": "20000.00",
                                                   "annual_rate": "0.06", "term": 3, "start": "2026-01-01",
                                                   "credit_line_id": line, "reason": "drawdown by the officer"})
    assert r.status_code == 201, r.text
    loan_id = r.json()["loan_id"]
    action = {"date": "2026-01-05", "reason": "pledged stock below minimum for 3 days"}
    assert client.post(f"/api/v1/lending/credit-lines/{line}/freeze", json=action).json()["status"] == "frozen"
    r = client.post("/api/v1/lending/loans", json={"enterprise_id": ent, "product": "iot-line", "principal": "1000.00",
                                                   "annual_rate": "0.06", "term": 3, "start": "2026-01-05",
                                                   "credit_line_id": line, "reason": "drawdown by the officer"})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert client.post("/api/v1/lending/close", json={"date": "2026-01-10"}).status_code == 200
    r = client.post(f"/api/v1/lending/loans/{loan_id}/margin-calls",
                    json=action | {"date": "2026-01-10", "amount": "5000.00", "deadline": "2026-01-20"})
    assert r.status_code == 200 and "追加担保" in r.json()["notice_zh"]
    assert client.post(f"/api/v1/lending/loans/{loan_id}/acceleration", json=action | {"date": "2026-01-10"}).status_code == 200
    shown = client.get(f"/api/v1/lending/loans/{loan_id}").json()
    assert shown["principal_not_due"] == "0.00" and shown["due"]["principal"] == "20000.00"
    r = client.post(f"/api/v1/lending/loans/{loan_id}/write-off", json=action | {"date": "2026-01-10"})
    assert r.status_code in (400, 422) and "not loss" in r.text  # only loss loans are written off
    r = client.post(f"/api/v1/lending/loans/{loan_id}/recoveries", json={"date": "2026-01-10", "amount": "1.00"})
    assert r.status_code == 409 and "not written off" in r.text
    tb = client.get("/api/v1/lending/trial-balance").json()
    assert tb["balanced"] and tb["reconciliation"]["reconciled"]
    assert client.get("/api/v1/lending/loans/999").status_code == 404
