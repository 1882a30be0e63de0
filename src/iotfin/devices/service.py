"""Device use cases: create, credentials (issue, rotate, revoke), resolve, provision, attributes."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.devices import store
from iotfin.devices.credentials import (
    check_token,
    hash_password,
    new_token,
    secret_hash,
    token_hash,
    verify_password,
)
from iotfin.devices.registry import STATUS_UNKNOWN, DeviceRegistry
from iotfin.devices.tables import DEVICE_STATUSES

TOKEN_CACHE_TTL_S = 30.0
REVOCATION_POLL_OVERLAP_S = 10.0


@dataclass(frozen=True, slots=True)
class IssuedDevice:
    id: int
    name: str | None
    enterprise_id: int
    profile: str
    token: str
    site_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "enterprise_id": self.enterprise_id, "site_id": self.site_id,
                "profile": self.profile, "token": self.token}


class DeviceService:
    def __init__(self, engine: Engine, registry: DeviceRegistry, cache_size: int = 100_000):
        self.engine = engine
        self.registry = registry
        # token hash -> device id, for the devices that are talking now; bounded so 11 M devices
        # do not mean 11 M dict entries. Revocation in this process evicts at once.
        self._tokens: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.revocation_listeners: list[Callable[[int], None]] = []
        self._gateway_children: dict[tuple[int, str], int] = {}
        self._revocations_seen: dict[int, datetime] = {}  # credential id -> when acted on

    # --- devices -------------------------------------------------------------------------------

    def create(self, enterprise_id: int | None = None, profile: str = "generic", name: str | None = None,
               site_id: int | None = None, token: str | None = None) -> IssuedDevice:
        """Register a device and its access token, bound to a site of its enterprise (the site's
        enterprise when none is named; 422 for a site of another enterprise). With neither, the
        platform's default enterprise: what self-provisioning by a profile's key and the tests use;
        the command line and the API always name one. The device is in this process's registry at
        once, so a serving process ingests its first reading."""
        token = check_token(token) if token is not None else new_token()
        with write_transaction(self.engine) as conn:
            if site_id is not None:
                site_owner = store.enterprise_of_site(conn, site_id)
                if site_owner is None or (enterprise_id is not None and site_owner != enterprise_id):
                    whose = f"enterprise {enterprise_id}" if enterprise_id is not None else "any enterprise"
                    raise ValidationError(f"site_id {site_id} is not a site of {whose} / 站点不属于该企业",
                                          field="site_id")
                enterprise_id = site_owner
            enterprise_id = enterprise_id if enterprise_id is not None else store.default_enterprise(conn)
            if not store.enterprise_exists(conn, enterprise_id):
                raise NotFound(f"no enterprise {enterprise_id}")
            profile_row = store.profile_for_device(conn, profile)
            if profile_row is None:
                names = store.profile_names(conn)
                raise NotFound(f"no device profile {profile!r}; profiles: {', '.join(names)}")
            if name is not None and store.device_name_taken(conn, name):
                raise Conflict(f"a device named {name!r} exists already")
            if store.access_token_in_use(conn, token_hash(token)):
                raise Conflict("that access token is in use by another device")
            device_id = store.insert_device(
                conn, enterprise_id=enterprise_id, site_id=site_id, profile_id=profile_row.id,
                device_type=profile_row.device_type, serial=name or f"DEV-{uuid.uuid4().hex[:16]}", status="active",
                name=name, created_at=datetime.now(UTC))
            store.insert_access_token(conn, device_id, token_hash(token), datetime.now(UTC))
        self.registry.register(np.array([device_id]), [profile], ["active"])
        return IssuedDevice(device_id, name, enterprise_id, profile, token, site_id)

    def profile_device_type(self, profile: str) -> str | None:
        """The device type of a profile (None: no such profile)."""
        with self.engine.connect() as conn:
            row = store.profile_for_device(conn, profile)
        return None if row is None else str(row.device_type)

    def device(self, device_id: int) -> dict[str, Any] | None:
        """The device's record: id, name, enterprise, site, type, profile, status, its profile's
        metrics (None: no such device)."""
        with self.engine.connect() as conn:
            row = store.device_record(conn, device_id)
        return None if row is None else device_json(row) | {"metrics": sorted(row.metrics)}

    def device_types_of(self, enterprise_ids: Sequence[int]) -> list[tuple[int, str]]:
        """The distinct (enterprise, device type) pairs of the enterprises' devices not revoked."""
        if not enterprise_ids:
            return []
        with self.engine.connect() as conn:
            return store.device_types(conn, list(enterprise_ids))

    def devices(self, page: PageParams, visible: Sequence[tuple[int, Sequence[str] | None]] | None = None, *,
                enterprise_id: int | None = None, site_id: int | None = None, status: str | None = None,
                profile: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of devices, oldest first. `visible`: None for all, else (enterprise id, device
        types or None for all types) pairs the caller may see."""
        if status is not None and status not in DEVICE_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(DEVICE_STATUSES)}", field="status")
        with self.engine.connect() as conn:
            rows, cursor = store.list_devices(conn, page, visible, enterprise_id=enterprise_id, site_id=site_id,
                                              status=status, profile=profile)
        return [device_json(r) for r in rows], cursor

    def set_status(self, device_id: int, status: str) -> None:
        if status not in ("active", "inactive", "revoked"):
            raise ValidationError(f"status must be active, inactive or revoked, not {status!r}")
        with write_transaction(self.engine) as conn:
            if store.set_device_status(conn, device_id, status) == 0:
                raise NotFound(f"no device {device_id}")
        self.registry.set_status(device_id, status)
        if status != "active":
            self._notify_revoked(device_id)

    # --- credentials ---------------------------------------------------------------------------

    def issue_token(self, device_id: int, token: str | None = None, grace_s: int = 0) -> str:
        """Rotate: a new access token; the old ones stop working now, or after `grace_s` seconds."""
        token = check_token(token) if token is not None else new_token()
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            self._require_device(conn, device_id)
            if grace_s > 0:
                store.expire_access_tokens(conn, device_id, now + timedelta(seconds=grace_s))
            else:
                store.revoke_access_tokens(conn, device_id, now)
            store.insert_access_token(conn, device_id, token_hash(token), now)
        self._evict(device_id)
        if grace_s <= 0:
            self._notify_revoked(device_id)
        return token

    def revoke_credentials(self, device_id: int) -> int:
        """Revoke every credential of the device; live sessions using them are closed."""
        with write_transaction(self.engine) as conn:
            self._require_device(conn, device_id)
            n = store.revoke_credentials(conn, device_id, datetime.now(UTC))
        self._evict(device_id)
        self._notify_revoked(device_id)
        return int(n)

    def apply_revocations_since(self, since: datetime) -> tuple[set[int], datetime]:
        """Act on credentials revoked (or past their rotation grace) by another process since `since`:
        evict them and tell the revocation listeners, so live sessions close. Returns the devices and
        the point to poll from next (`iotfin serve` polls this; revocations in this process act at once).

        The window reaches `REVOCATION_POLL_OVERLAP_S` further back than asked, because a revocation's
        time is taken before its transaction commits; credentials already acted on are skipped."""
        now = datetime.now(UTC)
        window = since - timedelta(seconds=REVOCATION_POLL_OVERLAP_S)
        with self.engine.connect() as conn:
            rows = store.credentials_ended(conn, window, now)
        seen = self._revocations_seen
        for credential_id in [c for c, at in seen.items() if at < window]:
            del seen[credential_id]
        devices = set()
        for credential_id, device_id in rows:
            if credential_id not in seen:
                seen[credential_id] = now
                devices.add(int(device_id))
        for device_id in devices:
            self._notify_revoked(device_id)
        return devices, now

    def refresh_statuses(self, previous: dict[int, str] | None) -> dict[int, str]:
        """Bring this process's registry in line with device statuses changed by another process
        (`iotfin devices status`, another ingest worker): every non-active device is read and the
        ones that changed since `previous` (the last answer; None the first time) are applied, live
        sessions of newly inactive devices closed. Returns the map to pass next time. Devices the
        registry does not know yet are skipped: they are loaded with their status on first use."""
        with self.engine.connect() as conn:
            current = store.inactive_devices(conn)
        before = previous or {}
        changed = {d: s for d, s in current.items() if before.get(d) != s}
        changed.update({d: "active" for d in before.keys() - current.keys()})
        if changed:
            ids = np.fromiter(changed, np.int64, len(changed))
            _, known = self.registry.lookup(ids)
            for device_id, status in zip(ids.tolist(), known.tolist(), strict=True):
                if status == STATUS_UNKNOWN:
                    continue
                self.registry.set_status(device_id, changed[device_id])
                if changed[device_id] != "active":
                    self._notify_revoked(device_id)
        return current

    def set_mqtt_basic(self, device_id: int, username: str, password: str, client_id: str | None = None) -> None:
        if not username:
            raise ValidationError("MQTT username must not be empty")
        with write_transaction(self.engine) as conn:
            self._require_device(conn, device_id)
            store.insert_mqtt_basic(conn, device_id, username, client_id, hash_password(password), datetime.now(UTC))

    def set_x509(self, device_id: int, certificate: bytes) -> str:
        """X.509 credential (ThingsBoard's "X.509 certificate"): the device authenticates over MQTT/TLS
        with this certificate; stored as the SHA-256 fingerprint of its DER form. Takes PEM or DER."""
        # lazy: X.509 parsing is needed only here
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        try:
            cert = (x509.load_pem_x509_certificate(certificate) if certificate.lstrip().startswith(b"-----")
                    else x509.load_der_x509_certificate(certificate))
        except ValueError as exc:
            raise ValidationError(f"not an X.509 certificate in PEM or DER: {exc}") from None
        fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        with write_transaction(self.engine) as conn:
            self._require_device(conn, device_id)
            if store.certificate_registered(conn, fingerprint):
                raise Conflict("that certificate is registered already")
            store.insert_x509(conn, device_id, fingerprint, datetime.now(UTC))
        return fingerprint

    def resolve_certificate(self, certificate_der: bytes) -> int | None:
        """The device whose active X.509 credential is this certificate (one indexed lookup)."""
        fingerprint = hashlib.sha256(certificate_der).hexdigest()
        with self.engine.connect() as conn:
            device_id = store.device_of_certificate(conn, fingerprint)
        return None if device_id is None else int(device_id)

    def cached_token(self, token: str) -> int | None:
        """The device of an access token validated within the last TOKEN_CACHE_TTL_S, without touching
        the database (so a transport may call it on its event loop); None when not cached."""
        if not token or len(token) > 64:
            return None
        return self._cached_device(token_hash(token))

    def resolve_token(self, token: str) -> int | None:
        """The device an access token belongs to, if the token is valid now."""
        return self.resolve_tokens((token,)).get(token)

    def resolve_tokens(self, tokens: Iterable[str]) -> dict[str, int]:
        """The device of each token that is valid now (the others are left out): from the cache,
        and the rest in one query (a reconnect storm's connections, batched by the MQTT transport)."""
        by_digest = {token_hash(token): token for token in tokens if token and len(token) <= 64}
        found: dict[str, int] = {}
        for digest in list(by_digest):
            device_id = self._cached_device(digest)
            if device_id is not None:
                found[by_digest.pop(digest)] = device_id
        if by_digest:
            with self.engine.connect() as conn:
                fetched = store.devices_of_tokens(conn, list(by_digest), datetime.now(UTC))
            self._cache_tokens(fetched)
            found.update((by_digest[digest], device_id) for digest, device_id in fetched)
        return found

    def _cached_device(self, digest: str) -> int | None:
        with self._lock:
            cached = self._tokens.get(digest)
            if cached is not None and cached[1] > time.monotonic():
                self._tokens.move_to_end(digest)
                return cached[0]
        return None

    def _cache_tokens(self, found: Iterable[tuple[str, int]]) -> None:
        # Revocations in this process evict at once; one made by another process (the CLI) is seen
        # when the entry expires.
        expires = time.monotonic() + TOKEN_CACHE_TTL_S
        with self._lock:
            for digest, device_id in found:
                self._tokens[digest] = (device_id, expires)
                self._tokens.move_to_end(digest)
            while len(self._tokens) > self._cache_size:
                self._tokens.popitem(last=False)

    def resolve_mqtt(self, client_id: str, username: str | None, password: bytes | None) -> int | None:
        """ThingsBoard rules: username = access token (no password), or MQTT basic credentials."""
        if username and not password:
            return self.resolve_token(username)
        if not username:
            return None
        with self.engine.connect() as conn:
            row = store.mqtt_basic_credential(conn, username)
        if row is None or (row.mqtt_client_id and row.mqtt_client_id != client_id):
            return None
        try:
            text = (password or b"").decode()
        except UnicodeDecodeError:
            return None
        return int(row.device_id) if verify_password(text, row.password_hash) else None

    def resolve_names_for_gateway(self, gateway_id: int, names: list[str]) -> dict[str, int]:
        """Device ids for names, limited to the gateway's own enterprise: a gateway cannot write
        another enterprise's devices."""
        with self.engine.connect() as conn:
            enterprise = store.enterprise_of_device(conn, gateway_id)
            rows = store.devices_named(conn, names, enterprise)
        return {name: int(device_id) for name, device_id in rows}

    def ensure_gateway_device(self, gateway_id: int, name: str, profile: str = "generic") -> int | None:
        """A gateway's device by name: found in the gateway's enterprise or created there (as
        ThingsBoard gateways expect); None when the name belongs to another enterprise."""
        cached = self._gateway_children.get((gateway_id, name))
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            enterprise = store.enterprise_of_device(conn, gateway_id)
            row = store.device_by_name(conn, name)
            known_profile = store.profile_id(conn, profile)
        if row is None:
            try:
                device_id = self.create(enterprise_id=enterprise, profile=profile if known_profile else "generic",
                                        name=name).id
            except Conflict:  # created meanwhile by another session of the same gateway
                return self.ensure_gateway_device(gateway_id, name, profile)
        elif row.enterprise_id == enterprise:
            device_id = int(row.id)
        else:
            return None
        if len(self._gateway_children) > self._cache_size:
            self._gateway_children.clear()
        self._gateway_children[(gateway_id, name)] = device_id
        return device_id

    # --- provisioning (ThingsBoard "provision request") ------------------------------------------

    def set_provisioning(self, profile: str, key: str, secret: str) -> None:
        with write_transaction(self.engine) as conn:
            n = store.set_provisioning(conn, profile, key, secret_hash(secret))
            if n == 0:
                raise NotFound(f"no device profile {profile!r}")

    def provision(self, device_name: str, key: str, secret: str) -> IssuedDevice:
        """Create a device from a profile's provisioning key and secret (both must match)."""
        if not device_name:
            raise ValidationError("deviceName must not be empty")
        with self.engine.connect() as conn:
            row = store.profile_of_provision_key(conn, key)
        if row is None or row.provision_secret_sha256 != secret_hash(secret):
            raise NotFound("provisioning key or secret not recognised")
        return self.create(profile=row.name, name=device_name)

    # --- attributes ----------------------------------------------------------------------------

    def save_attributes(self, device_id: int, scope: str, values: dict[str, Any]) -> None:
        if not isinstance(values, dict) or not values:
            raise ValidationError("attributes must be a non-empty JSON object")
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            store.replace_attributes(conn, device_id, scope, values, now)

    def attributes(self, device_id: int, client_keys: list[str] | None = None,
                   shared_keys: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """ThingsBoard attribute response: {"client": {...}, "shared": {...}}; no keys named = all."""
        with self.engine.connect() as conn:
            rows = store.attributes(conn, device_id)
        out: dict[str, dict[str, Any]] = {"client": {}, "shared": {}}
        wanted = {"client": client_keys, "shared": shared_keys}
        for scope, key, value in rows:
            if scope in out and (wanted[scope] is None or key in wanted[scope]):
                out[scope][key] = value
        return {scope: values for scope, values in out.items() if values or wanted[scope] is not None}

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _require_device(conn: Connection, device_id: int) -> None:
        if not store.device_exists(conn, device_id):
            raise NotFound(f"no device {device_id}")

    def _evict(self, device_id: int) -> None:
        with self._lock:
            for digest in [d for d, (dev, _) in self._tokens.items() if dev == device_id]:
                del self._tokens[digest]

    def _notify_revoked(self, device_id: int) -> None:
        self._evict(device_id)
        for listener in list(self.revocation_listeners):
            listener(device_id)



def device_json(row: Any) -> dict[str, Any]:
    """A device as lists show it (no credentials)."""
    r = row._mapping
    return {"device_id": r["id"], "name": r["name"], "serial": r["serial"], "enterprise_id": r["enterprise_id"],
            "site_id": r["site_id"], "profile": r["profile"], "device_type": r["device_type"], "status": r["status"],
            "created_at": r["created_at"]}
