"""`ApiRouter` refuses paths none of its routes can start with, and otherwise routes exactly as
FastAPI's `APIRouter` does: matches, path parameters, 405 for a known path, 404, slash redirects, a
root path behind a proxy, routes added later."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from iotfin.api.routing import ApiRouter
from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace


def _app(router_class: type[APIRouter]) -> tuple[FastAPI, APIRouter]:
    things = router_class(prefix="/api/v1")

    @things.get("/things")
    def list_things() -> dict:
        return {"route": "list"}

    @things.get("/things/{thing_id}")
    def get_thing(thing_id: int) -> dict:
        return {"route": "one", "id": thing_id}

    @things.post("/things/{thing_id}/archive")
    def archive(thing_id: int) -> dict:
        return {"route": "archive", "id": thing_id}

    catch_all = router_class()

    @catch_all.get("/{page}/about")
    def about(page: str) -> dict:
        return {"route": "about", "page": page}

    app = FastAPI()
    app.include_router(things)
    app.include_router(catch_all)
    return app, things


REQUESTS = [
    ("GET", "/api/v1/things"), ("GET", "/api/v1/things/7"), ("GET", "/api/v1/things/x"),
    ("POST", "/api/v1/things/7/archive"), ("GET", "/api/v1/things/7/archive"), ("DELETE", "/api/v1/things"),
    ("GET", "/api/v1/things/"), ("GET", "/api/v1/thing"), ("GET", "/api/v2/things"), ("GET", "/docs/about"),
    ("GET", "/api/about"), ("GET", "/nothing"), ("GET", "/"),
]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_routes_like_fastapis_router(method: str, path: str) -> None:
    ours = TestClient(_app(ApiRouter)[0], follow_redirects=False).request(method, path)
    fastapi = TestClient(_app(APIRouter)[0], follow_redirects=False).request(method, path)
    assert (ours.status_code, ours.content, ours.headers.get("location")) == \
           (fastapi.status_code, fastapi.content, fastapi.headers.get("location"))


def test_statuses_of_the_cases_above() -> None:
    client = TestClient(_app(ApiRouter)[0], follow_redirects=False)
    statuses = {(m, p): client.request(m, p).status_code for m, p in REQUESTS}
    assert statuses[("GET", "/api/v1/things/7")] == 200 and client.get("/api/v1/things/7").json()["id"] == 7
    assert statuses[("GET", "/api/v1/things/x")] == 422
    assert statuses[("GET", "/api/v1/things/7/archive")] == 405 == statuses[("DELETE", "/api/v1/things")]
    assert statuses[("GET", "/api/v1/things/")] == 307  # redirect_slashes still finds /api/v1/things
    assert statuses[("GET", "/api/v2/things")] == 404 == statuses[("GET", "/nothing")]
    assert client.get("/docs/about").json() == {"route": "about", "page": "docs"}  # a parameter in the first segment


def test_behind_a_root_path_and_with_routes_added_later() -> None:
    app, things = _app(ApiRouter)
    proxied = TestClient(app, root_path="/gateway")
    assert proxied.get("/api/v1/things/3").json() == {"route": "one", "id": 3}
    client = TestClient(app)
    assert client.get("/api/v1/widgets").status_code == 404

    @things.get("/widgets")
    def widgets() -> dict:
        return {"route": "widgets"}

    assert client.get("/api/v1/widgets").json() == {"route": "widgets"}


def test_every_router_of_the_platform_is_an_api_router(sqlite_workspace: Workspace) -> None:
    """A plain APIRouter included in the app would be scanned route by route for every request."""
    from fastapi.routing import _IncludedRouter  # FastAPI's record of an include_router call

    app = create_app(sqlite_workspace, background=False)
    included = [route.original_router for route in app.router.routes if isinstance(route, _IncludedRouter)]
    assert len(included) >= 13
    assert all(isinstance(router, ApiRouter) for router in included), \
        [type(router).__name__ for router in included]
