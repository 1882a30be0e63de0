"""The console's browser suite: a real `iotfin serve` on a seeded demo workspace, driven by Playwright
in Debian's chromium, as the people who use it: sign in, find the thing, act, see the result.

Every page a test opens is guarded (`Browser.page`): the test fails on any browser console error or
uncaught script error, on any request to a host other than the server (offline by construction), and
on any text missing from the active message catalog (rendered as ⟦msgid⟧ by iotfin.console.i18n).

The workspace is built once per run (`iotfin demo --headless`, ~25 s) and shared by the tests; a
test that changes it acts on records of its own choosing, so order does not matter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.services import free_port, missing_service

CHROMIUM = os.environ.get("IOTFIN_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "console"
MISSING_MARK = "⟦"
#: the extra people the tests need beside the demo's logins (same password as the demo's)
EXTRA_USERS = (("bank-a-auditor", "auditor", "bank-a"),)


@dataclass
class Workspace:
    """The seeded workspace and its server: URL, logins (username -> password), the demo summary."""

    url: str
    data_dir: Path
    password: str
    summary: dict[str, Any]
    env: dict[str, str]
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cli(self, *args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "iotfin", *args, "--json"], env=self.env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"iotfin {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def token(self, username: str) -> str:
        response = httpx.post(f"{self.url}/oauth/token", data={"grant_type": "password", "username": username,
                                                               "password": self.password})
        response.raise_for_status()
        return response.json()["access_token"]

    def api(self, username: str) -> httpx.Client:
        """The open API as this user, for setting up or cross-checking what a page shows."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token(username)}"},
                            timeout=60)

    def enterprise_user(self) -> tuple[str, int]:
        user = next(u for u in self.summary["logins"]["users"] if u["enterprise_id"] is not None)
        return user["username"], int(user["enterprise_id"])


@pytest.fixture(scope="session")
def console_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("console")
    data_dir = root / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(data_dir)}
    built = subprocess.run([sys.executable, "-m", "iotfin", "demo", "--headless", "--json", "--workspace", str(data_dir),
                            "--enterprises", "30", "--days", "100", "--seed", "42"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    summary = json.loads(built.stdout)
    password = summary["logins"]["password"]
    for username, role, tenant in EXTRA_USERS:
        done = subprocess.run([sys.executable, "-m", "iotfin", "users", "create", username, "--roles", role,
                               "--tenant", tenant, "--password", password], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    log = root / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "iotfin", "serve", "--http-port", str(port), "--mqtt-port",
                             str(free_port())], env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "iotfin serve did not come up:\n" + log.read_text()
            time.sleep(0.3)
    ws = Workspace(url, data_dir, password, summary, env)
    ws.users = {u["username"]: u for u in summary["logins"]["users"]}
    try:
        yield ws
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    """Chromium under Playwright's sync API, per test module: that API keeps an asyncio loop running in
    the main thread while it is open, so it must be closed before tests that call `asyncio.run`."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        missing_service(f"chromium at {CHROMIUM} (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        missing_service("the playwright package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


class GuardedPage:
    """A browser tab that records what must never happen: console errors, script errors, requests to
    other hosts, untranslated texts. `check()` fails the test with all of them."""

    def __init__(self, browser: Any, base_url: str, language: str = "zh"):
        self.base_url = base_url
        self.host = urlparse(base_url).netloc
        self.context = browser.new_context(base_url=base_url, locale="zh-CN" if language == "zh" else "en-US",
                                           viewport={"width": 1360, "height": 900})
        if language != "zh":
            self.context.add_cookies([{"name": "iotfin_lang", "value": language, "url": base_url}])
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        self.page.on("request", self._request)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            text = message.text
            # A page the test expects to be refused (403/404/401) logs its status as a console error in
            # chromium; those statuses are asserted by the test itself (`goto(..., status=...)`).
            if "Failed to load resource: the server responded with a status of 4" in text and self._expected_4xx:
                return
            self.problems.append(f"console error: {text} ({message.location})")

    _expected_4xx = False

    def _request(self, request: Any) -> None:
        parsed = urlparse(request.url)
        if parsed.scheme in ("data", "blob", "about"):
            return
        if parsed.netloc != self.host:
            self.problems.append(f"request to another host: {request.url}")

    def goto(self, path: str, status: int = 200) -> Any:
        self._expected_4xx = status >= 400
        response = self.page.goto(path)
        assert response is not None, path
        assert response.status == status, f"{path}: HTTP {response.status}, expected {status}\n{self.page.content()[:2000]}"
        self.check_texts()
        self._expected_4xx = False
        return response

    def check_texts(self) -> None:
        html = self.page.content()
        if MISSING_MARK in html:
            start = html.index(MISSING_MARK)
            self.problems.append(f"missing message on {self.page.url}: {html[start:start + 120]}")

    def sign_in(self, username: str, password: str, next_path: str = "/") -> None:
        self.goto(f"/signin?next={next_path}")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("form[action='/signin'] button[type=submit]")
        self.page.wait_for_load_state()
        assert "/signin" not in self.page.url, f"sign-in as {username} failed: {self.page.content()[:1500]}"
        self.check_texts()

    def wait_for_charts(self, timeout_ms: int = 15_000) -> None:
        """Every chart on the page drawn (or failed: then the failure is reported)."""
        # a locator, not wait_for_function: the console's CSP forbids evaluating script strings
        from playwright.sync_api import expect

        expect(self.page.locator("[data-chart-src]:not([data-ready]):not([data-error])")).to_have_count(
            0, timeout=timeout_ms)
        for error in self.page.locator("[data-chart-src][data-error]").all():
            self.problems.append(f"chart failed: {error.get_attribute('data-chart-src')}: {error.get_attribute('data-error')}")

    def screenshot(self, name: str) -> Path:
        """A screenshot for docs/console.md (docs/console/<name>.png), made by the test run."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def check(self) -> None:
        self.check_texts()
        assert not self.problems, "\n".join(self.problems)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browser_page(playwright_browser: Any, console_workspace: Workspace) -> Iterator[Any]:
    """A factory of guarded tabs on the seeded server: `tab = browser_page("en")`; all are checked at the end."""
    opened: list[GuardedPage] = []

    def open_tab(language: str = "zh") -> GuardedPage:
        tab = GuardedPage(playwright_browser, console_workspace.url, language)
        opened.append(tab)
        return tab

    yield open_tab
    try:
        for tab in opened:
            tab.check()
    finally:
        for tab in opened:
            tab.close()
