"""Request field types shared by routers, and the NUL-character rule.

No request text may contain the NUL character (U+0000): PostgreSQL cannot store it in text, and no
human text needs it. `refuse_nul`, a dependency every router except the device transport is
included with, refuses it anywhere in a request — a JSON string or key, a query parameter, the
path — with a 422 problem+json before the handler runs, so it never becomes a database error (a 500)
deep inside. `Text` additionally declares the rule in the OpenAPI schema of the fields that use it.
The device transport keeps its own rule: a bad payload is quarantined with a reason, not refused.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Request
from pydantic import Field

from iotfin.core.errors import ValidationError

NO_NUL = r"^[^\x00]*$"


def Text(max_length: int, min_length: int = 1, **kwargs: Any) -> Any:  # noqa: N802 - used like a type
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=NO_NUL, **kwargs)]


def _has_nul(value: Any) -> bool:
    """Whether any string in a parsed JSON value (keys included) holds a NUL; iterative, so a deeply
    nested body cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def refuse_nul(request: Request) -> None:
    """422 for a NUL character anywhere in the request's text (path, query, JSON body)."""
    if "\x00" in request.scope.get("path", "") or any(_has_nul(k) or _has_nul(v)
                                                      for k, v in request.query_params.multi_items()):
        raise ValidationError("the NUL character (U+0000) is not allowed in a request")
    if request.method in ("GET", "HEAD", "DELETE"):
        return
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/")):
        form = await request.form()  # cached by Starlette: the route has already parsed it
        if any(_has_nul(k) or _has_nul(v) for k, v in form.multi_items()):
            raise ValidationError("the NUL character (U+0000) is not allowed in a request")
        return
    body = await request.body()  # Starlette caches it: the route reads the same bytes
    # A raw NUL byte is invalid JSON and refused by the parser; in JSON a NUL is only ever the
    # escape \u0000, so the body is parsed for a closer look only when that escape is present.
    if b"\x00" in body and "json" not in request.headers.get("content-type", ""):
        raise ValidationError("the NUL character (U+0000) is not allowed in a request")
    if b"\\u0000" in body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return  # not JSON: the route's own validation answers
        if _has_nul(parsed):
            raise ValidationError("the NUL character (U+0000) is not allowed in a request")
