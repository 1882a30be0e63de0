"""Provenance: the envelope and its checks (pure), and the guard on the ingest path against a real
database — counters that survive a restart, requirements by device and by profile, rollback."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from iotfin.app.workspace import Workspace
from iotfin.core.errors import NotFound, ValidationError
from iotfin.devices.guard import ProvenanceGuard
from iotfin.devices.provenance import (
    ProvenanceRejected,
    open_envelope,
    seal_ed25519,
    seal_hmac,
    verify_mac,
    verify_signature,
)
from iotfin.ingest.group_commit import GroupCommitter
from iotfin.ingest.payloads import parse_telemetry
from iotfin.transports.provenance import store_verified, verify_message

SECRET = "11" * 32
PAYLOAD = b'{"ts": 1767225600000, "values": {"t": 21.5}}'


def _pub_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _rejected(guard: ProvenanceGuard, device_id: int, message: bytes) -> str:
    with pytest.raises(ProvenanceRejected) as caught:
        guard.check(device_id, orjson.loads(message))
    return caught.value.reason


# --- pure -------------------------------------------------------------------------------------------


def test_hmac_envelope_round_trip_and_every_byte_matters() -> None:
    sealed = orjson.loads(seal_hmac(SECRET, 7, PAYLOAD))
    assert set(sealed) == {"ctr", "mac", "payload"} and sealed["payload"] == PAYLOAD.decode()
    envelope = open_envelope(sealed)
    assert envelope is not None and envelope.ctr == 7 and verify_mac(bytes.fromhex(SECRET), envelope)
    assert not verify_mac(bytes.fromhex("22" * 32), envelope)
    for tampered in ({**sealed, "ctr": 8}, {**sealed, "payload": sealed["payload"].replace("21.5", "21.6")}):
        env = open_envelope(tampered)
        assert env is not None and not verify_mac(bytes.fromhex(SECRET), env)


def test_ed25519_envelope_verifies_only_with_its_key() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    envelope = open_envelope(orjson.loads(seal_ed25519(key, 3, PAYLOAD)))
    assert envelope is not None and envelope.sig is not None
    assert verify_signature(key.public_key(), envelope)
    assert not verify_signature(other.public_key(), envelope)


@pytest.mark.parametrize("data", [{"t": 1}, {"ctr": 1, "payload": "{}"}, [1, 2], {"ctr": 1, "payload": "{}", "mac": "00", "x": 1}])
def test_plain_telemetry_is_not_an_envelope(data: object) -> None:
    assert open_envelope(data) is None


@pytest.mark.parametrize("bad", [
    {"ctr": 0, "payload": "{}", "mac": "00" * 32},
    {"ctr": True, "payload": "{}", "mac": "00" * 32},
    {"ctr": 2**63, "payload": "{}", "mac": "00" * 32},
    {"ctr": 1, "payload": {"t": 1}, "mac": "00" * 32},
    {"ctr": 1, "payload": "{}", "mac": "zz" * 32},
    {"ctr": 1, "payload": "{}", "mac": "00" * 31},
    {"ctr": 1, "payload": "{}", "sig": "00" * 32},
])
def test_envelope_shape_with_bad_values_is_a_bad_signature(bad: dict) -> None:
    with pytest.raises(ProvenanceRejected) as caught:
        open_envelope(bad)
    assert caught.value.reason == "bad_signature"


# --- the guard against the system of record -------------------------------------------------------


def test_hmac_device_counters_replays_and_restart(workspace: Workspace) -> None:
    device = workspace.devices.create().id
    guard = workspace.device_runtime.guard
    secret = guard.issue_hmac_secret(device)
    guard.load(device)
    assert guard.check(device, {"t": 1}).ctr == 0  # not required: unsigned still accepted
    ok = guard.check(device, orjson.loads(seal_hmac(secret, 5, PAYLOAD)))
    assert ok.ctr == 5 and ok.data == orjson.loads(PAYLOAD)
    assert _rejected(guard, device, seal_hmac(secret, 5, PAYLOAD)) == "replayed_counter"
    assert _rejected(guard, device, seal_hmac(secret, 4, PAYLOAD)) == "replayed_counter"
    assert _rejected(guard, device, seal_hmac("22" * 32, 6, PAYLOAD)) == "bad_signature"
    assert guard.check(device, orjson.loads(seal_hmac(secret, 9, PAYLOAD))).ctr == 9  # gaps are fine
    guard.persist([(device, 9)])
    # a new process (restart) loads the persisted high-water mark
    fresh = ProvenanceGuard(workspace.engine, workspace.registry)
    fresh.load(device)
    assert _rejected(fresh, device, seal_hmac(secret, 9, PAYLOAD)) == "replayed_counter"
    assert fresh.check(device, orjson.loads(seal_hmac(secret, 10, PAYLOAD))).ctr == 10
    assert guard.rejected == {"bad_signature": 1, "replayed_counter": 2, "unsigned": 0}
    # rotation: the old secret stops verifying, the counter carries on
    new_secret = guard.issue_hmac_secret(device)
    guard.load(device)
    assert _rejected(guard, device, seal_hmac(secret, 11, PAYLOAD)) == "bad_signature"
    assert _rejected(guard, device, seal_hmac(new_secret, 9, PAYLOAD)) == "replayed_counter"


def test_required_by_device_and_by_profile(workspace: Workspace) -> None:
    devices = workspace.devices
    guard = workspace.device_runtime.guard
    plain = devices.create(profile="load_cell").id
    keyed = devices.create(profile="generic").id
    secret = guard.issue_hmac_secret(keyed, required=True)
    for d in (plain, keyed):
        guard.load(d)
    assert guard.check(plain, {"weight_t": 1}).ctr == 0
    assert _rejected(guard, keyed, b'{"t": 1}') == "unsigned"
    assert guard.check(keyed, orjson.loads(seal_hmac(secret, 1, PAYLOAD))).ctr == 1
    guard.set_profile_required("load_cell", True)
    guard.load(plain)
    assert _rejected(guard, plain, b'{"weight_t": 1}') == "unsigned"
    assert _rejected(guard, plain, seal_hmac(secret, 2, PAYLOAD)) == "bad_signature"  # no key of its own
    assert guard.describe(plain)["required_by_profile"] is True
    guard.set_profile_required("load_cell", False)
    guard.load(plain)
    assert guard.check(plain, {"weight_t": 1}).ctr == 0
    with pytest.raises(NotFound):
        guard.set_profile_required("no-such-profile", True)
    with pytest.raises(ValidationError):
        guard.register_public_key(keyed, "abcd")
    with pytest.raises(NotFound):
        guard.issue_hmac_secret(999_999)


def test_gateway_batch_signature_and_changes_from_another_process(workspace: Workspace) -> None:
    gateway = workspace.devices.create().id
    key = Ed25519PrivateKey.generate()
    guard = workspace.device_runtime.guard
    guard.load(gateway)
    assert guard.check(gateway, {"dev": [{"t": 1}]}).ctr == 0
    # another process registers the key: picked up by the periodic refresh
    other = ProvenanceGuard(workspace.engine, workspace.registry)
    other.register_public_key(gateway, _pub_hex(key), required=True)
    guard._next_refresh = 0.0  # the refresh interval has passed
    assert guard.needs_load(gateway)
    guard.load(gateway)
    batch = orjson.dumps({"meter-1": [{"ts": 1767225600000, "values": {"p": 1}}], "meter-2": {"p": 2}})
    assert guard.check(gateway, orjson.loads(seal_ed25519(key, 1, batch))).data["meter-2"] == {"p": 2}
    assert _rejected(guard, gateway, seal_ed25519(Ed25519PrivateKey.generate(), 2, batch)) == "bad_signature"
    assert _rejected(guard, gateway, batch) == "unsigned"


def test_counter_persisted_by_the_commit_and_rolled_back_when_the_store_fails(workspace: Workspace) -> None:
    device = workspace.devices.create().id
    guard = workspace.device_runtime.guard
    secret = guard.issue_hmac_secret(device, required=True)

    async def send(ctr: int, committer: GroupCommitter) -> None:
        message = seal_hmac(secret, ctr, b'{"ts": 1767225600000, "values": {"t": %d}}' % ctr)
        verified = await verify_message(workspace, device, orjson.loads(message), message, "test")
        parsed = parse_telemetry(verified.data, device, 0)
        await store_verified(workspace, committer, parsed, device, verified)

    async def scenario() -> None:
        good = GroupCommitter(workspace.ingest, "test", on_commit=guard.persist)
        await send(3, good)
        assert guard.describe(device)["counter"] == 3  # durable before the call returned
        broken = GroupCommitter(workspace.ingest, "test", on_commit=guard.persist)

        def fail(*_: object) -> None:
            raise OSError("disk full")

        broken._commit = fail  # type: ignore[method-assign]  # the store itself fails
        with pytest.raises(OSError):
            await send(4, broken)
        assert guard.describe(device)["counter"] == 3
        await send(4, good)  # the resend is not a replay
        with pytest.raises(ProvenanceRejected):
            await send(4, good)
        await good.close()
        await workspace.device_runtime.aclose()

    asyncio.run(scenario())
    assert guard.describe(device)["counter"] == 4
    events = workspace.device_runtime.events.query(device, tamper_only=True)
    assert [(e["kind"], e["tamper"]) for e in events] == [("replayed_counter", True)]
    assert workspace.quarantine.counts()["replayed_counter"] == 1
    # ctr 3 stored t=3; the resent ctr 4 has the same ts, so the first value stays (one point)
    series = workspace.telemetry.series(device, "t", 1767225600000, 1767225600001)
    assert series.num_rows == 1 and series["value"].to_pylist() == [3.0]
