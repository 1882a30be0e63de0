"""No 5xx for bad input: every route of the app's OpenAPI document is called with unknown ids, an
empty body and a body of wrong types, as the operator and as a lender; each answer is a 4xx (or a
2xx) with a reason, never a server error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from tests.openapi_world import World, build_world

UNKNOWN = {"integer": 987654, "string": "no-such-thing"}
WRONG_TYPES: dict[str, Any] = {"integer": "not-a-number", "number": "NaN-ish", "string": 12345, "boolean": "maybe",
                               "array": "not-a-list", "object": 7}
SKIP = {("POST", "/oauth/token")}  # a form endpoint with its own tests (tests/identity)


KNOWN = {"integer": 1, "string": "bank-a"}  # enterprise 1, tenant bank-a exist in the world


def _path(path: str, params: list[dict], ids: dict[str, Any]) -> str:
    types = {p["name"]: p.get("schema", {}).get("type", "string") for p in params if p.get("in") == "path"}
    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(types.get(m.group(1), "string"), "x")), path)


def _wrong_body(op: dict, components: dict) -> dict[str, Any]:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[1], {})
    props = schema.get("properties", {})
    return {name: WRONG_TYPES.get(p.get("type", "object"), 7) for name, p in props.items()}


def _calls(http: Any) -> list[tuple[str, str, list[Any]]]:
    doc = http.get("/openapi.json").json()
    components = doc.get("components", {}).get("schemas", {})
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE") or (method.upper(), path) in SKIP:
                continue
            params = op.get("parameters", []) + ops.get("parameters", [])
            bodies: list[Any] = [None] if method.upper() in ("GET", "DELETE") else [{}, _wrong_body(op, components), []]
            out.append((method.upper(), _path(path, params, UNKNOWN), bodies))
            if "{" in path:
                out.append((method.upper(), _path(path, params, KNOWN), bodies))
    return out


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """The open-API world, with the rate limit out of the way (every route is called several times)."""
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=db_url, rate_limit_per_s=100_000,
                            rate_limit_burst=100_000))
    ws.initialise()
    try:
        yield build_world(ws)
    finally:
        ws.close()


@pytest.mark.parametrize("who", ["ops", "bank_a"])
def test_no_route_answers_5xx_to_bad_input(world: World, who: str) -> None:
    http = world.http
    headers = world.headers(who)
    failures = []
    for method, path, bodies in _calls(http):
        for body in bodies:
            try:
                r = http.request(method, path, headers=headers, json=body) if body is not None else \
                    http.request(method, path, headers=headers)
            except Exception as exc:  # the test client re-raises what the app did not handle: a 500
                failures.append(f"{method} {path} {body!r} -> {type(exc).__name__}: {exc}"[:300])
                continue
            assert r.status_code != 429, "the rate limit hides the route"
            if r.status_code >= 500:
                failures.append(f"{method} {path} {body!r} -> {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
