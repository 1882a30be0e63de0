"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from iotfin.core.errors import IotfinError, TooManyRequests, Unauthorized

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, code: str, instance: str | None = None, **extra) -> JSONResponse:
    body = {"type": f"https://iotfin.dev/problems/{code}", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    @app.exception_handler(IotfinError)
    async def _domain(request: Request, exc: IotfinError) -> JSONResponse:
        response = problem(exc.http_status, type(exc).__name__, str(exc), exc.code, request.url.path, **exc.problem_extra())
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.problem_extra()["retry_after"])
        elif isinstance(exc, Unauthorized) and request.url.path.startswith(("/api/v1/", "/oauth/")):
            response.headers["WWW-Authenticate"] = 'Bearer realm="iotfin"'
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        # the first field at fault by name (`field`, as a domain ValidationError names it)
        names = [str(p) for p in (errors[0]["loc"][1:] if errors else []) if isinstance(p, str)]
        extra = {"field": names[0]} if names else {}
        return problem(422, "Invalid request", "the request does not match the API contract", "validation",
                       request.url.path, errors=errors, **extra)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # An id or number beyond the database's 64-bit integers (SQLite's driver raises OverflowError
        # on binding it, PostgreSQL a DataError "bigint out of range"): bad input, not a server error.
        return problem(422, "Invalid request", "a number in the request is out of range", "validation",
                       request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail), f"http-{exc.status_code}", request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Anything else is a bug or an outage: a 500 problem with no internals in it (the server
        # still logs the exception, which Starlette re-raises after this response).
        return problem(500, "Internal Server Error", "an unexpected error occurred", "internal", request.url.path)


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "instance": {"type": "string"}},
    "additionalProperties": True,
}


def document(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API does on errors: every operation may answer with a
    problem+json (`default` response), and FastAPI's 422 schema is replaced by the problem schema
    the handlers above actually send."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        spec["components"]["schemas"].pop("HTTPValidationError", None)
        spec["components"]["schemas"].pop("ValidationError", None)
        problem_content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in spec.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                for code, response in responses.items():
                    if not code.startswith("2") and (code == "422" or "content" not in response):
                        response["content"] = problem_content
                responses["default"] = {"description": "an error, as RFC 9457 problem details", "content": problem_content}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
