"""The open-API world fixtures, shared with the sibling API test folders."""

import pytest

from tests.openapi_world import shared_world, world  # noqa: F401  fixtures


@pytest.fixture(autouse=True)
def local_receiver_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery tests run their receiver on 127.0.0.1: the operator allowlist lets them reach it."""
    monkeypatch.setenv("IOTFIN_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
