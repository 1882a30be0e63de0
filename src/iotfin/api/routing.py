"""The platform's `APIRouter`: FastAPI's, with a quick refusal of paths none of its routes can match.

FastAPI (0.165) matches a request against the app's included routers one after another, and each
included router tries every one of its routes (a regular expression, and bookkeeping in the request
scope per route) before the next router gets its turn — then the chosen router matches once more to
dispatch. With the platform's ~80 routes in 13 routers, a request for a route near the end paid
~0.2 ms for matching alone: a quarter of the CPU of a 20-item complaints page served from an API
worker (py-spy, `bench/api_read.py --api-workers 2`). This router first compares the path with the
literal beginning of each of its routes (`/api/v1/complaints/` of `/api/v1/complaints/{id}`); when
none fits, no route's pattern could match either, and the router answers "no match" at once. A path
that fits goes through FastAPI's own matching unchanged (405s, path parameters, the effective route
context).

Include these routers without a `prefix=` (the platform's routers carry their prefix themselves):
the literal beginnings are taken from the routes' own paths.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope


class ApiRouter(APIRouter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._literal_starts: tuple[str, ...] = ("",)
        self._literal_starts_of = -1  # number of routes they were computed for

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(self._starts()):
            return Match.NONE, {}
        return super().matches(scope)

    def _starts(self) -> tuple[str, ...]:
        if self._literal_starts_of != len(self.routes):
            paths = [getattr(route, "path", None) for route in self.routes]
            # a route without a path (a Host) could match anything: no shortcut then
            self._literal_starts = ("",) if None in paths else tuple({p.split("{", 1)[0] for p in paths})
            self._literal_starts_of = len(self.routes)
        return self._literal_starts
