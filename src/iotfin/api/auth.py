"""Authentication and authorisation at the HTTP edge.

`principal` is the dependency every protected route takes: it reads the bearer token, verifies it,
charges the caller's rate-limit bucket and returns the `Principal`. `require(scope, ...)` builds a
dependency that also checks scopes or roles. `POST /oauth/token` issues tokens (RFC 6749): the
`client_credentials` grant for partner systems and the `password` grant for console users.

How routers apply tenant isolation (see docs/api.md#tenant-isolation):

    @r.get("/things/{id}")
    def read(id: int, who: Principal = Depends(require("things:read"))):
        row = store.get(id)
        who.ensure_visible(row.tenant_id, row.enterprise_id, f"thing {id}")   # 404 for others' rows

    stmt = owned_by(select(Thing), who, Thing.tenant_id, Thing.enterprise_id)  # list only the caller's

A lender's read of an enterprise's data also goes through `consented(request, who, enterprise_id,
scope, purpose)`: it is checked against the enterprise's grants and written to the access log, and
refused (403, with the reason in zh-CN and en) without a grant. The enterprise reading its own data
and the operator are not checked (docs/api.md#consent-at-the-edge).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlowPassword, OAuthFlows
from fastapi.security import OAuth2

from iotfin.api.routing import ApiRouter
from iotfin.consent.model import REASONS
from iotfin.consent.service import ReadRequest
from iotfin.core.errors import Forbidden, Unauthorized, ValidationError
from iotfin.core.time import business_date, utc_now
from iotfin.identity.access import owned_by
from iotfin.identity.model import SCOPES, Principal

__all__ = ["consented", "consented_many", "owned_by", "principal", "require", "router"]

oauth2 = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=SCOPES),
                     password=OAuthFlowPassword(tokenUrl="/oauth/token", scopes=SCOPES)),
    scheme_name="oauth2", description="Bearer tokens from POST /oauth/token", auto_error=False,
)


async def principal(request: Request, authorization: Annotated[str | None, Depends(oauth2)]) -> Principal:
    """The verified caller. 401 without a valid bearer token, 429 over the rate limit.

    Async on purpose: verifying an HS256 token is ~30 µs of CPU, cheaper than the thread-pool hop
    FastAPI makes for a sync dependency."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if not authorization:
        raise Unauthorized("this endpoint needs a bearer token (POST /oauth/token)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    app_state = request.app.state
    who = app_state.workspace.tokens.verify(token.strip())
    app_state.rate_limits.take(who.subject)
    request.state.principal = who
    return who


def require(*scopes: str, roles: tuple[str, ...] = ()) -> Callable[..., Principal]:
    """A dependency: the caller, who must hold every scope given (and one of `roles`, if given)."""

    async def dependency(who: Annotated[Principal, Depends(principal)]) -> Principal:
        who.require(*scopes, roles=roles)
        return who

    return dependency


def consented(request: Request, who: Principal, enterprise_id: int, scope: str, purpose: str, detail: str,
              data_range: tuple[date, date] | None = None) -> None:
    """Check a lender's read of `enterprise_id`'s data against its consents (logged either way);
    Forbidden when refused. Nothing to check for the enterprise itself or the operator. `data_range`:
    the business dates of the data read (default today), checked against the grant's window."""
    if who.platform or who.enterprise_id == enterprise_id:
        return
    if who.tenant_code is None:
        raise Forbidden("only the enterprise, a lender with its consent, or the operator may read this")
    today = business_date(utc_now())
    decision = request.app.state.workspace.consent.check(who.tenant_code, enterprise_id, scope, purpose,
                                                         data_range or (today, today), detail=detail)
    if not decision.allowed:
        zh, en = REASONS[decision.reason]
        raise Forbidden(f"no consent from enterprise {enterprise_id} for {scope} ({purpose}): {en} / {zh}")


def consented_many(request: Request, who: Principal, enterprise_ids: set[int], scope: str, purpose: str,
                   detail: str) -> set[int]:
    """Of `enterprise_ids`, those whose data the caller may read (one grant query, every read logged)."""
    if who.platform:
        return set(enterprise_ids)
    if who.enterprise_id is not None:
        return {e for e in enterprise_ids if e == who.enterprise_id}
    if who.tenant_code is None or not enterprise_ids:
        return set()
    today = business_date(utc_now())
    decisions = request.app.state.workspace.consent.check_many(
        who.tenant_code, sorted(enterprise_ids), [ReadRequest(scope, purpose, today, today)], detail=detail)
    return {eid for eid, ds in decisions.items() if ds and ds[0].allowed}


def router() -> APIRouter:
    r = ApiRouter(tags=["identity"])

    @r.post("/oauth/token", responses={401: {"description": "unknown client or wrong secret"}})
    def token(
        request: Request,
        grant_type: Annotated[str, Form(pattern="^(client_credentials|password)$")],
        client_id: Annotated[str | None, Form(max_length=200)] = None,
        client_secret: Annotated[str | None, Form(max_length=200)] = None,
        username: Annotated[str | None, Form(max_length=200)] = None,
        password: Annotated[str | None, Form(max_length=200)] = None,
        scope: Annotated[str | None, Form(max_length=1000)] = None,
    ) -> dict[str, Any]:
        """OAuth2 token endpoint (RFC 6749): `client_credentials` (client id and secret in the form or
        HTTP Basic) for partner systems, `password` for console users. Returns a short-lived JWT."""
        state = request.app.state
        peer = request.client.host if request.client else "unknown"
        state.login_limits.take(f"ip:{peer}")  # slows guessing secrets from one address
        identity = state.workspace.identity
        if grant_type == "client_credentials":
            cid, secret = _basic(request) or (client_id, client_secret)
            if not cid or not secret:
                raise Unauthorized("client_credentials needs client_id and client_secret")
            who = identity.authenticate_client(cid, secret)
        else:
            if not username or not password:
                raise ValidationError("the password grant needs username and password")
            who = identity.authenticate_user(username, password)
        return identity.token(who, scope)

    @r.get("/api/v1/me")
    async def me(who: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        """The caller as the platform sees it: subject, tenant or enterprise, roles, scopes."""
        return {"subject": who.subject, "tenant": who.tenant_code, "tenant_id": who.tenant_id,
                "enterprise_id": who.enterprise_id, "platform": who.platform, "roles": sorted(who.roles),
                "scopes": sorted(who.scopes)}

    return r


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        cid, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized("malformed HTTP Basic credentials") from None
    return cid, secret
