"""Webhook deliveries to a real HTTP receiver on a free port that fails the first N times: signed,
retried with backoff, deduplicated by event id, visible in the delivery log; the outbox row exists
only if the business transaction commits; the worker runs inside the app's lifespan."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.identity.model import Principal
from iotfin.webhooks.model import backoff_s
from iotfin.webhooks.signing import SignatureError, sign, verify
from iotfin.webhooks.tables import WebhookDelivery, WebhookEvent
from iotfin.webhooks.worker import DeliveryWorker
from tests.openapi_world import World, build_world
from tests.services import free_port


@dataclass
class Receiver:
    """A webhook receiver as a partner would write one: verify, deduplicate by event id, 2xx."""

    fail_first: int
    secret: str = ""
    requests: list[dict] = field(default_factory=list)
    seen_events: set[str] = field(default_factory=set)
    processed: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(fail_first=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.requests.append({"headers": dict(self.headers), "body": body})
            if len(rec.requests) <= rec.fail_first:
                self.send_response(503)
                self.end_headers()
                return
            try:
                verify(rec.secret, self.headers["Iotfin-Signature"], body)
            except SignatureError:
                self.send_response(400)
                self.end_headers()
                return
            event_id = self.headers["Iotfin-Event-Id"]
            if event_id not in rec.seen_events:  # dedup: a retry of a delivered event is acknowledged, not redone
                rec.seen_events.add(event_id)
                rec.processed.append(event_id)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    rec.port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", rec.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


async def _drain(worker: DeliveryWorker, timeout_s: float = 20) -> None:
    """Run the worker's rounds until no delivery is pending."""
    deadline = time.monotonic() + timeout_s
    while _pending(worker) and time.monotonic() < deadline:
        if await worker.run_once() == 0:
            await asyncio.sleep(0.02)


def _pending(worker: DeliveryWorker) -> int:
    with worker.service.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")).scalar_one()


def test_signed_retried_logged_and_deduplicated(world: World, receiver: Receiver) -> None:
    bank = world["bank_a"]
    sub = bank.subscribe(receiver.url, ["complaint.updated"], description="core banking")
    receiver.secret = sub["secret"]
    assert sub["secret"].startswith("whsec_")
    assert "secret" not in next(iter(bank.subscriptions()))  # shown once only

    complaint = world["ent_1"].submit_complaint(category="pricing", subject="fee", description="d", tenant="bank-a")
    worker = DeliveryWorker(world.ws.webhooks, backoff=lambda attempt: 0.05 * attempt)
    asyncio.run(_drain(worker))

    assert len(receiver.requests) == 3  # 503, 503, then 204
    ids = {r["headers"]["Iotfin-Event-Id"] for r in receiver.requests}
    assert len(ids) == 1 and receiver.processed == list(ids)
    assert [r["headers"]["Iotfin-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    import json
    payload = json.loads(receiver.requests[-1]["body"])
    assert payload["type"] == "complaint.updated" and payload["data"] == {"complaint_id": complaint["id"], "status": "submitted"}

    log = list(bank.deliveries())
    assert len(log) == 1 and log[0]["status"] == "delivered" and log[0]["attempts"] == 3
    detail = bank.delivery(log[0]["id"])
    assert [a["status_code"] for a in detail["attempt_log"]] == [503, 503, 204]
    # the enterprise and the other bank see nothing of bank A's deliveries
    assert list(world["ent_1"].deliveries()) == [] and list(world["bank_b"].deliveries()) == []

    # a replayed delivery (the same event again) is acknowledged but not processed twice
    last = receiver.requests[-1]
    import httpx
    again = httpx.post(receiver.url, content=last["body"],
                       headers={k: v for k, v in last["headers"].items() if k.startswith("Iotfin") or k == "Content-Type"})
    assert again.status_code == 204 and len(receiver.processed) == 1


def test_gives_up_after_max_attempts_and_stops_for_cancelled_subscriptions(world: World, receiver: Receiver) -> None:
    receiver.fail_first = 100
    bank = world["bank_a"]
    sub = bank.subscribe(receiver.url, ["ping"])
    bank.ping(sub["id"])
    worker = DeliveryWorker(world.ws.webhooks, max_attempts=3, backoff=lambda attempt: 0.01)
    asyncio.run(_drain(worker))
    (failed,) = list(bank.deliveries(status="failed"))
    assert failed["attempts"] == 3 and failed["last_status_code"] == 503 and len(receiver.requests) == 3

    bank.ping(sub["id"])
    bank.unsubscribe(sub["id"])
    asyncio.run(_drain(worker))
    assert len(receiver.requests) == 3  # nothing more went out
    assert {d["last_error"] for d in bank.deliveries(status="failed")} >= {"subscription cancelled"}


def test_unreachable_receiver_is_retried_with_the_error_logged(world: World) -> None:
    bank = world["bank_a"]
    sub = bank.subscribe(f"http://127.0.0.1:{free_port()}/nobody", ["ping"])
    bank.ping(sub["id"])
    worker = DeliveryWorker(world.ws.webhooks, max_attempts=2, timeout_s=2, backoff=lambda attempt: 0.01)
    asyncio.run(_drain(worker))
    (d,) = list(bank.deliveries())
    detail = bank.delivery(d["id"])
    assert d["status"] == "failed" and all("ConnectError" in a["error"] for a in detail["attempt_log"])


def test_outbox_is_written_in_the_business_transaction(world: World) -> None:
    ws = world.ws
    who = Principal(subject="test", tenant_id=ws.financing.tenant_id("bank-a"))
    ws.webhooks.subscribe(who, "https://bank-a.example/h", ["alert.raised"])

    def events() -> int:
        with ws.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()

    before = events()
    with pytest.raises(RuntimeError):
        with ws.engine.begin() as conn:
            ws.webhooks.emit(conn, "alert.raised", {"alert": 1}, tenant_id=who.tenant_id)
            raise RuntimeError("the alert could not be stored")
    assert events() == before
    with ws.engine.begin() as conn:
        ws.webhooks.emit(conn, "alert.raised", {"alert": 2}, tenant_id=who.tenant_id)
    assert events() == before + 1
    with ws.engine.begin() as conn, pytest.raises(Exception, match="event types"):
        ws.webhooks.emit(conn, "no.such.event", {}, tenant_id=who.tenant_id)


def test_worker_runs_in_the_app_lifespan(workspace: Workspace, receiver: Receiver) -> None:
    receiver.fail_first = 0
    world = build_world(workspace)
    sub = world["ent_1"].subscribe(receiver.url, ["ping"])
    receiver.secret = sub["secret"]
    with TestClient(create_app(workspace)) as live:  # lifespan starts the delivery worker
        token = world.token("ent_1")
        assert live.post(f"/api/v1/webhooks/subscriptions/{sub['id']}/ping",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 202
        deadline = time.monotonic() + 15
        while not receiver.processed and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(receiver.processed) == 1


def test_subscription_urls_and_types_are_checked(world: World) -> None:
    http, h = world.http, world.headers("bank_a")
    for url in ("http://partner.example/h", "ftp://x/y", "https://user:pw@partner.example/h", "not a url"):
        r = http.post("/api/v1/webhooks/subscriptions", json={"url": url, "event_types": ["ping"]}, headers=h)
        assert r.status_code == 422, url
    r = http.post("/api/v1/webhooks/subscriptions", json={"url": "https://p.example/h", "event_types": ["x.y"]}, headers=h)
    assert r.status_code == 422 and "event types" in r.json()["detail"]


def test_signature_scheme() -> None:
    body = b'{"id":"e1"}'
    header = sign("whsec_k", body, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify("whsec_k", header, body, now=1_700_000_100) == 1_700_000_000
    with pytest.raises(SignatureError):
        verify("whsec_k", header, body + b" ", now=1_700_000_100)
    with pytest.raises(SignatureError):
        verify("whsec_other", header, body, now=1_700_000_100)
    with pytest.raises(SignatureError, match="replay"):
        verify("whsec_k", header, body, now=1_700_000_000 + 301)
    rotated = header + ",v1=" + "0" * 64  # several v1 values (secret rotation): any valid one passes
    assert verify("whsec_k", rotated, body, now=1_700_000_000)


def test_backoff_grows_with_jitter() -> None:
    import random

    rng = random.Random(7)
    delays = [[backoff_s(n, base_s=2, cap_s=600, rng=rng) for n in range(1, 11)] for _ in range(200)]
    for n in range(10):
        step = min(600, 2 * 2**n)
        column = [d[n] for d in delays]
        assert all(step / 2 <= x <= step for x in column)
        assert max(column) - min(column) > step / 4  # jittered, not lockstep
