"""Device use cases: create, credentials (issue, rotate, revoke), resolve, provision, attributes."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, update

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.ids import org_code_check_char, uscc_check_char
from iotfin.db.engine import write_transaction
from iotfin.devices.credentials import (
    check_token,
    hash_password,
    new_token,
    secret_hash,
    token_hash,
    verify_password,
)
from iotfin.devices.registry import DeviceRegistry
from iotfin.devices.tables import Device, DeviceAttribute, DeviceCredential, DeviceProfile
from iotfin.identity.tables import Enterprise, Site, Tenant


def _default_uscc() -> str:
    body = "MA000001"
    first17 = f"91110000{body}{org_code_check_char(body)}"
    return first17 + uscc_check_char(first17)


DEFAULT_USCC = _default_uscc()
TOKEN_CACHE_TTL_S = 30.0
REVOCATION_POLL_OVERLAP_S = 10.0


@dataclass(frozen=True, slots=True)
class IssuedDevice:
    id: int
    name: str | None
    enterprise_id: int
    profile: str
    token: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "enterprise_id": self.enterprise_id, "profile": self.profile,
                "token": self.token}


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
        token = check_token(token) if token is not None else new_token()
        with write_transaction(self.engine) as conn:
            enterprise_id = enterprise_id if enterprise_id is not None else default_enterprise(conn)
            if conn.execute(select(Enterprise.id).where(Enterprise.id == enterprise_id)).scalar() is None:
                raise NotFound(f"no enterprise {enterprise_id}")
            profile_row = conn.execute(select(DeviceProfile.id, DeviceProfile.device_type)
                                       .where(DeviceProfile.name == profile)).first()
            if profile_row is None:
                names = conn.execute(select(DeviceProfile.name).order_by(DeviceProfile.name)).scalars().all()
                raise NotFound(f"no device profile {profile!r}; profiles: {', '.join(names)}")
            if name is not None and conn.execute(select(Device.id).where(Device.name == name)).scalar() is not None:
                raise Conflict(f"a device named {name!r} exists already")
            if conn.execute(select(DeviceCredential.id).where(DeviceCredential.token_sha256 == token_hash(token))).scalar():
                raise Conflict("that access token is in use by another device")
            device_id = conn.execute(insert(Device).values(
                enterprise_id=enterprise_id, site_id=site_id, profile_id=profile_row.id,
                device_type=profile_row.device_type, serial=name or f"DEV-{uuid.uuid4().hex[:16]}", status="active",
                name=name, created_at=datetime.now(UTC)).returning(Device.id)).scalar_one()
            conn.execute(insert(DeviceCredential).values(device_id=device_id, kind="access_token",
                                                         token_sha256=token_hash(token), status="active",
                                                         created_at=datetime.now(UTC)))
        self.registry.register(np.array([device_id]), [profile], ["active"])
        return IssuedDevice(device_id, name, enterprise_id, profile, token)

    def set_status(self, device_id: int, status: str) -> None:
        if status not in ("active", "inactive", "revoked"):
            raise ValidationError(f"status must be active, inactive or revoked, not {status!r}")
        with write_transaction(self.engine) as conn:
            if conn.execute(update(Device).where(Device.id == device_id).values(status=status)).rowcount == 0:
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
            old = and_(DeviceCredential.device_id == device_id, DeviceCredential.kind == "access_token",
                       DeviceCredential.status == "active")
            if grace_s > 0:
                conn.execute(update(DeviceCredential).where(old, DeviceCredential.expires_at.is_(None))
                             .values(expires_at=now + timedelta(seconds=grace_s)))
            else:
                conn.execute(update(DeviceCredential).where(old).values(status="revoked", revoked_at=now))
            conn.execute(insert(DeviceCredential).values(device_id=device_id, kind="access_token",
                                                         token_sha256=token_hash(token), status="active", created_at=now))
        self._evict(device_id)
        if grace_s <= 0:
            self._notify_revoked(device_id)
        return token

    def revoke_credentials(self, device_id: int) -> int:
        """Revoke every credential of the device; live sessions using them are closed."""
        with write_transaction(self.engine) as conn:
            self._require_device(conn, device_id)
            n = conn.execute(update(DeviceCredential).where(DeviceCredential.device_id == device_id,
                                                            DeviceCredential.status == "active")
                             .values(status="revoked", revoked_at=datetime.now(UTC))).rowcount
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
            rows = conn.execute(select(DeviceCredential.id, DeviceCredential.device_id).where(or_(
                and_(DeviceCredential.revoked_at.is_not(None), DeviceCredential.revoked_at > window),
                and_(DeviceCredential.expires_at.is_not(None), DeviceCredential.expires_at > window,
                     DeviceCredential.expires_at <= now)))).all()
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

    def set_mqtt_basic(self, device_id: int, username: str, password: str, client_id: str | None = None) -> None:
        if not username:
            raise ValidationError("MQTT username must not be empty")
        with write_transaction(self.engine) as conn:
            self._require_device(conn, device_id)
            conn.execute(insert(DeviceCredential).values(
                device_id=device_id, kind="mqtt_basic", mqtt_username=username, mqtt_client_id=client_id,
                password_hash=hash_password(password), status="active", created_at=datetime.now(UTC)))

    def set_x509(self, device_id: int, certificate: bytes) -> str:
        """X.509 credential (ThingsBoard's "X.509 certificate"): the device authenticates over MQTT/TLS
        with this certificate; stored as the SHA-256 fingerprint of its DER form. Takes PEM or DER."""
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
            if conn.execute(select(DeviceCredential.id).where(DeviceCredential.cert_sha256 == fingerprint)).scalar():
                raise Conflict("that certificate is registered already")
            conn.execute(insert(DeviceCredential).values(device_id=device_id, kind="x509", cert_sha256=fingerprint,
                                                         status="active", created_at=datetime.now(UTC)))
        return fingerprint

    def resolve_certificate(self, certificate_der: bytes) -> int | None:
        """The device whose active X.509 credential is this certificate (one indexed lookup)."""
        fingerprint = hashlib.sha256(certificate_der).hexdigest()
        with self.engine.connect() as conn:
            device_id = conn.execute(select(DeviceCredential.device_id).where(
                DeviceCredential.cert_sha256 == fingerprint, DeviceCredential.kind == "x509",
                DeviceCredential.status == "active")).scalar()
        return None if device_id is None else int(device_id)

    def resolve_token(self, token: str) -> int | None:
        """The device an access token belongs to, if the token is valid now."""
        if not token or len(token) > 64:
            return None
        digest = token_hash(token)
        with self._lock:
            cached = self._tokens.get(digest)
            if cached is not None and cached[1] > time.monotonic():
                self._tokens.move_to_end(digest)
                return cached[0]
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            device_id = conn.execute(select(DeviceCredential.device_id).where(
                DeviceCredential.token_sha256 == digest, DeviceCredential.status == "active",
                or_(DeviceCredential.expires_at.is_(None), DeviceCredential.expires_at > now))).scalar()
        if device_id is not None:
            with self._lock:
                # Revocations in this process evict at once; one made by another process (the CLI)
                # is seen when the entry expires.
                self._tokens[digest] = (int(device_id), time.monotonic() + TOKEN_CACHE_TTL_S)
                if len(self._tokens) > self._cache_size:
                    self._tokens.popitem(last=False)
        return None if device_id is None else int(device_id)

    def resolve_mqtt(self, client_id: str, username: str | None, password: bytes | None) -> int | None:
        """ThingsBoard rules: username = access token (no password), or MQTT basic credentials."""
        if username and not password:
            return self.resolve_token(username)
        if not username:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(DeviceCredential.device_id, DeviceCredential.password_hash,
                                      DeviceCredential.mqtt_client_id).where(
                DeviceCredential.mqtt_username == username, DeviceCredential.kind == "mqtt_basic",
                DeviceCredential.status == "active")).first()
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
            enterprise = conn.execute(select(Device.enterprise_id).where(Device.id == gateway_id)).scalar()
            rows = conn.execute(select(Device.name, Device.id).where(
                Device.name.in_([str(n) for n in names]), Device.enterprise_id == enterprise)).all()
        return {name: int(device_id) for name, device_id in rows}

    def ensure_gateway_device(self, gateway_id: int, name: str, profile: str = "generic") -> int | None:
        """A gateway's device by name: found in the gateway's enterprise or created there (as
        ThingsBoard gateways expect); None when the name belongs to another enterprise."""
        cached = self._gateway_children.get((gateway_id, name))
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            enterprise = conn.execute(select(Device.enterprise_id).where(Device.id == gateway_id)).scalar()
            row = conn.execute(select(Device.id, Device.enterprise_id).where(Device.name == name)).first()
            known_profile = conn.execute(select(DeviceProfile.id).where(DeviceProfile.name == profile)).scalar()
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
            n = conn.execute(update(DeviceProfile).where(DeviceProfile.name == profile).values(
                provision_key=key, provision_secret_sha256=secret_hash(secret))).rowcount
            if n == 0:
                raise NotFound(f"no device profile {profile!r}")

    def provision(self, device_name: str, key: str, secret: str) -> IssuedDevice:
        """Create a device from a profile's provisioning key and secret (both must match)."""
        if not device_name:
            raise ValidationError("deviceName must not be empty")
        with self.engine.connect() as conn:
            row = conn.execute(select(DeviceProfile.name, DeviceProfile.provision_secret_sha256)
                               .where(DeviceProfile.provision_key == key)).first()
        if row is None or row.provision_secret_sha256 != secret_hash(secret):
            raise NotFound("provisioning key or secret not recognised")
        return self.create(profile=row.name, name=device_name)

    # --- attributes ----------------------------------------------------------------------------

    def save_attributes(self, device_id: int, scope: str, values: dict[str, Any]) -> None:
        if not isinstance(values, dict) or not values:
            raise ValidationError("attributes must be a non-empty JSON object")
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            conn.execute(delete(DeviceAttribute).where(DeviceAttribute.device_id == device_id,
                                                       DeviceAttribute.scope == scope,
                                                       DeviceAttribute.key.in_(list(values))))
            conn.execute(insert(DeviceAttribute), [{"device_id": device_id, "scope": scope, "key": k, "value": v,
                                                    "updated_at": now} for k, v in values.items()])

    def attributes(self, device_id: int, client_keys: list[str] | None = None,
                   shared_keys: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """ThingsBoard attribute response: {"client": {...}, "shared": {...}}; no keys named = all."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(DeviceAttribute.scope, DeviceAttribute.key, DeviceAttribute.value)
                                .where(DeviceAttribute.device_id == device_id)).all()
        out: dict[str, dict[str, Any]] = {"client": {}, "shared": {}}
        wanted = {"client": client_keys, "shared": shared_keys}
        for scope, key, value in rows:
            if scope in out and (wanted[scope] is None or key in wanted[scope]):
                out[scope][key] = value
        return {scope: values for scope, values in out.items() if values or wanted[scope] is not None}

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _require_device(conn: Connection, device_id: int) -> None:
        if conn.execute(select(Device.id).where(Device.id == device_id)).scalar() is None:
            raise NotFound(f"no device {device_id}")

    def _evict(self, device_id: int) -> None:
        with self._lock:
            for digest in [d for d, (dev, _) in self._tokens.items() if dev == device_id]:
                del self._tokens[digest]

    def _notify_revoked(self, device_id: int) -> None:
        self._evict(device_id)
        for listener in list(self.revocation_listeners):
            listener(device_id)


def default_enterprise(conn: Connection) -> int:
    """The enterprise devices belong to when none is named: created on first use, so a fresh
    workspace can register a device with no set-up at all."""
    found = conn.execute(select(Enterprise.id).where(Enterprise.uscc == DEFAULT_USCC)).scalar()
    if found is not None:
        return int(found)
    if conn.execute(select(Tenant.id).where(Tenant.code == "platform")).scalar() is None:
        conn.execute(insert(Tenant).values(code="platform", name="平台运营方", name_en="Platform operator",
                                           kind="platform", created_at=datetime.now(UTC)))
    enterprise_id = conn.execute(insert(Enterprise).values(
        uscc=DEFAULT_USCC, name="默认企业", name_en="Default enterprise", sector="manufacturing",
        subsector="unspecified", region_code="110000", region="北京市", founded_on=datetime.now(UTC).date(),
        registered_capital=0, legal_rep_name="-", legal_rep_id_number="-", legal_rep_phone="-", tax_grade="M",
        litigation_count=0, key_person_changes=0, created_at=datetime.now(UTC)).returning(Enterprise.id)).scalar_one()
    conn.execute(insert(Site).values(enterprise_id=enterprise_id, name="default", kind="site", lat=39.9, lon=116.4))
    return int(enterprise_id)
