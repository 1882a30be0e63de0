"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis): no
5xx, and every response conforms to the document (status code, content type, body schema).

Each operation is fuzzed twice: without credentials, and with the operator's token holding every
scope, so the generated bodies reach the handlers and the database. Bounded: a few examples per
operation and derandomized, so the run is reproducible and short (docs/api.md).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from tests.openapi_world import build_world

EXAMPLES = 4
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The device transport authenticates by the token in its path and has its own fuzz-free contract tests.
SKIP = ("/api/v1/{token}/", "/add-checkpoint")


@pytest.mark.slow
def test_fuzz_the_api_from_its_openapi_document(tmp_path) -> None:  # noqa: ANN001
    ws = Workspace(Settings(data_dir=tmp_path / "ws", rate_limit_per_s=10_000, rate_limit_burst=10_000))
    ws.initialise()
    try:
        world = build_world(ws)
        app = world.http.app
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        auth = world.headers("ops")
        operations = [r.ok() for r in schema.get_all_operations()]
        operations = [op for op in operations if not op.path.startswith(SKIP)]
        assert len(operations) >= 25
        failures = []
        for operation in operations:
            for headers in ({}, auth):
                try:
                    _fuzz(operation, headers)
                except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
                    failures.append(f"{operation.method.upper()} {operation.path} "
                                    f"({'auth' if headers else 'anonymous'}): {str(exc)[:600]}")
        assert failures == [], "\n\n".join(failures)
    finally:
        ws.close()


def _fuzz(operation, headers: dict[str, str]) -> None:  # noqa: ANN001
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case) -> None:  # noqa: ANN001
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)

    run()
