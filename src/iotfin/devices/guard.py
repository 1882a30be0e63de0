"""The provenance check on the ingest path: keys, requirements and replay counters per device.

Cost model (what runs per message): a numpy read of the device's policy byte, and only for devices
with keys a dict lookup, one HMAC (~3.5 µs) or one Ed25519 verify per *batch* (~160 µs). Counters
are a dense int64 array indexed by device id (8 bytes per device slot), so 11 M devices cost 88 MB
and no Python object per device; keys are held only for devices that have them.

Counters survive restarts without a database write per message: a verified message's counter goes
with its readings into the group commit (`pending` below), and each commit persists the counters
of the messages it stored in one statement before any of them is acknowledged. If a commit fails,
the counters it carried are rolled back in memory, so the client's resend is not taken for a replay.

Keys and requirements set by another process (the CLI, while `iotfin serve` runs) are picked up by
a refresh every `refresh_s` seconds: one query for rows changed since the last refresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine

from iotfin.core.errors import MalformedPayload, NotFound
from iotfin.db.engine import write_transaction
from iotfin.devices import store
from iotfin.devices.provenance import (
    BAD_SIGNATURE,
    REPLAYED_COUNTER,
    UNSIGNED,
    ProvenanceRejected,
    new_hmac_secret,
    open_envelope,
    parse_public_key,
    verify_mac,
    verify_signature,
)
from iotfin.devices.registry import DeviceRegistry

_UNKNOWN, _OPEN, _KEYED = 0, 1, 2  # policy byte per device: not loaded, no keys and not required, see _keys


@dataclass(slots=True)
class _Keys:
    secret: bytes | None
    public: Ed25519PublicKey | None
    required: bool


@dataclass(frozen=True, slots=True)
class Verified:
    """A message that passed: its payload (decoded JSON) and the counter to persist with it."""

    data: Any
    device_id: int
    ctr: int  # 0 for an unsigned message
    previous: int


class ProvenanceGuard:
    def __init__(self, engine: Engine, registry: DeviceRegistry, refresh_s: float = 5.0,
                 load_devices: Callable[[np.ndarray], object] | None = None):
        self.engine = engine
        self.registry = registry
        self.refresh_s = refresh_s
        self.load_devices = load_devices
        self._policy = np.zeros(0, np.int8)
        self._counter = np.zeros(0, np.int64)
        self._keys: dict[int, _Keys] = {}
        self._required_profiles: set[str] = set()
        self._lock = threading.Lock()
        self._next_refresh = 0.0
        self._refreshed_at = datetime.fromtimestamp(0, UTC)
        self._unpersisted: dict[int, int] = {}  # counters of messages that had nothing to commit
        self.rejected: dict[str, int] = {BAD_SIGNATURE: 0, REPLAYED_COUNTER: 0, UNSIGNED: 0}

    # --- set-up (operators, the CLI) -----------------------------------------------------------

    def issue_hmac_secret(self, device_id: int, required: bool | None = None) -> str:
        """A new per-device HMAC secret (rotation: the old one stops verifying at once; the counter
        carries on, so old messages cannot be replayed under the new secret either)."""
        secret = new_hmac_secret()
        self._save(device_id, required=required, hmac_secret=secret)
        return secret

    def register_public_key(self, device_id: int, public_key_hex: str, required: bool | None = None) -> None:
        parse_public_key(public_key_hex)
        self._save(device_id, required=required, ed25519_public=public_key_hex.strip().lower())

    def set_required(self, device_id: int, required: bool) -> None:
        self._save(device_id, required=required)

    def set_profile_required(self, profile: str, required: bool) -> None:
        with write_transaction(self.engine) as conn:
            profile_id = store.profile_id(conn, profile)
            if profile_id is None:
                raise NotFound(f"no device profile {profile!r}")
            store.set_profile_provenance(conn, profile_id, required)
        self._next_refresh = 0.0
        with self._lock:
            self._policy[:] = _UNKNOWN  # every device of the profile must be judged again

    def _save(self, device_id: int, required: bool | None = None, **keys: str) -> None:
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            if not store.device_exists(conn, device_id):
                raise NotFound(f"no device {device_id}")
            values: dict[str, Any] = {**keys, "updated_at": now}
            if required is not None:
                values["required"] = required
            store.save_device_provenance(conn, device_id, values)
        self._forget(device_id)

    def describe(self, device_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = store.device_provenance(conn, device_id)
            profile = store.profile_name_of_device(conn, device_id)
            if profile is None:
                raise NotFound(f"no device {device_id}")
            by_profile = store.profile_provenance_required(conn, profile)
        p = row
        return {"device_id": device_id, "profile": profile, "hmac": bool(p and p.hmac_secret),
                "ed25519_public_key": p.ed25519_public if p else None,
                "required": bool((p and p.required) or by_profile), "required_by_profile": bool(by_profile),
                "counter": int(p.counter) if p else 0}

    # --- the ingest path ------------------------------------------------------------------------

    def needs_load(self, device_id: int) -> bool:
        """True when `load` must run first (blocking I/O: call it off the event loop)."""
        return (device_id >= self._policy.size or self._policy[device_id] == _UNKNOWN
                or time.monotonic() >= self._next_refresh)

    def load(self, device_id: int) -> None:
        if time.monotonic() >= self._next_refresh:
            self._refresh()
        if device_id < self._policy.size and self._policy[device_id] != _UNKNOWN:
            return
        if self.load_devices is not None:
            self.load_devices(np.array([device_id], np.int64))
        with self.engine.connect() as conn:
            row = store.provenance_keys(conn, device_id)
        with self._lock:
            self._install(device_id, row)

    def check(self, device_id: int, data: Any) -> Verified:
        """Verify one decoded message of `device_id` (after `load` if `needs_load`). Returns the
        payload to parse; raises ProvenanceRejected (and counts it) when it fails."""
        try:
            return self._check(device_id, data)
        except ProvenanceRejected as exc:
            self.rejected[exc.reason] += 1
            raise

    def _check(self, device_id: int, data: Any) -> Verified:
        envelope = open_envelope(data)
        policy = self._policy[device_id] if device_id < self._policy.size else _UNKNOWN
        keys = self._keys.get(device_id) if policy == _KEYED else None
        if envelope is None:
            if keys is not None and keys.required:
                raise ProvenanceRejected(UNSIGNED, f"device {device_id}")
            return Verified(data, device_id, 0, 0)
        if keys is None:
            raise ProvenanceRejected(BAD_SIGNATURE, f"device {device_id} has no key to verify a signed message with")
        if envelope.mac is not None:
            ok = keys.secret is not None and verify_mac(keys.secret, envelope)
        else:
            ok = keys.public is not None and verify_signature(keys.public, envelope)
        if not ok:
            raise ProvenanceRejected(BAD_SIGNATURE, f"device {device_id}, {envelope.kind}, ctr {envelope.ctr}")
        try:
            inner = orjson.loads(envelope.payload)
        except orjson.JSONDecodeError:
            # authentic but unreadable: the device's own bug, not tampering; the caller quarantines it
            raise MalformedPayload("malformed_payload", "the signed payload is not JSON") from None
        with self._lock:
            previous = int(self._counter[device_id])
            if envelope.ctr <= previous:
                raise ProvenanceRejected(REPLAYED_COUNTER, f"device {device_id}: ctr {envelope.ctr} <= {previous}")
            self._counter[device_id] = envelope.ctr
        return Verified(inner, device_id, envelope.ctr, previous)

    def settle(self, verified: Verified, stored: bool, committed: bool) -> None:
        """After the store: `committed` when the message's counter went out with a commit; a failed
        store rolls the counter back so the resend is not a replay."""
        if not verified.ctr:
            return
        with self._lock:
            if not stored:
                if self._counter[verified.device_id] == verified.ctr:
                    self._counter[verified.device_id] = verified.previous
            elif not committed:
                self._unpersisted[verified.device_id] = max(verified.ctr,
                                                            self._unpersisted.get(verified.device_id, 0))

    def persist(self, counters: list[tuple[int, int]]) -> None:
        """Durably raise the high-water marks (device, ctr); runs inside the group commit, in its thread."""
        with self._lock:
            if self._unpersisted:
                counters = counters + list(self._unpersisted.items())
                self._unpersisted = {}
        if not counters:
            return
        best: dict[int, int] = {}
        for device_id, ctr in counters:
            if ctr > best.get(device_id, 0):
                best[device_id] = ctr
        with write_transaction(self.engine) as conn:
            store.raise_counters(conn, best)

    # --- caches ---------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Reload what changed since the last refresh (keys, requirements), in one or two queries."""
        started = datetime.now(UTC)
        with self.engine.connect() as conn:
            required = store.profiles_requiring_provenance(conn)
            changed = store.provenance_changed_since(conn, self._refreshed_at)
        with self._lock:
            if required != self._required_profiles:
                self._required_profiles = required
                self._policy[:] = _UNKNOWN
            for row in changed:
                if row.device_id < self._policy.size and self._policy[row.device_id] != _UNKNOWN:
                    self._install(row.device_id, row)
            self._refreshed_at = started
            self._next_refresh = time.monotonic() + self.refresh_s

    def _install(self, device_id: int, row: Any) -> None:
        """Under the lock: the device's policy from its provenance row (or None) and its profile."""
        self._grow(device_id + 1)
        profile, _ = self.registry.lookup(np.array([device_id]))
        by_profile = profile[0] >= 0 and self.registry.profiles[profile[0]].name in self._required_profiles
        if row is None and not by_profile:
            self._policy[device_id] = _OPEN
            self._keys.pop(device_id, None)
            return
        secret = bytes.fromhex(row.hmac_secret) if row is not None and row.hmac_secret else None
        public = parse_public_key(row.ed25519_public) if row is not None and row.ed25519_public else None
        self._keys[device_id] = _Keys(secret, public, bool(by_profile or (row is not None and row.required)))
        if row is not None:
            self._counter[device_id] = max(int(self._counter[device_id]), int(row.counter))
        self._policy[device_id] = _KEYED

    def _forget(self, device_id: int) -> None:
        with self._lock:
            if device_id < self._policy.size:
                self._policy[device_id] = _UNKNOWN

    def _grow(self, size: int) -> None:
        if size > self._policy.size:
            new_size = max(size, int(self._policy.size * 1.5))
            self._policy = np.concatenate([self._policy, np.zeros(new_size - self._policy.size, np.int8)])
            self._counter = np.concatenate([self._counter, np.zeros(new_size - self._counter.size, np.int64)])

    def reserve(self, size: int) -> None:
        """Allocate the arrays for device ids below `size` up front (the benchmark, large fleets)."""
        with self._lock:
            self._grow(size)

    @property
    def nbytes(self) -> int:
        return int(self._policy.nbytes + self._counter.nbytes)
