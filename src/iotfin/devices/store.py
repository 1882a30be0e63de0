"""The devices context's queries: the only module of the context that builds SQL.

Every function takes the `Connection` of its caller's transaction (the use cases in `service`,
`claims`, `guard`, `events` and `state` open and commit it); `load_registry` and
`register_missing` are the exceptions, reads that open their own connection. Grouped as the
tables are: profiles and the registry, devices, credentials, attributes, claims, provenance,
events, state, and the device rows other contexts read through ports (risk's features).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from iotfin.db.bulk import copy_dicts
from iotfin.db.pagination import PageParams, paginate
from iotfin.devices.model import DEFAULT_USCC, STANDARD_PROFILES, Profile
from iotfin.devices.registry import STATUS_UNKNOWN, DeviceRegistry
from iotfin.devices.tables import (
    Device,
    DeviceAttribute,
    DeviceClaim,
    DeviceCredential,
    DeviceEvent,
    DeviceProfile,
    DeviceProvenance,
    DeviceState,
    ProfileProvenance,
)
from iotfin.identity.tables import Enterprise, Site, Tenant

# --- profiles and the registry ------------------------------------------------------------------


def ensure_profiles(conn: Connection, profiles: Iterable[Profile] = STANDARD_PROFILES) -> dict[str, int]:
    """Create missing profiles; returns name -> profile id for all profiles."""
    existing = dict(conn.execute(select(DeviceProfile.name, DeviceProfile.id)).all())
    missing = [
        {"name": p.name, "device_type": p.device_type, "interval_s": p.interval_s,
         "inactivity_timeout_s": p.inactivity_timeout_s, "metrics": p.metrics_json()}
        for p in profiles if p.name not in existing
    ]
    if missing:
        conn.execute(insert(DeviceProfile), missing)
    return dict(conn.execute(select(DeviceProfile.name, DeviceProfile.id)).all())


def insert_devices(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    copy_dicts(conn, Device.__table__, rows)  # PostgreSQL: binary COPY (iotfin.db.bulk)
    return len(rows)


def load_registry(engine: Engine) -> DeviceRegistry:
    with engine.connect() as conn:
        profile_rows = conn.execute(
            select(DeviceProfile.id, DeviceProfile.name, DeviceProfile.device_type, DeviceProfile.interval_s,
                   DeviceProfile.inactivity_timeout_s, DeviceProfile.metrics).order_by(DeviceProfile.id)
        ).all()
        profiles = {row.id: Profile.from_row(row.name, row.device_type, row.interval_s,
                                             row.inactivity_timeout_s, row.metrics) for row in profile_rows}
        registry = DeviceRegistry(profiles.values())
        result = conn.execute(select(Device.id, Device.profile_id, Device.status)).yield_per(100_000)
        for chunk in result.partitions():
            ids = np.fromiter((r.id for r in chunk), np.int64, len(chunk))
            registry.register(ids, [profiles[r.profile_id].name for r in chunk], [r.status for r in chunk])
    return registry


def register_missing(engine: Engine, registry: DeviceRegistry, device_ids: np.ndarray) -> int:
    """Load devices the in-memory registry does not know yet (created by another process, e.g. the
    CLI while the server runs); returns how many were found."""

    ids = np.unique(np.asarray(device_ids, np.int64))
    _, status = registry.lookup(ids)
    unknown = ids[status == STATUS_UNKNOWN]
    if unknown.size == 0:
        return 0
    with engine.connect() as conn:
        rows = conn.execute(select(Device.id, DeviceProfile.name, Device.status)
                            .join(DeviceProfile, DeviceProfile.id == Device.profile_id)
                            .where(Device.id.in_(unknown.tolist()))).all()
    known_profiles = {p.name for p in registry.profiles}
    rows = [r for r in rows if r.name in known_profiles]
    if rows:
        registry.register(np.array([r.id for r in rows], np.int64), [r.name for r in rows], [r.status for r in rows])
    return len(rows)


def inactive_devices(conn: Connection) -> dict[int, str]:
    """Every device whose status is not active (few, in a working fleet): what another process's
    in-memory registry must agree with."""
    return {int(r.id): str(r.status) for r in conn.execute(select(Device.id, Device.status)
                                                            .where(Device.status != "active"))}


def profile_for_device(conn: Connection, profile: str) -> Row[Any] | None:
    """(id, device_type) of the named profile."""
    return conn.execute(select(DeviceProfile.id, DeviceProfile.device_type)
                        .where(DeviceProfile.name == profile)).first()


def profile_names(conn: Connection) -> Sequence[str]:
    return conn.execute(select(DeviceProfile.name).order_by(DeviceProfile.name)).scalars().all()


def profile_id(conn: Connection, profile: str) -> int | None:
    return conn.execute(select(DeviceProfile.id).where(DeviceProfile.name == profile)).scalar()


def set_provisioning(conn: Connection, profile: str, key: str, secret_sha256: str) -> int:
    """Set the profile's provisioning key and secret hash; returns how many profiles (0 or 1)."""
    return conn.execute(update(DeviceProfile).where(DeviceProfile.name == profile).values(
        provision_key=key, provision_secret_sha256=secret_sha256)).rowcount


def profile_of_provision_key(conn: Connection, key: str) -> Row[Any] | None:
    """(name, provision_secret_sha256) of the profile with this provisioning key."""
    return conn.execute(select(DeviceProfile.name, DeviceProfile.provision_secret_sha256)
                        .where(DeviceProfile.provision_key == key)).first()


# --- devices ------------------------------------------------------------------------------------


def enterprise_exists(conn: Connection, enterprise_id: int) -> bool:
    return conn.execute(select(Enterprise.id).where(Enterprise.id == enterprise_id)).scalar() is not None


def device_exists(conn: Connection, device_id: int) -> bool:
    return conn.execute(select(Device.id).where(Device.id == device_id)).scalar() is not None


def device_name_taken(conn: Connection, name: str) -> bool:
    return conn.execute(select(Device.id).where(Device.name == name)).scalar() is not None


def insert_device(conn: Connection, *, enterprise_id: int, site_id: int | None, profile_id: int, device_type: str,
                  serial: str, status: str, name: str | None, created_at: datetime) -> int:
    """One device; returns its id."""
    return conn.execute(insert(Device).values(
        enterprise_id=enterprise_id, site_id=site_id, profile_id=profile_id, device_type=device_type,
        serial=serial, status=status, name=name, created_at=created_at).returning(Device.id)).scalar_one()


def set_device_status(conn: Connection, device_id: int, status: str) -> int:
    """Returns how many devices were updated (0 or 1)."""
    return conn.execute(update(Device).where(Device.id == device_id).values(status=status)).rowcount


def enterprise_of_device(conn: Connection, device_id: int) -> int | None:
    return conn.execute(select(Device.enterprise_id).where(Device.id == device_id)).scalar()


def devices_named(conn: Connection, names: Iterable[Any], enterprise_id: int | None) -> Sequence[Row[Any]]:
    """(name, id) of the enterprise's devices with these names."""
    return conn.execute(select(Device.name, Device.id).where(
        Device.name.in_([str(n) for n in names]), Device.enterprise_id == enterprise_id)).all()


def device_by_name(conn: Connection, name: str) -> Row[Any] | None:
    """(id, enterprise_id) of the device with this name, in any enterprise."""
    return conn.execute(select(Device.id, Device.enterprise_id).where(Device.name == name)).first()


def enterprise_of_site(conn: Connection, site_id: int) -> int | None:
    return conn.execute(select(Site.enterprise_id).where(Site.id == site_id)).scalar()


_LISTED = (Device.id, Device.name, Device.serial, Device.enterprise_id, Device.site_id,
           DeviceProfile.name.label("profile"), Device.device_type, Device.status, Device.created_at)


def device_record(conn: Connection, device_id: int) -> Row[Any] | None:
    """The device as listed, with its profile's metrics."""
    return conn.execute(select(*_LISTED, DeviceProfile.metrics).join(DeviceProfile, DeviceProfile.id == Device.profile_id)
                        .where(Device.id == device_id)).first()


def list_devices(conn: Connection, page: PageParams, visible: Sequence[tuple[int, Sequence[str] | None]] | None,
                 *, enterprise_id: int | None = None, site_id: int | None = None, status: str | None = None,
                 profile: str | None = None) -> tuple[Sequence[Row[Any]], str | None]:
    """A page of devices, oldest first; `visible` None: all, else only these (enterprise, device types
    or None for every type) pairs."""
    stmt = select(*_LISTED).join(DeviceProfile, DeviceProfile.id == Device.profile_id)
    if visible is not None:
        if not visible:
            return [], None
        stmt = stmt.where(or_(*(Device.enterprise_id == e if types is None
                                else and_(Device.enterprise_id == e, Device.device_type.in_(list(types)))
                                for e, types in visible)))
    if enterprise_id is not None:
        stmt = stmt.where(Device.enterprise_id == enterprise_id)
    if site_id is not None:
        stmt = stmt.where(Device.site_id == site_id)
    if status is not None:
        stmt = stmt.where(Device.status == status)
    if profile is not None:
        stmt = stmt.where(DeviceProfile.name == profile)
    return paginate(conn, stmt, Device.id, page)


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


# --- credentials --------------------------------------------------------------------------------


def access_token_in_use(conn: Connection, token_sha256: str) -> bool:
    return bool(conn.execute(select(DeviceCredential.id)
                             .where(DeviceCredential.token_sha256 == token_sha256)).scalar())


def certificate_registered(conn: Connection, cert_sha256: str) -> bool:
    return bool(conn.execute(select(DeviceCredential.id)
                             .where(DeviceCredential.cert_sha256 == cert_sha256)).scalar())


def insert_access_token(conn: Connection, device_id: int, token_sha256: str, created_at: datetime) -> None:
    conn.execute(insert(DeviceCredential).values(device_id=device_id, kind="access_token", token_sha256=token_sha256,
                                                 status="active", created_at=created_at))


def insert_mqtt_basic(conn: Connection, device_id: int, username: str, client_id: str | None, password_hash: str,
                      created_at: datetime) -> None:
    conn.execute(insert(DeviceCredential).values(
        device_id=device_id, kind="mqtt_basic", mqtt_username=username, mqtt_client_id=client_id,
        password_hash=password_hash, status="active", created_at=created_at))


def insert_x509(conn: Connection, device_id: int, cert_sha256: str, created_at: datetime) -> None:
    conn.execute(insert(DeviceCredential).values(device_id=device_id, kind="x509", cert_sha256=cert_sha256,
                                                 status="active", created_at=created_at))


def _active_access_tokens(device_id: int) -> ColumnElement[bool]:
    return and_(DeviceCredential.device_id == device_id, DeviceCredential.kind == "access_token",
                DeviceCredential.status == "active")


def expire_access_tokens(conn: Connection, device_id: int, expires_at: datetime) -> None:
    """The device's active access tokens with no expiry yet stop working at `expires_at` (rotation grace)."""
    conn.execute(update(DeviceCredential).where(_active_access_tokens(device_id), DeviceCredential.expires_at.is_(None))
                 .values(expires_at=expires_at))


def revoke_access_tokens(conn: Connection, device_id: int, revoked_at: datetime) -> None:
    conn.execute(update(DeviceCredential).where(_active_access_tokens(device_id))
                 .values(status="revoked", revoked_at=revoked_at))


def revoke_credentials(conn: Connection, device_id: int, revoked_at: datetime) -> int:
    """Revoke every active credential of the device; returns how many."""
    return conn.execute(update(DeviceCredential).where(DeviceCredential.device_id == device_id,
                                                       DeviceCredential.status == "active")
                        .values(status="revoked", revoked_at=revoked_at)).rowcount


def credentials_ended(conn: Connection, after: datetime, now: datetime) -> Sequence[Row[Any]]:
    """(id, device_id) of credentials revoked after `after`, or whose rotation grace ended in (after, now]."""
    return conn.execute(select(DeviceCredential.id, DeviceCredential.device_id).where(or_(
        and_(DeviceCredential.revoked_at.is_not(None), DeviceCredential.revoked_at > after),
        and_(DeviceCredential.expires_at.is_not(None), DeviceCredential.expires_at > after,
             DeviceCredential.expires_at <= now)))).all()


def device_of_certificate(conn: Connection, cert_sha256: str) -> int | None:
    """The device whose active X.509 credential has this fingerprint."""
    return conn.execute(select(DeviceCredential.device_id).where(
        DeviceCredential.cert_sha256 == cert_sha256, DeviceCredential.kind == "x509",
        DeviceCredential.status == "active")).scalar()


def devices_of_tokens(conn: Connection, token_sha256s: Sequence[str], now: datetime) -> list[tuple[str, int]]:
    """(token hash, device) for those of these access tokens that are active and not past their expiry."""
    rows = conn.execute(select(DeviceCredential.token_sha256, DeviceCredential.device_id).where(
        DeviceCredential.token_sha256.in_(token_sha256s), DeviceCredential.status == "active",
        or_(DeviceCredential.expires_at.is_(None), DeviceCredential.expires_at > now)))
    return [(digest, int(device_id)) for digest, device_id in rows]


def mqtt_basic_credential(conn: Connection, username: str) -> Row[Any] | None:
    """(device_id, password_hash, mqtt_client_id) of the active MQTT basic credential with this username."""
    return conn.execute(select(DeviceCredential.device_id, DeviceCredential.password_hash,
                               DeviceCredential.mqtt_client_id).where(
        DeviceCredential.mqtt_username == username, DeviceCredential.kind == "mqtt_basic",
        DeviceCredential.status == "active")).first()


# --- attributes ---------------------------------------------------------------------------------


def replace_attributes(conn: Connection, device_id: int, scope: str, values: dict[str, Any],
                       updated_at: datetime) -> None:
    """Set the keys in `values` of the device's attributes in `scope` (others are kept)."""
    conn.execute(delete(DeviceAttribute).where(DeviceAttribute.device_id == device_id,
                                               DeviceAttribute.scope == scope,
                                               DeviceAttribute.key.in_(list(values))))
    conn.execute(insert(DeviceAttribute), [{"device_id": device_id, "scope": scope, "key": k, "value": v,
                                            "updated_at": updated_at} for k, v in values.items()])


def attributes(conn: Connection, device_id: int) -> Sequence[Row[Any]]:
    """(scope, key, value) of all the device's attributes."""
    return conn.execute(select(DeviceAttribute.scope, DeviceAttribute.key, DeviceAttribute.value)
                        .where(DeviceAttribute.device_id == device_id)).all()


# --- claims -------------------------------------------------------------------------------------


def open_claim(conn: Connection, device_id: int, secret_sha256: str, expires_ms: int) -> None:
    """The device's claim window, replacing any it had."""
    conn.execute(delete(DeviceClaim).where(DeviceClaim.device_id == device_id))
    conn.execute(DeviceClaim.__table__.insert().values(device_id=device_id, secret_sha256=secret_sha256,
                                                       expires_ms=expires_ms))


def claim_of_device_named(conn: Connection, device_name: str) -> Row[Any] | None:
    """(id, enterprise_id, secret_sha256, expires_ms) of the named device and its claim, if it has one."""
    return conn.execute(select(Device.id, Device.enterprise_id, DeviceClaim.secret_sha256, DeviceClaim.expires_ms)
                        .join(DeviceClaim, DeviceClaim.device_id == Device.id)
                        .where(Device.name == device_name)).first()


def hand_over(conn: Connection, device_id: int, enterprise_id: int) -> None:
    """The claimed device now belongs to `enterprise_id`; its claim is used up."""
    conn.execute(update(Device).where(Device.id == device_id).values(enterprise_id=enterprise_id))
    conn.execute(delete(DeviceClaim).where(DeviceClaim.device_id == device_id))


# --- provenance ---------------------------------------------------------------------------------


def set_profile_provenance(conn: Connection, profile_id: int, required: bool) -> None:
    """Whether every device of the profile must send authenticated messages."""
    conn.execute(ProfileProvenance.__table__.delete().where(ProfileProvenance.profile_id == profile_id))
    if required:
        conn.execute(ProfileProvenance.__table__.insert().values(profile_id=profile_id, required=True))


def save_device_provenance(conn: Connection, device_id: int, values: dict[str, Any]) -> None:
    """Update the device's provenance row with `values`, or create it (counter 0, not required unless said)."""
    exists = conn.execute(select(DeviceProvenance.device_id)
                          .where(DeviceProvenance.device_id == device_id)).scalar() is not None
    if exists:
        conn.execute(update(DeviceProvenance).where(DeviceProvenance.device_id == device_id).values(**values))
    else:
        conn.execute(DeviceProvenance.__table__.insert().values(
            device_id=device_id, counter=0, **{"required": False, **values}))


def device_provenance(conn: Connection, device_id: int) -> Row[Any] | None:
    """The device's whole provenance row."""
    return conn.execute(select(DeviceProvenance).where(DeviceProvenance.device_id == device_id)).first()


def profile_name_of_device(conn: Connection, device_id: int) -> str | None:
    return conn.execute(select(DeviceProfile.name).join(Device, Device.profile_id == DeviceProfile.id)
                        .where(Device.id == device_id)).scalar()


def profile_provenance_required(conn: Connection, profile: str) -> bool | None:
    """The profile's requirement, None when it has no provenance row."""
    return conn.execute(select(ProfileProvenance.required).join(
        DeviceProfile, DeviceProfile.id == ProfileProvenance.profile_id)
        .where(DeviceProfile.name == profile)).scalar()


def provenance_keys(conn: Connection, device_id: int) -> Row[Any] | None:
    """(hmac_secret, ed25519_public, required, counter) of the device."""
    return conn.execute(select(DeviceProvenance.hmac_secret, DeviceProvenance.ed25519_public,
                               DeviceProvenance.required, DeviceProvenance.counter)
                        .where(DeviceProvenance.device_id == device_id)).first()


def profiles_requiring_provenance(conn: Connection) -> set[str]:
    return set(conn.execute(select(DeviceProfile.name).join(
        ProfileProvenance, ProfileProvenance.profile_id == DeviceProfile.id)
        .where(ProfileProvenance.required.is_(True))).scalars())


def provenance_changed_since(conn: Connection, since: datetime) -> Sequence[Row[Any]]:
    """(device_id, hmac_secret, ed25519_public, required, counter) of rows updated at or after `since`."""
    return conn.execute(select(DeviceProvenance.device_id, DeviceProvenance.hmac_secret,
                               DeviceProvenance.ed25519_public, DeviceProvenance.required,
                               DeviceProvenance.counter)
                        .where(DeviceProvenance.updated_at >= since)).all()


_provenance = DeviceProvenance.__table__
# Built once: the group commit raises counters on every commit.
_RAISE_COUNTER = (_provenance.update().where(_provenance.c.device_id == bindparam("d"),
                                             _provenance.c.counter < bindparam("c"))
                  .values(counter=bindparam("c")))


def raise_counters(conn: Connection, counters: dict[int, int]) -> None:
    """Raise the devices' stored counters to these high-water marks (never lower them); one statement."""
    conn.execute(_RAISE_COUNTER, [{"d": d, "c": c} for d, c in counters.items()])


# --- events -------------------------------------------------------------------------------------


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(DeviceEvent), rows)


def events(conn: Connection, kinds: Sequence[str], device_id: int | None, since_ms: int | None,
           limit: int) -> Sequence[Row[Any]]:
    """Events of these kinds, newest first: for one device or all, at or after `since_ms`."""
    stmt = select(DeviceEvent).where(DeviceEvent.kind.in_(kinds))
    if device_id is not None:
        stmt = stmt.where(DeviceEvent.device_id == device_id)
    if since_ms is not None:
        stmt = stmt.where(DeviceEvent.at_ms >= since_ms)
    return conn.execute(stmt.order_by(DeviceEvent.id.desc()).limit(limit)).all()


# --- state --------------------------------------------------------------------------------------


def upsert_states(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write device states in one statement; rows of devices no longer there are dropped (the
    foreign key). A connect/disconnect time only replaces the stored one when the row has one."""
    table = DeviceState.__table__
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert  # the dialect in use only
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # the dialect in use only
    known = set(conn.execute(select(Device.id).where(Device.id.in_([r["device_id"] for r in rows]))).scalars())
    rows = [r for r in rows if r["device_id"] in known]
    if not rows:
        return
    stmt = upsert(table)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(index_elements=[table.c.device_id], set_={
        "online": excluded.online, "last_activity_ms": excluded.last_activity_ms,
        "last_connect_ms": func.coalesce(excluded.last_connect_ms, table.c.last_connect_ms),
        "last_disconnect_ms": func.coalesce(excluded.last_disconnect_ms, table.c.last_disconnect_ms)})
    conn.execute(stmt, rows)


def device_state(conn: Connection, device_id: int) -> Row[Any] | None:
    """The device with its profile's inactivity timeout and its stored state (None columns when none)."""
    return conn.execute(select(Device.id, Device.name, DeviceProfile.name.label("profile"),
                               DeviceProfile.inactivity_timeout_s, DeviceState.online,
                               DeviceState.last_activity_ms, DeviceState.last_connect_ms,
                               DeviceState.last_disconnect_ms)
                        .join(DeviceProfile, DeviceProfile.id == Device.profile_id)
                        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                        .where(Device.id == device_id)).first()


# --- what other contexts read (through their ports) ---------------------------------------------


def feature_devices(conn: Connection, enterprise_ids: Sequence[int] | None) -> Sequence[Row[Any]]:
    """(id, enterprise_id, device_type, commodity, installed_on, created_at, interval_s) of the
    enterprises' devices that are not revoked; `enterprise_ids` None: all (risk's features)."""
    d, p = Device.__table__, DeviceProfile.__table__
    q = (select(d.c.id, d.c.enterprise_id, d.c.device_type, d.c.commodity, d.c.installed_on, d.c.created_at,
                p.c.interval_s).join(p, p.c.id == d.c.profile_id).where(d.c.status != "revoked"))
    return conn.execute(q if enterprise_ids is None else q.where(d.c.enterprise_id.in_(enterprise_ids))).all()


def device_types(conn: Connection, enterprise_ids: Sequence[int]) -> list[tuple[int, str]]:
    """The distinct (enterprise id, device type) pairs of the enterprises' devices that are not revoked."""
    d = Device.__table__
    return [(eid, t) for eid, t in conn.execute(
        select(d.c.enterprise_id, d.c.device_type)
        .where(d.c.enterprise_id.in_(enterprise_ids), d.c.status != "revoked").distinct())]


def fleet_counts(conn: Connection, now_ms: int) -> dict[str, Any]:
    """The fleet in one aggregate query: devices by registry status; online (stored online flag and
    activity within the profile's inactivity timeout), seen but offline, never seen; the latest
    activity; devices active in the last 15 minutes and hour."""
    d, p, s = Device.__table__, DeviceProfile.__table__, DeviceState.__table__
    # last activity (BIGINT ms) + timeout >= now: the bound value takes the BIGINT side's type on PostgreSQL
    online = and_(s.c.online.is_(True),
                  s.c.last_activity_ms + cast(p.c.inactivity_timeout_s, BigInteger) * 1000 >= now_ms)
    row = conn.execute(
        select(func.count(),
               func.sum(case((online, 1), else_=0)),
               func.sum(case((s.c.last_activity_ms.is_(None), 1), else_=0)),
               func.max(s.c.last_activity_ms),
               func.sum(case((s.c.last_activity_ms >= now_ms - 15 * 60_000, 1), else_=0)),
               func.sum(case((s.c.last_activity_ms >= now_ms - 3_600_000, 1), else_=0)))
        .select_from(d.join(p, p.c.id == d.c.profile_id).outerjoin(s, s.c.device_id == d.c.id))).one()
    total, on, never, last, active_15m, active_1h = (int(x or 0) if i != 3 else x for i, x in enumerate(row))
    by_status = dict(conn.execute(select(d.c.status, func.count()).group_by(d.c.status)).all())
    return {"devices": total, "online": on, "offline": total - on - never, "never_seen": never,
            "last_activity_ms": last, "active_15m": active_15m, "active_1h": active_1h,
            "by_status": {str(k): int(v) for k, v in by_status.items()}}
