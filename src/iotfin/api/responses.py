"""The platform's JSON response: money as decimal strings, datetimes in ISO 8601 (`core.jsonout`).

A `JSONResponse` subclass, so that FastAPI documents routes using it as JSON (any value) rather
than as a plain string, which schema-checking clients then reject.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from iotfin.core.jsonout import dumps


class DecimalJSONResponse(JSONResponse):
    """JSON with money as decimal strings. FastAPI's default encoder would turn Decimal into float."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode()
