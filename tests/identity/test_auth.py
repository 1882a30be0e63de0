"""Tokens: the OAuth2 grants, and every way a token can be wrong (none, malformed, expired, forged,
unknown key, retired key, wrong scope); rate limits; signing-key rotation."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from fastapi.testclient import TestClient

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.keyring import KeyRing
from iotfin.identity.model import Principal
from iotfin.identity.tokens import TokenIssuer
from tests.openapi_world import PASSWORD, World, build_world

PROBLEM = "application/problem+json"


def problem(response, status: int, code: str) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    body = response.json()
    assert body["type"] == f"https://iotfin.dev/problems/{code}" and body["status"] == status
    return body


def test_client_credentials_in_form_and_basic(shared_world: World) -> None:
    w, cred = shared_world, shared_world.credentials["bank_a"]
    form = w.http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                              "client_secret": cred["client_secret"]})
    assert form.status_code == 200, form.text
    body = form.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert set(body["scope"].split()) == set(cred["scopes"])
    basic = base64.b64encode(f"{cred['client_id']}:{cred['client_secret']}".encode()).decode()
    viabasic = w.http.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "financing:read"},
                           headers={"Authorization": f"Basic {basic}"})
    assert viabasic.status_code == 200 and viabasic.json()["scope"] == "financing:read"
    me = w.http.get("/api/v1/me", headers={"Authorization": f"Bearer {viabasic.json()['access_token']}"}).json()
    assert me == {"subject": f"client:{cred['client_id']}", "tenant": "bank-a", "tenant_id": me["tenant_id"],
                  "enterprise_id": None, "platform": False, "roles": [], "scopes": ["financing:read"]}


def test_bad_credentials_are_401_and_leak_nothing(shared_world: World) -> None:
    w, cred = shared_world, shared_world.credentials["bank_a"]
    for form in ({"client_id": cred["client_id"], "client_secret": cred["client_secret"] + "x"},
                 {"client_id": "ic_0000000000000000", "client_secret": cred["client_secret"]},
                 {"client_id": cred["client_id"], "client_secret": ""}):
        r = w.http.post("/oauth/token", data={"grant_type": "client_credentials", **form})
        body = problem(r, 401, "unauthorized")
        assert cred["client_secret"] not in r.text and "argon" not in body["detail"]
    wrong_user = w.http.post("/oauth/token", data={"grant_type": "password", "username": "a_officer", "password": "nope"})
    problem(wrong_user, 401, "unauthorized")
    unsupported = w.http.post("/oauth/token", data={"grant_type": "authorization_code", "code": "x"})
    problem(unsupported, 422, "validation")
    more_scope = w.http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                                   "client_secret": cred["client_secret"], "scope": "ledger:evidence"})
    problem(more_scope, 403, "forbidden")
    unknown_scope = w.http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                                      "client_secret": cred["client_secret"], "scope": "root"})
    problem(unknown_scope, 422, "validation")


def test_console_user_gets_its_roles_scopes(shared_world: World) -> None:
    me = shared_world["a_auditor"].me()
    assert me["roles"] == ["auditor"] and me["tenant"] == "bank-a"
    assert "ledger:evidence" in me["scopes"] and "financing:write" not in me["scopes"]
    admin = shared_world["admin"].me()
    assert admin["platform"] is True and "identity:manage" in admin["scopes"]
    e1 = shared_world["e1_admin"].me()
    assert e1["enterprise_id"] == 1 and e1["tenant"] is None and "complaints:submit" in e1["scopes"]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Token abc", "Bearer not-a-jwt",
                                    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_missing_or_malformed_token(shared_world: World, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = shared_world.http.get("/api/v1/complaints", headers=headers)
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")


def _forge(claims: dict, key: bytes, kid: str, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def test_expired_forged_and_unknown_key_tokens(shared_world: World) -> None:
    w = shared_world
    tokens: TokenIssuer = w.ws.tokens
    who = Principal(subject="client:x", tenant_id=1, tenant_code="bank-a", scopes=frozenset({"complaints:read"}))
    expired, _ = tokens.issue(who, now=time.time() - 3600)
    assert "expired" in problem(w.http.get("/api/v1/complaints", headers={"Authorization": f"Bearer {expired}"}),
                                401, "unauthorized")["detail"]
    good, _ = tokens.issue(who)
    claims = jwt.decode(good, options={"verify_signature": False})
    forged_scope = _forge(claims | {"scope": "complaints:read identity:manage", "plt": True}, b"x" * 32,
                          tokens.keys.active_kid)
    problem(w.http.get("/api/v1/complaints", headers={"Authorization": f"Bearer {forged_scope}"}), 401, "unauthorized")
    unknown_kid = _forge(claims, tokens.keys.active_key, "k-not-there")
    problem(w.http.get("/api/v1/complaints", headers={"Authorization": f"Bearer {unknown_kid}"}), 401, "unauthorized")
    header, payload, sig = good.split(".")
    tampered_payload = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(b'"plt":false', b'"plt":true ')).decode().rstrip("=")
    tampered = f"{header}.{tampered_payload}.{sig}"
    problem(w.http.get("/api/v1/complaints", headers={"Authorization": f"Bearer {tampered}"}), 401, "unauthorized")
    wrong_audience = _forge(claims | {"aud": "someone-else"}, tokens.keys.active_key, tokens.keys.active_kid)
    problem(w.http.get("/api/v1/complaints", headers={"Authorization": f"Bearer {wrong_audience}"}), 401, "unauthorized")
    ok = w.http.get("/api/v1/complaints", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200, ok.text


def test_wrong_scope_is_403(shared_world: World) -> None:
    w = shared_world
    w["a_officer"]  # created on first use
    narrow = w.http.post("/oauth/token", data={"grant_type": "password", "username": "a_officer",
                                               "password": PASSWORD, "scope": "financing:read"}).json()["access_token"]
    r = w.http.get("/api/v1/complaints", headers={"Authorization": f"Bearer {narrow}"})
    assert "complaints:read" in problem(r, 403, "forbidden")["detail"]


def test_signing_key_rotation_and_retirement(workspace: Workspace) -> None:
    world = build_world(workspace)
    before = world.token("bank_a")
    old_kid = workspace.tokens.keys.active_kid
    # Rotated by another process (the CLI) on the same workspace: the server picks the new key up.
    other = KeyRing(workspace.tokens.keys.path)
    new_kid = other.rotate()
    after = world["bank_a"].token(refresh=True)
    assert jwt.get_unverified_header(after)["kid"] == new_kid != old_kid
    for token in (before, after):
        assert world.http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    other.retire(old_kid)
    workspace.tokens.keys.reload()
    problem(world.http.get("/api/v1/me", headers={"Authorization": f"Bearer {before}"}), 401, "unauthorized")
    assert world.http.get("/api/v1/me", headers={"Authorization": f"Bearer {after}"}).status_code == 200


def test_rate_limit_per_client(tmp_path) -> None:  # noqa: ANN001
    ws = Workspace(Settings(data_dir=tmp_path / "ws", rate_limit_per_s=0.5, rate_limit_burst=3))
    ws.initialise()
    try:
        world = build_world(ws)
        a, b = world.headers("bank_a"), world.headers("bank_b")
        statuses = [world.http.get("/api/v1/me", headers=a).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = world.http.get("/api/v1/me", headers=a)
        body = problem(limited, 429, "rate-limited")
        assert int(limited.headers["retry-after"]) == body["retry_after"] >= 1
        # another client has its own bucket
        assert world.http.get("/api/v1/me", headers=b).status_code == 200
    finally:
        ws.close()


def test_unauthenticated_endpoints_stay_open(shared_world: World) -> None:
    http = shared_world.http
    assert http.get("/healthz").status_code == 200
    assert http.get("/api/v1/ledger/key").status_code == 200
    spec = http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"


def test_clients_need_an_owner_and_known_scopes(shared_world: World) -> None:
    from iotfin.core.errors import NotFound, ValidationError

    ident = shared_world.ws.identity
    with pytest.raises(ValidationError, match="unknown scope"):
        ident.create_client("x", "financing:read god:mode", tenant="bank-a")
    with pytest.raises(ValidationError, match="cannot be given"):
        ident.create_client("x", "identity:manage", tenant="bank-a")
    with pytest.raises(ValidationError, match="cannot be given"):
        ident.create_client("x", "financing:write", enterprise_id=1)
    with pytest.raises(NotFound):
        ident.create_client("x", "financing:read", tenant="bank-zzz")
    with pytest.raises(ValidationError, match="tenant"):
        ident.create_client("x", "financing:read")
    with pytest.raises(ValidationError, match="12 characters"):
        ident.create_user("shorty", "short", ["auditor"], tenant="bank-a")
    with pytest.raises(ValidationError, match="platform operator"):
        ident.create_user("fake-admin", PASSWORD, ["platform_admin"], tenant="bank-a")


def test_deactivated_client_gets_no_token(workspace: Workspace) -> None:
    world = build_world(workspace)
    cred = world.credentials["bank_b"]
    workspace.identity.deactivate_client(cred["client_id"])
    r = TestClient(create_app(workspace, background=False)).post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                              "client_secret": cred["client_secret"]})
    problem(r, 401, "unauthorized")
