"""The journey suite: a real `iotfin serve` on a fresh workspace, driven only through public
interfaces — the command line an operator types, the open API over HTTP, devices over MQTT and the
HTTP device API, a lender's webhook receiver. No SQL, no imports of iotfin: what a bank's pilot team
can do, this suite does, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import free_port

OPERATOR, OPERATOR_PASSWORD = "ops-admin", "operator-pass-1234"


class Platform:
    """One iotfin installation: its CLI (as the operator's shell) and its `serve` process."""

    def __init__(self, data_dir: Path, database_url: str | None):
        self.data_dir = data_dir
        self.http_port, self.mqtt_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {
            "IOTFIN_DATA_DIR": str(data_dir),
            "IOTFIN_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            # the close runs at start for the days missed (a fresh book: through yesterday)
            "IOTFIN_CLOSE_AT": "00:00",
        }
        if database_url:
            self.env["IOTFIN_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen[str] | None = None
        self.log = data_dir.parent / "serve.log"

    # --- the operator's shell ----------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "iotfin", *args], env=self.env | (env or {}),
                              capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"iotfin {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def cli_json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return json.loads(self.cli(*args, "--json", env=env).stdout)

    # --- the server ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iotfin", "serve", "--http-port", str(self.http_port), "--mqtt-port",
             str(self.mqtt_port)], env=self.env, stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"), text=True)
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                httpx.get(f"{self.url}/healthz", timeout=1).raise_for_status()
                socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=1).close()
                return
            except (httpx.HTTPError, OSError):
                assert time.monotonic() < deadline, "iotfin serve did not come up:\n" + self.log.read_text()
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)

    # --- the open API ------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> Api:
        return Api(self.url, self._token({"grant_type": "password", "username": username, "password": password}))

    def client_login(self, client_id: str, secret: str) -> Api:
        return Api(self.url, self._token({"grant_type": "client_credentials", "client_id": client_id,
                                          "client_secret": secret}))

    def _token(self, form: dict[str, str]) -> str:
        r = httpx.post(f"{self.url}/oauth/token", data=form, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


class Api:
    """A signed-in caller of the open API; every call returns the response for the test to judge."""

    def __init__(self, base: str, token: str):
        self.http = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"},
                                 timeout=60)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.http.post(path, json=body if body is not None else {})

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, f"{response.request.method} {response.request.url}: " \
                                                f"{response.status_code} {response.text}"
        return response.json() if response.content else None

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a keyset-paged list, following next_cursor."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.ok(self.get(path, **params, cursor=cursor, limit=50))
            out += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out


class Receiver:
    """A lender's webhook endpoint: records every delivery (body and headers)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append({"headers": dict(self.headers), "body": json.loads(body or b"{}")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def types(self) -> list[str]:
        return [e["body"].get("type") or e["body"].get("event_type") or e["headers"].get("x-iotfin-event", "")
                for e in self.events]

    def wait_for(self, event_type: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event, kind in zip(list(self.events), self.types(), strict=False):
                if kind == event_type:
                    return event
            time.sleep(0.2)
        raise AssertionError(f"no {event_type} webhook within {timeout} s; got {self.types()}")

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def platform(db_url: str, tmp_path: Path) -> Iterator[Platform]:
    """A fresh installation — the embedded default, or a new PostgreSQL database — with migrations
    applied and one operator login, by the operator's shell."""
    database_url = None if db_url.startswith("sqlite") else db_url
    p = Platform(tmp_path / "ws", database_url)
    p.cli("db", "upgrade")
    p.cli("users", "create", OPERATOR, "--roles", "platform_admin", "--name", "Platform operator",
          env={"IOTFIN_NEW_USER_PASSWORD": OPERATOR_PASSWORD})
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()
