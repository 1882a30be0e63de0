"""What every console page stands on: the signed-in session, the language, CSRF, rendering, and the
in-process API through which pages read and act.

**A page never reads what the API would refuse**, by construction: a page gets its data by calling
the platform's own HTTP API in-process (httpx over ASGI, no socket), as the signed-in user, with a
bearer token minted for that user. Tenant isolation, scopes, consent checks and the access log are
the API's, unchanged; a refusal there is the same refusal on the page (403/404 with the API's reason).
This is the "backend for frontend" pattern; the price is ~1 ms of in-process HTTP per call, measured
in bench/console_pages.py.

Page modules (`iotfin.console.pages.*`) each define `router()` and `NAV`; they use:

    @r.get("/officer/applications")
    async def applications(page: Page = Depends(page_for("applications:read"))) -> HTMLResponse:
        data = await page.api.get("/api/v1/review-queue", limit=50)
        return page.render("officer/applications.html", items=data["items"])

    @r.post("/officer/applications/{id}/decision")
    async def decide(id: int, page: Page = Depends(form_for("applications:review"))) -> Response:
        form = await page.form()            # CSRF already checked by form_for
        await page.api.post(f"/api/v1/...", json={...})
        return page.redirect(f"/officer/applications/{id}", flash=page._("Decision recorded"))
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

import httpx
from fastapi import Request
from fastapi.responses import HTMLResponse, ORJSONResponse, RedirectResponse, Response
from jinja2 import ChainableUndefined, Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData

from iotfin.console.i18n import DEFAULT_LANGUAGE, Messages, language_of
from iotfin.identity.model import Principal
from iotfin.identity.sessions import ConsoleSession

SESSION_COOKIE = "iotfin_session"
LANGUAGE_COOKIE = "iotfin_lang"
SIGNIN_CSRF_COOKIE = "iotfin_signin_csrf"
FLASH_COOKIE = "iotfin_flash"
TEMPLATES = __import__("pathlib").Path(__file__).with_name("templates")

#: Every console response carries these: nothing loads from another host (offline by construction;
#: also what makes the browser tests' "no request leaves the host" hold), no framing, no sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class NavItem:
    """An entry of the console's navigation, shown to users holding `scope` (and, if given, one of `roles`)."""

    section: str          # msgid of the group heading
    label: str            # msgid
    path: str
    scope: str
    roles: tuple[str, ...] = ()
    platform_only: bool = False

    def visible_to(self, who: Principal) -> bool:
        if self.platform_only and not who.platform:
            return False
        return who.has(self.scope) and (not self.roles or bool(set(self.roles) & who.roles))


class PageError(Exception):
    """A page refused or failed: rendered as the console's error page with this status and reason."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}


class SignInRequired(Exception):
    """No live session: the user is sent to the sign-in page, then back to `next`."""

    def __init__(self, next_path: str):
        super().__init__(next_path)
        self.next_path = next_path


# --- templates ------------------------------------------------------------------------------------


def _environment(language: str) -> Environment:
    # ChainableUndefined: an optional field the API leaves out renders empty rather than failing the
    # page (API records vary: an assessment without model features, a loan without a schedule yet).
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      undefined=ChainableUndefined, extensions=["jinja2.ext.i18n"], auto_reload=False)
    messages = Messages(language)
    env.install_gettext_callables(messages.gettext, messages.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(messages.filters())
    env.globals["messages"] = messages
    env.globals["urlencode"] = urlencode
    env.filters["urldecode"] = unquote
    return env


_ENVIRONMENTS: dict[str, Environment] = {}


def environment(language: str) -> Environment:
    language = language_of(language)
    if language not in _ENVIRONMENTS:
        _ENVIRONMENTS[language] = _environment(language)
    return _ENVIRONMENTS[language]


def request_language(request: Request) -> str:
    return language_of(request.cookies.get(LANGUAGE_COOKIE) or DEFAULT_LANGUAGE)


def secure_cookies(request: Request) -> bool:
    configured = request.app.state.workspace.settings.console_secure_cookie
    if configured is not None:
        return bool(configured)
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def with_security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def server_timing(request: Request, response: Response) -> Response:
    """`Server-Timing: app;dur=<ms>` from the page's start (session check) to its response: what the
    browser's developer tools show, and what bench/console_pages.py reads."""
    started = getattr(request.state, "console_started", None)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


def chart_json(page: Page, body: dict[str, Any]) -> ORJSONResponse:
    """A chart's data for static/console.js: never cached (it is an enterprise's data, read under
    consent), timed like a page."""
    response = ORJSONResponse(body, headers={"Cache-Control": "no-store"})
    server_timing(page.request, response)
    return response


def render(request: Request, template: str, status: int = 200, session: ConsoleSession | None = None,
           **context: Any) -> HTMLResponse:
    """A page in the request's language. `session` (if signed in) provides the user, nav and CSRF token."""
    from iotfin.console.pages import nav_for  # the page registry imports this module

    language = request_language(request)
    env = environment(language)
    flash = request.cookies.get(FLASH_COOKIE)
    context = {"request": request, "language": language, "session": session,
               "who": session.principal if session else None,
               "csrf_token": session.csrf_token if session else "",
               "nav": nav_for(session.principal) if session else [],
               "flash": flash, "path": request.url.path, **context}
    html = env.get_template(template).render(context)
    response = HTMLResponse(html, status_code=status)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return server_timing(request, with_security_headers(response))  # type: ignore[return-value]


# --- the in-process API ---------------------------------------------------------------------------


class _Tokens:
    """Bearer tokens minted for console sessions, reused until a minute before they expire.

    Keyed by the workspace, the session and the principal as it is now: a user whose roles changed
    gets a new token on the next page (the session re-reads the user on every request)."""

    def __init__(self) -> None:
        self._by_session: dict[tuple[int, int, Principal], tuple[str, float]] = {}

    def for_session(self, request: Request, session: ConsoleSession) -> str:
        workspace = request.app.state.workspace
        key = (id(workspace), session.id, session.principal)
        hit = self._by_session.get(key)
        now = time.time()
        if hit is not None and hit[1] - 60 > now:
            return hit[0]
        token, ttl = workspace.tokens.issue(session.principal)
        if len(self._by_session) > 10_000:
            self._by_session.clear()  # bounded; tokens are cheap to mint again
        self._by_session[key] = (token, now + ttl)
        return token


_tokens = _Tokens()


class Api:
    """The platform's HTTP API, called in-process as the signed-in user."""

    def __init__(self, request: Request, session: ConsoleSession):
        self._request = request
        self._session = session

    def _client(self) -> httpx.AsyncClient:
        state = self._request.app.state
        client = getattr(state, "console_api_client", None)
        if client is None:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._request.app),
                                       base_url="http://console.internal", timeout=60.0)
            state.console_api_client = client
        return client

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   json: Any = None, headers: dict[str, str] | None = None, raw: bool = False) -> Any:
        token = _tokens.for_session(self._request, self._session)
        sent = {"Authorization": f"Bearer {token}", "Accept-Language": request_language(self._request),
                **(headers or {})}
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        response = await self._client().request(method, path, params=clean, json=json, headers=sent)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            if response.status_code == 401:
                raise SignInRequired(self._request.url.path)
            raise PageError(response.status_code, str(problem.get("detail") or problem.get("title") or ""), problem)
        if raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.call("POST", path, json=json, **kw)

    async def delete(self, path: str) -> Any:
        return await self.call("DELETE", path)


# --- the page context -----------------------------------------------------------------------------


@dataclass
class Page:
    """One request to a console page: who, in what language, the API as them, and how to answer."""

    request: Request
    session: ConsoleSession
    api: Api
    _form: FormData | None = field(default=None, repr=False)

    @property
    def who(self) -> Principal:
        return self.session.principal

    @property
    def language(self) -> str:
        return request_language(self.request)

    @property
    def messages(self) -> Messages:
        return environment(self.language).globals["messages"]

    def _(self, msgid: str, **params: Any) -> str:
        return self.messages.gettext(msgid, **params)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status=status, session=self.session, **context)

    def redirect(self, path: str, flash: str | None = None) -> RedirectResponse:
        """Post/redirect/get: after an action, show the result page, with a one-time message."""
        response = RedirectResponse(path, status_code=303)
        if flash:
            response.set_cookie(FLASH_COOKIE, quote(flash), httponly=True, samesite="strict", path="/",
                                secure=secure_cookies(self.request), max_age=60)
        return response

    async def form(self) -> FormData:
        if self._form is None:
            self._form = await self.request.form()
        return self._form


def current_session(request: Request) -> ConsoleSession | None:
    cached = getattr(request.state, "console_session", False)
    if cached is not False:
        return cached
    session = request.app.state.workspace.console_sessions.resume(request.cookies.get(SESSION_COOKIE))
    request.state.console_session = session
    return session


def page_for(*scopes: str, roles: tuple[str, ...] = ()) -> Callable[[Request], Awaitable[Page]]:
    """A dependency: the page context of a signed-in user holding the scopes (403 page otherwise)."""

    async def dependency(request: Request) -> Page:
        request.state.console_started = time.perf_counter()  # for the Server-Timing header (server_timing)
        session = current_session(request)
        if session is None:
            raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        missing = [s for s in scopes if not session.principal.has(s)]
        if missing or (roles and not set(roles) & session.principal.roles):
            raise PageError(403, f"this page needs the scope {' '.join(missing) or ' / '.join(roles)}")
        return Page(request, session, Api(request, session))

    return dependency


def form_for(*scopes: str, roles: tuple[str, ...] = ()) -> Callable[[Request], Awaitable[Page]]:
    """As `page_for`, for a form post: also checks the session's CSRF token (form field `csrf_token`,
    or the `X-CSRF-Token` header that htmx requests carry). A post without it is refused (403) and
    changes nothing."""
    base = page_for(*scopes, roles=roles)

    async def dependency(request: Request) -> Page:
        page = await base(request)
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            sent = str((await page.form()).get("csrf_token") or "")
        if not sent or not secrets.compare_digest(sent, page.session.csrf_token):
            raise PageError(403, "the form's security token is missing or wrong (CSRF); reload the page and try again")
        return page

    return dependency
