"""A real MqttServer on a loopback port, run on its own event loop thread, with a recording handler.

Clients (paho-mqtt, mosquitto_pub, raw sockets) talk to it over TCP like devices do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from iotfin.transports.mqtt import MqttServer, Session


@dataclass(frozen=True)
class Device:
    name: str


@dataclass
class RecordingHandler:
    """Accepts user names starting with "dev"; topic conventions make it misbehave on purpose:

    * `fail/code/<hex>` -> returns that reason code; `fail/raise` -> raises
    * `slow/<ms>` -> sleeps that long first; `gate/wait` blocks until a `gate/open` arrives (any session)
    * `reply/<topic>` -> publishes the payload back to <topic> at QoS 1
    * `close/<hex>` -> closes the session with that reason code
    * `v1/devices/me/rpc/request/<id>` -> answers on `v1/devices/me/rpc/response/<id>`
    """

    published: list[tuple[Any, str, bytes, int]] = field(default_factory=list)
    subscribed: list[tuple[Any, str, int]] = field(default_factory=list)
    disconnected: list[tuple[Any, str, str]] = field(default_factory=list)
    auth_calls: list[tuple[str, str | None, bytes | None, int]] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def authenticate(self, client_id: str, username: str | None, password: bytes | None,
                           protocol_level: int) -> object | None:
        self.auth_calls.append((client_id, username, password, protocol_level))
        if username == "boom":
            raise RuntimeError("credential store down")
        if username is None or not username.startswith("dev"):
            return None
        return Device(username)

    async def on_publish(self, session: Session, topic: str, payload: bytes, qos: int) -> int:
        if session not in self.sessions:
            self.sessions.append(session)
        if topic.startswith("slow/"):
            await asyncio.sleep(int(topic.removeprefix("slow/")) / 1000)
        if topic == "gate/wait":
            self.gate = self.gate or asyncio.Event()
            await self.gate.wait()
        if topic == "gate/open":
            self.gate = self.gate or asyncio.Event()
            self.gate.set()
        self.published.append((session.identity, topic, payload, qos))
        if topic == "fail/raise":
            raise RuntimeError("storage exploded")
        if topic.startswith("fail/code/"):
            return int(topic.removeprefix("fail/code/"), 16)
        if topic.startswith("reply/"):
            await session.publish(topic.removeprefix("reply/"), payload, qos=1)
        if topic.startswith("close/"):
            await session.close(int(topic.removeprefix("close/"), 16))
        if topic.startswith("v1/devices/me/rpc/request/"):  # a client-side RPC, as the ThingsBoard SDK sends
            await session.publish(topic.replace("/request/", "/response/"), b'{"maxPayloadSize":65536}', qos=1)
        return 0

    async def on_subscribe(self, session: Session, topic_filter: str, qos: int) -> int:
        self.subscribed.append((session.identity, topic_filter, qos))
        if topic_filter.startswith("forbidden/"):
            return 0x87
        return min(qos, 1)

    async def on_disconnect(self, session: Session, reason: str) -> None:
        self.disconnected.append((session.identity, session.client_id, reason))


class ServerThread:
    def __init__(self, **options: Any):
        self.handler = RecordingHandler()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mqtt-server", daemon=True)
        self.thread.start()
        self.server = MqttServer(self.handler, port=0, **options)
        self.call(self.server.start())

    @property
    def port(self) -> int:
        return self.server.port

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.server.stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture(params=["epoll", "asyncio"])
def start_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServerThread]]:
    """Servers on each of the two transports: the lean epoll one (plain TCP, the default) and
    asyncio's (what TLS uses), so every protocol rule is checked on both."""
    started: list[ServerThread] = []

    def start(**options: Any) -> ServerThread:
        options.setdefault("connect_timeout_s", 1.0)
        options.setdefault("epoll_transport", request.param == "epoll")
        server = ServerThread(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def mqtt_server(start_server: Callable[..., ServerThread]) -> ServerThread:
    return start_server(max_packet_size=64 * 1024)
