"""The console's own routes: sign-in and sign-out, the language switch, the home redirect, the
vendored static assets and the offline API docs (Swagger UI and ReDoc served from this host)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import Depends, FastAPI, Form, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from iotfin.api.routing import ApiRouter
from iotfin.console import pages
from iotfin.console.i18n import LOCALES
from iotfin.console.web import (
    FLASH_COOKIE,
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    SIGNIN_CSRF_COOKIE,
    Page,
    PageError,
    SignInRequired,
    current_session,
    form_for,
    render,
    secure_cookies,
    with_security_headers,
)
from iotfin.core.errors import TooManyRequests, Unauthorized

STATIC = Path(__file__).with_name("static")
#: Vendored front-end assets and their pinned versions (static/vendor/VERSIONS.md says where from).
SWAGGER_JS = "/static/vendor/swagger-ui-5.35.0/swagger-ui-bundle.js"
SWAGGER_CSS = "/static/vendor/swagger-ui-5.35.0/swagger-ui.css"
REDOC_JS = "/static/vendor/redoc-2.5.2/redoc.standalone.js"
FAVICON = "/static/favicon.svg"


def safe_next(value: str | None) -> str:
    """Only a path on this host: an open redirect to another site would make the sign-in page a phishing aid."""
    value = unquote(value or "/")
    if not value.startswith("/") or value.startswith("//") or "\\" in value or "\n" in value or "\r" in value:
        return "/"
    return value


def install(app: FastAPI) -> None:
    """Serve the console, its assets and the offline API docs on the platform's HTTP app."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router())
    for page_router in pages.routers():
        app.include_router(page_router)

    @app.exception_handler(PageError)
    async def _refused(request: Request, exc: PageError) -> Response:
        return render(request, "error.html", status=exc.status, session=current_session(request),
                      status_code=exc.status, detail=exc.detail, problem=exc.problem)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = f"/signin?next={quote(exc.next_path, safe='')}"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)


def router() -> ApiRouter:
    r = ApiRouter(include_in_schema=False)

    @r.get("/")
    async def home(request: Request) -> Response:
        session = current_session(request)
        if session is None:
            return RedirectResponse("/signin", status_code=303)
        for _, items in pages.nav_for(session.principal):
            return RedirectResponse(items[0].path, status_code=303)
        return render(request, "home.html", session=session)

    @r.get("/signin")
    async def signin_form(request: Request, next: str = "/") -> Response:
        return _signin_page(request, safe_next(next))

    @r.post("/signin")
    async def signin(request: Request, username: Annotated[str, Form(max_length=100)] = "",
                     password: Annotated[str, Form(max_length=200)] = "",
                     csrf_token: Annotated[str, Form(max_length=100)] = "",
                     next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
        expected = request.cookies.get(SIGNIN_CSRF_COOKIE) or ""
        if not csrf_token or not expected or not secrets.compare_digest(csrf_token, expected):
            raise PageError(403, "the form's security token is missing or wrong (CSRF); reload the page and try again")
        address = request.client.host if request.client else None
        try:
            secret, _ = await run_in_threadpool(request.app.state.workspace.console_sessions.sign_in,
                                                username, password, address)
        except TooManyRequests:
            return _signin_page(request, safe_next(next), status=429, error="too_many", username=username)
        except Unauthorized:
            return _signin_page(request, safe_next(next), status=401, error="wrong", username=username)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax", path="/",
                            secure=secure_cookies(request))
        response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/signin")
        return response

    @r.post("/signout")
    async def signout(request: Request, page: Annotated[Page, Depends(form_for())]) -> Response:
        request.app.state.workspace.console_sessions.sign_out(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/signin?signed_out=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @r.get("/lang/{language}")
    async def switch_language(request: Request, language: str, next: str = "/") -> Response:
        if language not in LOCALES:
            raise PageError(404, f"no console language {language!r} (zh, en)")
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(LANGUAGE_COOKIE, language, samesite="lax", path="/", max_age=365 * 86400,
                            secure=secure_cookies(request))
        return response

    @r.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        # browsers ask for it on any document without an icon link (a chart's JSON opened as a page)
        return RedirectResponse(FAVICON, status_code=308)

    # --- the API docs, offline: the vendored Swagger UI and ReDoc, no font or script from a CDN ---

    @r.get("/docs")
    async def swagger(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=request.app.openapi_url or "/openapi.json", title="iotfin API",
                                   swagger_js_url=SWAGGER_JS, swagger_css_url=SWAGGER_CSS,
                                   swagger_favicon_url=FAVICON, oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_ui_parameters={"validatorUrl": None})

    @r.get("/docs/oauth2-redirect")
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @r.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=request.app.openapi_url or "/openapi.json", title="iotfin API",
                              redoc_js_url=REDOC_JS, redoc_favicon_url=FAVICON, with_google_fonts=False)

    return r


def _signin_page(request: Request, next_path: str, status: int = 200, error: str | None = None,
                 username: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "signin.html", status=status, next_path=next_path, signin_csrf=token,
                      error=error, username=username, signed_out=bool(request.query_params.get("signed_out")))
    response.set_cookie(SIGNIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/signin",
                        secure=secure_cookies(request))
    response.delete_cookie(FLASH_COOKIE, path="/")
    return with_security_headers(response)
