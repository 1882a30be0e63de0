"""Console pages: portal (see iotfin.console.pages)."""

from __future__ import annotations

from fastapi import APIRouter

from iotfin.console.web import NavItem

NAV: list[NavItem] = []


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    return r
