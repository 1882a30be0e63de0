"""The open-API world fixtures, shared with the sibling API test folders."""

from tests.openapi_world import shared_world, world  # noqa: F401  fixtures
