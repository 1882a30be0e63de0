"""Access tokens resolved in batches (DeviceService.resolve_tokens, and the MQTT transport's
TokenLookups that batches a reconnect storm's connections into it), on both backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from iotfin.app.workspace import Workspace
from iotfin.transports.mqtt_device import TokenLookups


def test_resolve_tokens_answers_only_the_valid_ones_and_caches_them(workspace: Workspace) -> None:
    devices = workspace.devices
    live = [devices.create() for _ in range(3)]
    revoked = devices.create()
    devices.revoke_credentials(revoked.id)
    rotated = devices.create()
    devices.issue_token(rotated.id)  # the old token stops working now
    asked = [d.token for d in live] + [revoked.token, rotated.token, "no-such-token", "", "x" * 65]
    assert devices.resolve_tokens(asked) == {d.token: d.id for d in live}
    assert [devices.cached_token(d.token) for d in live] == [d.id for d in live]
    assert devices.cached_token(revoked.token) is None and devices.cached_token("no-such-token") is None
    devices.revoke_credentials(live[0].id)  # a revocation in this process evicts at once
    assert devices.cached_token(live[0].token) is None
    assert devices.resolve_tokens([live[0].token]) == {}


class CountingDevices:
    """The real device service, with its batched lookups counted (and, when asked, failing)."""

    def __init__(self, devices: Any, fail: bool = False):
        self.devices, self.fail, self.batches = devices, fail, []

    def cached_token(self, token: str) -> int | None:
        return self.devices.cached_token(token)  # type: ignore[no-any-return]

    def resolve_tokens(self, tokens: list[str]) -> dict[str, int]:
        self.batches.append(len(tokens))
        if self.fail:
            raise RuntimeError("database unavailable")
        return self.devices.resolve_tokens(tokens)  # type: ignore[no-any-return]


def test_a_storm_of_connections_shares_a_few_queries(workspace: Workspace) -> None:
    issued = [workspace.devices.create() for _ in range(1_200)]
    counting = CountingDevices(workspace.devices)
    lookups = TokenLookups(counting)

    async def storm() -> list[int | None]:
        # every device twice (a device reconnecting at once), and one unknown token
        tokens = [d.token for d in issued] * 2 + ["unknown"]
        return await asyncio.gather(*(lookups.resolve(t) for t in tokens))

    answers = asyncio.run(storm())
    assert answers == [d.id for d in issued] * 2 + [None]
    assert sum(counting.batches) == 1_201  # each token asked once, however many connections waited on it
    assert max(counting.batches) <= TokenLookups.MAX_BATCH and len(counting.batches) <= 4
    # now cached: answered without a query
    assert asyncio.run(lookups.resolve(issued[7].token)) == issued[7].id
    assert sum(counting.batches) == 1_201


def test_a_failed_lookup_fails_every_connection_waiting_on_it_and_the_next_storm_works(
        workspace: Workspace) -> None:
    issued = [workspace.devices.create() for _ in range(5)]
    counting = CountingDevices(workspace.devices, fail=True)
    lookups = TokenLookups(counting)

    async def storm() -> list[Any]:
        return await asyncio.gather(*(lookups.resolve(d.token) for d in issued), return_exceptions=True)

    assert all(isinstance(a, RuntimeError) for a in asyncio.run(storm()))
    counting.fail = False
    assert asyncio.run(storm()) == [d.id for d in issued]


@pytest.mark.parametrize("count", [1, TokenLookups.MAX_BATCH + 1])
def test_connections_through_the_mqtt_handler_authenticate_by_batched_tokens(workspace: Workspace, count: int) -> None:
    from iotfin.transports.mqtt_device import DeviceApiHandler

    issued = [workspace.devices.create() for _ in range(count)]
    handler = DeviceApiHandler(workspace)  # type: ignore[arg-type]

    async def connect_all() -> list[Any]:
        identities = await asyncio.gather(*(handler.authenticate(f"c{i}", d.token, None, 4)
                                            for i, d in enumerate(issued)))
        refused = await handler.authenticate("c-bad", "not-a-token", None, 4)
        await workspace.device_runtime.aclose()
        return [*identities, refused]

    answers = asyncio.run(connect_all())
    assert [a.device_id for a in answers[:-1]] == [d.id for d in issued] and answers[-1] is None
