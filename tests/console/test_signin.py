"""Sign-in, sessions and the frame of every page, in a real browser: the cookie's flags, CSRF on every
form, sign-out, the language switch, failed-login throttling, and the offline API docs."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.console.conftest import Workspace

pytestmark = pytest.mark.slow


def test_playwright_drives_debian_chromium(playwright_browser: Any) -> None:
    """Smoke test of the pinned Playwright against the distribution's chromium: fails loudly when an
    upgrade of either breaks the pairing (Playwright supports only its bundled build officially)."""
    page = playwright_browser.new_page()
    try:
        page.set_content("<button onclick=\"this.textContent='clicked'\">go</button>")
        page.click("button")
        assert page.text_content("button") == "clicked"
        assert page.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.close()


def test_sign_in_sign_out_and_the_session_cookie(browser_page: Any, console_workspace: Workspace) -> None:
    tab = browser_page("zh")
    tab.goto("/signin")
    assert tab.page.locator("h1").inner_text() == "登录 iotfin 工作台"
    tab.sign_in("demo-operator", console_workspace.password)
    assert tab.page.locator("[data-testid=signed-in-as]").inner_text() == "demo-operator"
    cookie = next(c for c in tab.context.cookies() if c["name"] == "iotfin_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert not cookie["secure"]  # plain http on loopback; Secure over TLS (test_secure_cookie_over_tls)
    tab.page.click("[data-testid=signout]")
    tab.page.wait_for_url(re.compile(r".*/signin\?signed_out=1"))
    tab.check_texts()
    # the old cookie no longer opens a page: the session ended on the server, not only in the browser
    reused = httpx.get(f"{console_workspace.url}/", cookies={"iotfin_session": cookie["value"]}, follow_redirects=False)
    assert reused.status_code == 303 and reused.headers["location"] == "/signin"


def test_wrong_password_and_throttling(browser_page: Any, console_workspace: Workspace) -> None:
    tab = browser_page("en")
    for _ in range(5):
        tab.goto("/signin")
        tab.page.fill("input[name=username]", "bank-c-approver")
        tab.page.fill("input[name=password]", "not-the-password-1")
        tab.page.click("form[action='/signin'] button[type=submit]")
        assert tab.page.locator("[data-testid=signin-error]").inner_text() == "Unknown user or wrong password."
    # the sixth attempt is refused before the password is checked, even the right password
    tab.page.fill("input[name=username]", "bank-c-approver")
    tab.page.fill("input[name=password]", console_workspace.password)
    tab.page._expected_4xx = True
    tab.page.click("form[action='/signin'] button[type=submit]")
    assert "Too many failed sign-ins" in tab.page.locator("[data-testid=signin-error]").inner_text()
    assert "/signin" in tab.page.url
    tab.problems[:] = [p for p in tab.problems if "status of 401" not in p and "status of 429" not in p]


def test_a_form_post_without_its_csrf_token_is_refused(console_workspace: Workspace) -> None:
    with httpx.Client(base_url=console_workspace.url, follow_redirects=False) as client:
        form = client.get("/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        # sign-in itself: without the token (or with another one) nothing happens
        refused = client.post("/signin", data={"username": "demo-operator", "password": console_workspace.password})
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert "iotfin_session" not in refused.cookies
        signed_in = client.post("/signin", data={"username": "demo-operator", "password": console_workspace.password,
                                                 "csrf_token": token})
        assert signed_in.status_code == 303 and "iotfin_session" in signed_in.cookies
        # a signed-in form (sign-out) without the session's token: refused, the session lives on
        refused = client.post("/signout", data={})
        assert refused.status_code == 403 and "CSRF" in refused.text
        still = client.get("/", follow_redirects=False)
        assert still.headers.get("location") != "/signin"
        wrong = client.post("/signout", data={"csrf_token": token})  # the sign-in token is not the session's
        assert wrong.status_code == 403


def test_pages_need_a_session_and_come_back_after_sign_in(browser_page: Any, console_workspace: Workspace) -> None:
    tab = browser_page("en")
    tab.page.goto("/docs")  # not a console page: no session needed
    tab.page.goto("/")
    tab.page.wait_for_url(re.compile(r".*/signin"))
    assert tab.page.locator("h1").inner_text() == "Sign in to the iotfin console"


def test_language_switch_keeps_the_page(browser_page: Any, console_workspace: Workspace) -> None:
    tab = browser_page("zh")
    tab.goto("/signin")
    tab.page.click("a[hreflang=en]")
    tab.page.wait_for_url(re.compile(r".*/signin$"))
    assert tab.page.locator("h1").inner_text() == "Sign in to the iotfin console"
    tab.page.click("a[hreflang=zh-CN]")
    tab.page.wait_for_url(re.compile(r".*/signin$"))
    assert tab.page.locator("h1").inner_text() == "登录 iotfin 工作台"


def test_open_redirects_are_refused(console_workspace: Workspace) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = httpx.get(f"{console_workspace.url}/lang/en", params={"next": target}, follow_redirects=False)
        assert response.headers["location"] == "/", target


def test_api_docs_render_offline(browser_page: Any) -> None:
    """Swagger UI and ReDoc from the vendored assets: they render, and no request leaves the host."""
    tab = browser_page("en")
    tab.page.goto("/docs")
    tab.page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "iotfin" in tab.page.locator(".swagger-ui .info .title").inner_text()
    tab.page.goto("/redoc")
    tab.page.wait_for_selector("h1", timeout=20_000)
    assert "iotfin" in tab.page.locator("h1").first.inner_text()
