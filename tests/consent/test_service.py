"""Consent on SQLite and PostgreSQL: grant, check with an access-log row, withdraw (effective on the
next request, from any process), reconfirm, ledger anchoring of every state, bad input stores nothing."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.consent.model import GrantRequest
from iotfin.consent.service import ConsentService, ReadRequest
from iotfin.consent.store import access_t, grants_t
from iotfin.core.errors import NotFound, ValidationError
from iotfin.ledger.evidence import verify_bundle
from iotfin.ledger.tables import ledger_anchors
from tests.consent.conftest import add_enterprises

RANGE = (date(2026, 6, 1), date(2026, 11, 30))


def req(enterprise_id: int = 1, **kw) -> GrantRequest:  # noqa: ANN003
    now = datetime.now(UTC)
    base = dict(enterprise_id=enterprise_id, recipient="bank-a", purpose="credit_assessment",
                scopes=("telemetry:energy", "trade_documents"), window_start=date(2026, 1, 1),
                window_end=date(2027, 6, 30), expires_at=now + timedelta(days=200))
    return GrantRequest(**(base | kw))


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    add_enterprises(workspace.engine, [1, 2, 3])
    return workspace


def count(ws: Workspace, table) -> int:  # noqa: ANN001
    with ws.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_grant_check_withdraw_and_the_access_log(ws: Workspace) -> None:
    g = ws.consent.grant(req())
    allowed = ws.consent.check("bank-a", 1, "telemetry:energy", "credit_assessment", RANGE)
    assert allowed.allowed and allowed.grant_id == g.id
    refused = ws.consent.check("bank-a", 1, "telemetry:gps", "credit_assessment", RANGE)
    assert (refused.allowed, refused.reason) == (False, "scope_not_granted")
    assert ws.consent.check("bank-b", 1, "telemetry:energy", "credit_assessment", RANGE).reason == "no_grant"

    # A second service on the same database (another process, in effect) withdraws: the first one's
    # very next check is refused, with no cache to wait out.
    other = ConsentService(ws.engine)
    withdrawn = other.withdraw(g.id, enterprise_id=1)
    assert withdrawn.withdrawn_at is not None and withdrawn.status(datetime.now(UTC)) == "withdrawn"
    after = ws.consent.check("bank-a", 1, "telemetry:energy", "credit_assessment", RANGE)
    assert (after.allowed, after.reason, after.grant_id) == (False, "withdrawn", g.id)
    with pytest.raises(ValidationError, match="already withdrawn"):
        other.withdraw(g.id, enterprise_id=1)
    other.close()

    log = ws.consent.access_log(1)
    assert [(r["recipient"], r["scope"], r["allowed"], r["reason"], r["grant_id"]) for r in log] == [
        ("bank-a", "telemetry:energy", True, "granted", g.id),
        ("bank-a", "telemetry:gps", False, "scope_not_granted", g.id),
        ("bank-b", "telemetry:energy", False, "no_grant", None),
        ("bank-a", "telemetry:energy", False, "withdrawn", g.id),
    ]
    assert log[0]["reason_zh"] == "已授权" and log[0]["at"].tzinfo is not None
    assert (log[0]["data_start"], log[0]["data_end"]) == RANGE
    assert ws.consent.access_log(2) == []  # one enterprise never sees another's log
    page = ws.consent.access_log(1, limit=2, after_id=log[1]["id"])
    assert [r["id"] for r in page] == [log[2]["id"], log[3]["id"]]


def test_every_state_of_a_grant_is_anchored_and_provable(ws: Workspace) -> None:
    g = ws.consent.grant(req())
    ws.consent.reconfirm(g.id, enterprise_id=1)
    ws.consent.withdraw(g.id, enterprise_id=1)
    with ws.engine.connect() as conn:
        anchored = conn.execute(select(func.count()).select_from(ledger_anchors).where(
            ledger_anchors.c.record_type == "consent_grant", ledger_anchors.c.record_id == str(g.id))).scalar_one()
    assert anchored == 3
    ws.ledger.checkpoint()
    bundle = ws.ledger.prove("consent_grant", str(g.id))
    assert verify_bundle(bundle, ws.ledger.verifier_key)["record_id"] == str(g.id)
    assert bundle["record"]["body"]["withdrawn_at"] is not None
    assert ws.ledger.audit()["ok"] is True


def test_reconfirmation_restarts_the_clock(ws: Workspace) -> None:
    now = datetime.now(UTC)
    g = ws.consent.grant(req(reconfirm_days=30), now=now - timedelta(days=40))  # granted 40 days ago
    assert ws.consent.check("bank-a", 1, "trade_documents", "credit_assessment", RANGE).reason == "reconfirmation_overdue"
    ws.consent.reconfirm(g.id, enterprise_id=1)
    assert ws.consent.check("bank-a", 1, "trade_documents", "credit_assessment", RANGE).allowed
    assert ws.consent.check("bank-a", 1, "trade_documents", "credit_assessment", RANGE,
                            now=datetime.now(UTC) + timedelta(days=31)).reason == "reconfirmation_overdue"


def test_check_many_decides_and_logs_each_enterprise(ws: Workspace) -> None:
    ws.consent.grant_many([req(1), req(2, scopes=("trade_documents",))])
    reads = [ReadRequest("telemetry:energy", "credit_assessment", *RANGE),
             ReadRequest("trade_documents", "credit_assessment", *RANGE)]
    out = ws.consent.check_many("bank-a", [1, 2, 3], reads)
    assert [[d.allowed for d in out[e]] for e in (1, 2, 3)] == [[True, True], [False, True], [False, False]]
    assert [d.reason for d in out[3]] == ["no_grant", "no_grant"]
    ws.consent.log.flush()
    assert count(ws, access_t) == 6


def test_bad_input_is_refused_and_stores_nothing(ws: Workspace) -> None:
    before = ws.ledger.store.size()
    for bad in (req(expires_at=datetime.now(UTC) + timedelta(days=400)), req(scopes=()), req(scopes=("gps",)),
                req(window_start=date(2026, 5, 2), window_end=date(2026, 5, 1))):
        with pytest.raises(ValidationError):
            ws.consent.grant(bad)
    with pytest.raises(NotFound):
        ws.consent.grant_many([req(1), req(99)])  # all or nothing: enterprise 1's grant is not kept either
    assert count(ws, grants_t) == 0 and ws.ledger.store.size() == before
    with pytest.raises(NotFound):
        ws.consent.withdraw(12345)
    g = ws.consent.grant(req(1))
    with pytest.raises(NotFound):  # enterprise 2 cannot withdraw enterprise 1's consent
        ws.consent.withdraw(g.id, enterprise_id=2)
    with pytest.raises(ValidationError):
        ws.consent.check("bank-a", 1, "telemetry:nope", "credit_assessment", RANGE)
    with pytest.raises(ValidationError):
        ws.consent.access_log(1, limit=0)


def test_access_log_writer_batches_and_flushes_on_close(ws: Workspace) -> None:
    ws.consent.grant(req())
    svc = ConsentService(ws.engine)
    svc.log.max_delay_s = 60  # nothing is flushed by the timer during this test
    for _ in range(5):
        svc.check("bank-a", 1, "telemetry:energy", "credit_assessment", RANGE)
    assert count(ws, access_t) == 0  # batched, not written per read
    svc.close()
    assert count(ws, access_t) == 5 and svc.log.written == 5


def test_a_full_batch_is_written_without_waiting_for_the_delay(ws: Workspace) -> None:
    svc = ConsentService(ws.engine)
    svc.log.max_rows, svc.log.max_delay_s = 3, 60
    for _ in range(3):
        svc.check("bank-a", 2, "alerts", "post_loan_monitoring", RANGE)
    deadline = time.monotonic() + 10  # written by the flusher thread, not the reading one
    while count(ws, access_t) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(ws, access_t) == 3
    svc.close()


@pytest.mark.parametrize("recipient", [None, "bank-a"])
def test_an_access_log_page_reads_its_rows_in_order_from_an_index(sqlite_workspace: Workspace,
                                                                   recipient: str | None) -> None:
    """No page sorts the enterprise's whole log: the plan of the query the service runs uses an index
    in id order (SQLite's query planner; PostgreSQL has the same indexes)."""
    from sqlalchemy import event

    from iotfin.db.pagination import PageParams

    seen: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if "consent_access_log" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(sqlite_workspace.engine, "before_cursor_execute", capture)
    sqlite_workspace.consent.access_log_page(1, PageParams(20, 7), recipient)
    event.remove(sqlite_workspace.engine, "before_cursor_execute", capture)
    [(statement, parameters)] = seen
    with sqlite_workspace.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
    assert "TEMP B-TREE" not in plan and "USING INDEX ix_consent_access_log_enterprise_" in plan, plan
