"""The monitor's ports wired to the platform on a real workspace (SQLite and PostgreSQL): loan actions
through the lending service (once per incident, audited, released on resolution), notices through the
webhooks outbox to a real local HTTP receiver (the enterprise, and the lender it consented to), the
monitor inside the server's lifespan, and ingest standing when a subscriber fails."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from iotfin.app.http import create_app
from iotfin.app.monitor_actions import LendingActions, Resolutions, WebhookNotifier
from iotfin.app.monitor_runtime import MonitorRuntime
from iotfin.app.workspace import Workspace
from iotfin.consent.model import GrantRequest
from iotfin.identity.model import Principal
from iotfin.identity.tables import Enterprise, Site, Tenant
from iotfin.lending.service import Offer
from iotfin.lending.tables import CreditLine, LoanEvent
from iotfin.monitor.service import MonitorService
from iotfin.monitor.store import AlertStore, load_device_meta
from iotfin.monitor.tables import MonitorAlertEvent
from iotfin.supplychain.tables import TradeDocument
from iotfin.telemetry.model import READING_SCHEMA
from iotfin.webhooks.signing import verify
from iotfin.webhooks.worker import DeliveryWorker
from tests.api.test_app import _enterprise
from tests.openapi_world import operator_headers
from tests.services import free_port

T0 = 1_767_542_400_000  # 2026-01-04 16:00 UTC
Q = 900_000


@pytest.fixture(autouse=True)
def local_receiver_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notice tests run their webhook receiver on 127.0.0.1: the operator's allowlist (SSRF rule,
    docs/api.md) lets the platform deliver there."""
    monkeypatch.setenv("IOTFIN_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")


@pytest.fixture
def world(workspace: Workspace) -> dict[str, int]:
    ws = workspace
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"code": "bank-a", "name": "甲银行", "name_en": "Bank A", "kind": "bank"},
                                      {"code": "bank-b", "name": "乙银行", "name_en": "Bank B", "kind": "bank"}])
        conn.execute(insert(Enterprise).values(_enterprise(1, "energy") | {"name": "榆林示范煤场"}))
        conn.execute(insert(Enterprise).values(_enterprise(2, "energy")))
        conn.execute(insert(Site).values(id=1, enterprise_id=1, name="yard", kind="yard", lat=38.29, lon=109.73,
                                         geofence_radius_m=50_000.0))
    out = {"seal": ws.devices.create(1, "door_seal", site_id=1).id,
           "truck": ws.devices.create(1, "gps_tracker", site_id=1).id,
           "line": ws.lending.open_line(1, Decimal("500000"), Decimal("0.06"), date(2027, 6, 30)),
           "other_line": ws.lending.open_line(2, Decimal("100000"), Decimal("0.06"), date(2027, 6, 30))}
    out["loan"] = ws.lending.book(Offer(1, "iot-line", Decimal("200000.00"), Decimal("0.06"), 6,
                                        credit_line_id=out["line"]), date(2026, 1, 2))
    with ws.engine.begin() as conn:
        out["bank_a"], out["bank_b"] = conn.execute(select(Tenant.id).order_by(Tenant.code)).scalars().all()
    return out


def _rows(*rows: tuple[int, str, int, float]) -> pa.Table:
    d, k, t, v = zip(*rows, strict=True)
    return pa.table({"device_id": list(d), "key": list(k), "ts": list(t), "value": list(v)}, schema=READING_SCHEMA)


def _line_status(ws: Workspace, line_id: int) -> str:
    with ws.engine.connect() as conn:
        return conn.execute(select(CreditLine.status).where(CreditLine.id == line_id)).scalar_one()


def _loan_events(ws: Workspace, kind: str) -> list[LoanEvent]:
    with ws.engine.connect() as conn:
        return conn.execute(select(LoanEvent).where(LoanEvent.kind == kind, LoanEvent.actor == "monitor")).all()


def _audit(ws: Workspace, alert_id: int, kind: str) -> list[dict]:
    with ws.engine.connect() as conn:
        return [json.loads(d) for d in conn.execute(select(MonitorAlertEvent.detail).where(
            MonitorAlertEvent.alert_id == alert_id, MonitorAlertEvent.kind == kind)).scalars()]


def test_loan_actions_go_through_lending_once_per_incident_and_are_released(workspace: Workspace,
                                                                          world: dict[str, int]) -> None:
    ws = workspace
    meta, names = load_device_meta(ws.engine)
    store = AlertStore(ws.engine, "test")
    actions = LendingActions(ws.engine, ws.lending)
    monitor = MonitorService(meta, store=store, enterprise_names=names, loan_action=actions)
    ws.ingest.on_commit.append(monitor.on_commit)
    seal = world["seal"]
    ws.ingest.ingest(_rows((seal, "seal_intact", T0, 1), (seal, "seal_intact", T0 + Q, 0)), now=T0 + 2 * Q)
    [alert] = store.list()
    assert (alert["incident_type"], alert["tier"]) == ("device_tamper", "freeze")
    assert _line_status(ws, world["line"]) == "frozen"
    assert _line_status(ws, world["other_line"]) == "active"  # another enterprise's line is not touched
    [frozen] = _loan_events(ws, "line_frozen")
    assert frozen.credit_line_id == world["line"] and f"monitor alert {alert['id']}" in frozen.detail["reason"]
    # The same incident again (a re-delivered change, a restarted monitor): no second action.
    context = {"alert_id": alert["id"], "rule": "TMP-3", "reason_en": "x", "reason_zh": "x", "at": T0 + Q}
    assert actions("freeze_credit_line", 1, context) == []
    # Escalated to a margin call: one margin call on the enterprise's active loan, the freeze not repeated.
    [call] = actions("margin_call", 1, context | {"coverage": 0.8})
    assert call["target"] == "loan" and call["id"] == world["loan"]
    assert Decimal(call["result"]["amount"]) == Decimal("40000.00")  # 20 % short of 200,000 outstanding
    assert actions("margin_call", 1, context | {"coverage": 0.8}) == []
    assert len(_loan_events(ws, "line_frozen")) == 1 and len(_loan_events(ws, "margin_call")) == 1
    assert [d["action"] for d in _audit(ws, alert["id"], "loan_action_done")] == ["freeze_credit_line", "margin_call"]
    assert _audit(ws, alert["id"], "loan_action") == [{"action": "freeze_credit_line"}]
    # Resolved by an officer (HTTP or CLI, any process): the line it froze is released, once.
    store.transition(alert["id"], "resolved", "officer-7", "seal replaced on site / 封条已更换")
    resolutions = Resolutions(ws.engine, None, actions)
    assert resolutions.sweep() == 1 and _line_status(ws, world["line"]) == "active"
    assert Resolutions(ws.engine, None, actions).sweep() == 0  # a restarted sweeper does not act again
    assert len(_loan_events(ws, "line_unfrozen")) == 1


def test_a_failing_loan_action_does_not_stop_the_monitor(workspace: Workspace, world: dict[str, int]) -> None:
    ws = workspace
    meta, names = load_device_meta(ws.engine)
    store = AlertStore(ws.engine, "test")

    def broken(action: str, enterprise_id: int, context: dict) -> None:
        raise RuntimeError("lending is away")

    monitor = MonitorService(meta, store=store, enterprise_names=names, loan_action=broken)
    seal = world["seal"]
    changes = monitor.on_commit(_rows((seal, "seal_intact", T0, 0)))
    assert [c.kind for c in changes] == ["open"] and monitor.port_errors == 1
    [alert] = store.list()
    assert _audit(ws, alert["id"], "loan_action") == [
        {"action": "freeze_credit_line", "error": "RuntimeError: lending is away"}]
    assert len(store.notifications(alert["id"])) == 2  # the notices still went


class Receiver:
    """A partner's webhook endpoint on a free local port: records verified deliveries."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secrets: dict[str, str] = {}  # path -> secret
        self.got: list[tuple[str, str, dict]] = []  # (path, event type, body)
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                verify(rec.secrets[self.path], self.headers["Iotfin-Signature"], body)
                rec.got.append((self.path, self.headers["Iotfin-Event-Type"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def _deliver(ws: Workspace) -> None:
    async def drain() -> None:
        worker = DeliveryWorker(ws.webhooks, timeout_s=5)
        while await worker.run_once():
            pass

    asyncio.run(drain())


def test_notices_reach_the_enterprise_and_the_consented_lender_by_webhook(workspace: Workspace, world: dict[str, int],
                                                                         receiver: Receiver) -> None:
    ws = workspace
    for path, who in (("/ent", Principal(subject="e1", enterprise_id=1)),
                      ("/bank-a", Principal(subject="a", tenant_id=world["bank_a"])),
                      ("/bank-b", Principal(subject="b", tenant_id=world["bank_b"]))):
        sub = ws.webhooks.subscribe(who, receiver.url(path), ["alert.raised", "alert.escalated", "alert.resolved"])
        receiver.secrets[path] = sub["secret"]
    now = datetime.now(UTC)
    ws.consent.grant(GrantRequest(1, "bank-a", "post_loan_monitoring", ("telemetry:inventory",), date(2026, 1, 1),
                                  date(2027, 6, 30), now + timedelta(days=200)))
    # bank-b lent nothing and holds no consent for monitoring: it hears nothing about enterprise 1.
    ws.consent.grant(GrantRequest(1, "bank-b", "credit_assessment", ("telemetry:inventory",), date(2026, 1, 1),
                                  date(2027, 6, 30), now + timedelta(days=200)))
    meta, names = load_device_meta(ws.engine)
    store = AlertStore(ws.engine, "test")
    notifier = WebhookNotifier(ws.engine, ws.webhooks)
    monitor = MonitorService(meta, store=store, enterprise_names=names, notify=notifier)
    monitor.on_commit(_rows((world["seal"], "seal_intact", T0, 0)))
    [alert] = store.list()
    _deliver(ws)
    got = sorted((path, kind) for path, kind, _ in receiver.got)
    assert got == [("/bank-a", "alert.raised"), ("/ent", "alert.raised")]
    bodies = {path: body["data"] for path, _, body in receiver.got}
    assert bodies["/ent"]["alert_id"] == bodies["/bank-a"]["alert_id"] == alert["id"]
    # Each audience its own text, in Chinese and English.
    assert bodies["/ent"]["text_zh"].startswith("贵司") and bodies["/ent"]["text_en"].startswith("Your company")
    assert bodies["/bank-a"]["text_zh"].startswith("榆林示范煤场") and "raised at freeze" in bodies["/bank-a"]["text_en"]
    assert bodies["/bank-a"]["incident_type"] == "device_tamper" and bodies["/bank-a"]["tier"] == "freeze"
    # Resolved by an officer: alert.resolved to both, once.
    store.transition(alert["id"], "resolved", "officer-7", "封条已更换 / seal replaced")
    resolutions = Resolutions(ws.engine, notifier, None)
    assert resolutions.sweep() == 1 and resolutions.sweep() == 0
    receiver.got.clear()
    _deliver(ws)
    resolved = sorted((path, kind, body["data"]["kind"]) for path, kind, body in receiver.got)
    assert resolved == [("/bank-a", "alert.resolved", "resolved"), ("/ent", "alert.resolved", "resolved")]
    assert all("seal replaced" in body["data"]["text_en"] for _, _, body in receiver.got)


def test_the_server_runs_the_monitor_and_a_failing_subscriber_does_not_break_ingest(
        workspace: Workspace, world: dict[str, int]) -> None:
    ws = workspace
    from iotfin.api.metrics import metrics_text

    def failing(stored: pa.Table) -> None:
        raise ValueError("a subscriber with a bug")

    ws.ingest.on_commit.append(failing)
    with TestClient(create_app(ws)) as client:  # the lifespan: webhook worker + monitor
        [runtime_hook] = [s for s in ws.ingest.on_commit if getattr(s, "__self__", None).__class__ is MonitorRuntime]
        runtime: MonitorRuntime = runtime_hook.__self__
        seal = world["seal"]
        result = ws.ingest.ingest(_rows((seal, "seal_intact", T0, 0)), now=T0 + Q)
        assert result.accepted == 1 and ws.ingest.subscriber_errors == 1  # the commit stood
        assert [a["incident_type"] for a in AlertStore(ws.engine).list()] == ["device_tamper"]
        assert _line_status(ws, world["line"]) == "frozen"  # the loan action went through lending
        assert 'iotfin_ingest_subscriber_errors_total{subscriber="test_the_server_runs_the_monitor_and_a_failing_' \
               in metrics_text()[0].decode()
        r = client.get("/api/v1/monitor/alerts", headers=operator_headers(ws))
        assert r.status_code == 200 and len(r.json()["items"]) == 1
        # The timer's work, on the runtime's clock: the truck heard once, then silent past 8 h: dark.
        ws.ingest.ingest(_rows((world["truck"], "lat", T0, 38.29), (world["truck"], "lon", T0, 109.73)), now=T0 + Q)
        changes = runtime.tick(T0 + 9 * 3_600_000)
        assert ("open", "device_dark") in [(c.kind, c.key[1]) for c in changes]
    assert runtime.on_commit not in ws.ingest.on_commit  # unsubscribed when the server stops


def test_the_runtime_checks_each_finished_day_s_trade_documents(workspace: Workspace, world: dict[str, int]) -> None:
    ws = workspace
    day_start = T0 + 8 * 3_600_000  # 2026-01-05 00:00 Asia/Shanghai
    runtime = MonitorRuntime(ws, clock=lambda: day_start + 3_600_000)
    with ws.engine.begin() as conn:
        conn.execute(insert(TradeDocument), [
            {"id": 1, "doc_type": "purchase_order", "seller_id": 1, "buyer_id": 2, "order_id": 1,
             "issued_on": date(2026, 1, 4), "amount": Decimal("90000.00")},
            {"id": 2, "doc_type": "invoice", "seller_id": 1, "buyer_id": 2, "order_id": 1,
             "issued_on": date(2026, 1, 5), "due_on": date(2026, 3, 5), "amount": Decimal("90000.00")}])
    assert runtime.tick(day_start + 2 * 3_600_000) == []  # the day is not over
    changes = runtime.tick(day_start + 25 * 3_600_000)
    assert [(c.kind, c.key, c.event.signal, c.decision.rule) for c in changes] == [
        ("open", (1, "fabricated_trade"), "invoice_without_delivery", "TRD-2")]
    assert runtime.tick(day_start + 26 * 3_600_000) == []  # each day once
