"""The close as an operation: a date after today is refused (422, nothing written) except in
simulation mode; `iotfin serve`'s schedule closes through yesterday once close_at has passed and
catches up missed days; one close at a time across processes (the lease in the database); the status
over the API and the CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from iotfin.app.close_schedule import CloseSchedule
from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict, ValidationError
from iotfin.core.time import MS_PER_DAY
from iotfin.lending import calendar as cal
from iotfin.lending import store
from iotfin.lending.closing import ScheduledClose
from iotfin.lending.service import Offer
from iotfin.lending.tables import CloseJob, CloseRun, GlEntry
from tests.lending.conftest import make_enterprises
from tests.openapi_world import operator_headers
from tests.telemetry.test_store import HOUR, MIN, readings


def _counts(ws: Workspace) -> tuple[int, int, int]:
    with ws.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (CloseRun, CloseJob, GlEntry))


def test_a_future_close_is_refused_and_writes_nothing(workspace: Workspace) -> None:
    ent = make_enterprises(workspace.engine, 1)[0]
    today = cal.today()
    workspace.lending.book(Offer(ent, "iot-term", Decimal("10000"), Decimal("0.06"), 3), today - timedelta(days=5))
    before = _counts(workspace)
    client = TestClient(create_app(workspace, background=False), headers=operator_headers(workspace))
    r = client.post("/api/v1/lending/close", json={"date": (today + timedelta(days=1)).isoformat()})
    assert r.status_code == 422 and "after today" in r.text and "IOTFIN_SIMULATION" in r.text
    with pytest.raises(ValidationError, match="after today"):
        workspace.lending.close_through(today + timedelta(days=30))
    assert _counts(workspace) == before
    # today and the past close; ahead only in simulation mode
    assert client.post("/api/v1/lending/close", json={"date": today.isoformat()}).status_code == 200
    assert len(workspace.lending.close_through(today + timedelta(days=2), simulate=True)) == 2


def test_the_schedule_closes_through_yesterday_and_catches_up(workspace: Workspace) -> None:
    ent = make_enterprises(workspace.engine, 1)[0]
    now = datetime.now(UTC)
    due = cal.close_due_through(now, "00:30")
    workspace.lending.book(Offer(ent, "iot-term", Decimal("10000"), Decimal("0.06"), 3), due - timedelta(days=4))
    schedule = CloseSchedule(workspace, poll_s=0.01)
    run = schedule.step(first=True)  # at start: the four missed days
    assert run is not None and run["trigger"] == "catch_up" and len(run["days"]) == 4 and run["through"] == due
    assert schedule.step() is None  # nothing more is due
    status = workspace.scheduled_close.status(now)
    assert status["closed_through"] == due and status["last_run"]["status"] == "done"
    assert status["last_run"]["days"] == 4 and status["running"] is False and status["simulation"] is False
    assert datetime.fromisoformat(status["next_run_at"]) > now

    # the same loop rolled up the telemetry of the days before today (here: none, then one)
    today_utc = now.date()
    workspace.telemetry.append(readings((1, "kw", (today_utc - date(1970, 1, 1)).days * MS_PER_DAY - HOUR, 2.0),
                                        (1, "kw", (today_utc - date(1970, 1, 1)).days * MS_PER_DAY + MIN, 3.0)))
    schedule._rolled_up_for = None  # as on the next UTC day
    schedule.step()
    assert list(workspace.telemetry.hourly_todo()) != [] and workspace.telemetry.hourly_todo(before=today_utc) == []

    # the next morning, past close_at: one more day, by the schedule
    tomorrow = now + timedelta(days=1)
    run = workspace.scheduled_close.tick(tomorrow)
    assert run is not None and run["trigger"] == "schedule" and run["through"] == due + timedelta(days=1)


def test_one_close_at_a_time_across_processes(workspace: Workspace) -> None:
    today = cal.today()
    other = ScheduledClose(workspace.lending, holder="other-host:1:x")  # alive as far as we can tell
    now = datetime.now(UTC)
    with workspace.engine.begin() as conn:
        assert store.take_close_lock(conn, other.holder, now, now + timedelta(minutes=30))
    mine = ScheduledClose(workspace.lending)
    before = _counts(workspace)
    with pytest.raises(Conflict, match="already running"):
        mine.run(today - timedelta(days=1))
    assert mine.tick() is None and _counts(workspace) == before
    assert mine.status()["running"] is True
    with workspace.engine.begin() as conn:  # its lease expires: the close is free again
        store.take_close_lock(conn, other.holder, now, now - timedelta(seconds=1))
    assert mine.run(today - timedelta(days=1))["through"] == today - timedelta(days=1)


def test_close_status_over_the_api_and_the_cli(workspace: Workspace) -> None:
    client = TestClient(create_app(workspace, background=False), headers=operator_headers(workspace))
    assert client.post("/api/v1/lending/close", json={"date": (cal.today() - timedelta(days=1)).isoformat()}).status_code == 200
    body = client.get("/api/v1/lending/close").json()
    assert body["closed_through"] == (cal.today() - timedelta(days=1)).isoformat()
    assert body["last_run"]["trigger"] == "manual" and body["simulation"] is False
    assert {"next_run_at", "close_at", "running"} <= body.keys()
    env = {"IOTFIN_DATA_DIR": str(workspace.data_dir), "IOTFIN_DATABASE_URL": workspace.settings.resolved_database_url}
    out = subprocess.run([sys.executable, "-m", "iotfin", "loan", "close-status", "--json"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"closed_through"' in out.stdout
    future = (cal.today() + timedelta(days=3)).isoformat()
    refused = subprocess.run([sys.executable, "-m", "iotfin", "loan", "close-day", "--date", future],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode != 0 and "after today" in refused.stderr
    ok = subprocess.run([sys.executable, "-m", "iotfin", "loan", "close-day", "--date", future, "--simulate"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
