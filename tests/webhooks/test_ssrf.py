"""SSRF protection of webhook URLs: non-http(s) schemes and private, loopback, link-local, metadata
and reserved addresses are refused at subscription, and again at every delivery after resolving the
host anew (DNS rebinding), with the connection pinned to the checked address. The operator's
allowlist (`IOTFIN_WEBHOOK_ALLOW_HOSTS`) is the one way to reach a local receiver."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from sqlalchemy import select

from iotfin.core.errors import ValidationError
from iotfin.webhooks.model import Allowlist, check_addresses, check_url, public
from iotfin.webhooks.tables import WebhookAttempt
from iotfin.webhooks.worker import DeliveryWorker
from tests.openapi_world import World
from tests.webhooks.test_delivery import Receiver, receiver  # noqa: F401, F811  (fixture)

REFUSED = [
    "file:///etc/passwd", "gopher://127.0.0.1:25/x", "ftp://partner.example/h", "javascript:alert(1)",
    "http://partner.example/h",                       # plain http to a host not on the allowlist
    "https://127.0.0.1/h", "https://127.1.2.3:8443/h", "https://[::1]/h", "https://0.0.0.0/h",
    "https://10.1.2.3/h", "https://172.16.0.1/h", "https://192.168.1.1/h", "https://100.64.0.1/h",
    "https://169.254.169.254/latest/meta-data/", "https://[fe80::1]/h", "https://[fd00::1]/h",
    "https://[::ffff:127.0.0.1]/h", "https://[::ffff:169.254.169.254]/h", "https://[64:ff9b::a00:1]/h",
    "https://224.0.0.1/h", "https://255.255.255.255/h", "https://user:pw@partner.example/h", "https:///h",
    "https://partner.example:0/h", "https://partner.example:99999/h",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        check_url(url)


def test_public_urls_and_the_allowlist() -> None:
    for url in ("https://8.8.8.8/h", "https://partner.example/hooks", "https://[2001:4860:4860::8888]/h"):
        assert check_url(url) == url
    allow = Allowlist.parse("127.0.0.1/32, receiver.test")
    assert check_url("http://127.0.0.1:8080/h", allow) and check_url("http://receiver.test/h", allow)
    with pytest.raises(ValidationError):
        check_url("http://10.0.0.1/h", allow)
    with pytest.raises(ValidationError):
        check_url("https://127.0.0.2/h", allow)
    assert not public(ipaddress.ip_address("169.254.169.254")) and public(ipaddress.ip_address("1.1.1.1"))


def test_one_private_answer_among_public_ones_is_refused() -> None:
    check_addresses("partner.example", ["93.184.216.34"])
    with pytest.raises(ValidationError, match="non-public"):
        check_addresses("partner.example", ["93.184.216.34", "10.0.0.7"])
    check_addresses("receiver.test", ["10.0.0.7"], Allowlist.parse("receiver.test"))


def test_subscription_refuses_names_resolving_to_private_addresses(world: World) -> None:
    world.ws.webhooks.allow = Allowlist()  # not even the local receiver of the other tests
    h = world.headers("bank_a")
    for url in ("https://localhost/h", "https://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
                "http://partner.example/h"):
        r = world.http.post("/api/v1/webhooks/subscriptions", json={"url": url, "event_types": ["ping"]}, headers=h)
        assert r.status_code == 422, url
        assert r.headers["content-type"].startswith("application/problem+json")
    ok = world.http.post("/api/v1/webhooks/subscriptions", json={"url": "https://bank-a.example/h",
                                                                 "event_types": ["ping"]}, headers=h)
    assert ok.status_code == 201  # a name that does not resolve yet is checked at every delivery


def test_rebinding_to_a_private_address_is_refused_at_delivery(world: World, receiver: Receiver) -> None:  # noqa: F811
    """The name resolved to a public address when subscribed and to the local receiver at delivery."""
    svc = world.ws.webhooks
    answers = {"at": "93.184.216.34"}
    svc.resolver = lambda host, port: [answers["at"]] if host == "rebind.test" else []
    svc.allow = Allowlist()
    sub = world["bank_a"].subscribe(f"https://rebind.test:{receiver.port}/hooks", ["ping"])
    answers["at"] = "127.0.0.1"
    world["bank_a"].ping(sub["id"])
    asyncio.run(DeliveryWorker(svc).run_once())
    assert receiver.requests == []  # nothing reached the local address
    with svc.engine.connect() as conn:
        errors = conn.execute(select(WebhookAttempt.error)).scalars().all()
    assert len(errors) == 1 and errors[0].startswith("refused: ") and "127.0.0.1" in errors[0]


def test_delivery_is_pinned_to_the_checked_address(world: World, receiver: Receiver) -> None:  # noqa: F811
    """An allowlisted name: the request goes to the address resolved and checked, with the name kept
    in the Host header."""
    svc = world.ws.webhooks
    svc.resolver = lambda host, port: ["127.0.0.1"] if host == "receiver.test" else []
    svc.allow = Allowlist.parse("receiver.test")
    receiver.fail_first = 0
    sub = world["bank_a"].subscribe(f"http://receiver.test:{receiver.port}/hooks", ["ping"])
    receiver.secret = sub["secret"]
    world["bank_a"].ping(sub["id"])
    asyncio.run(DeliveryWorker(svc).run_once())
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["headers"]["Host"] == f"receiver.test:{receiver.port}"
    assert len(receiver.processed) == 1
