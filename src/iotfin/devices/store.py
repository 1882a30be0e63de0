"""Persistence of profiles and devices, and building the in-memory registry from the system of record."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, insert, select

from iotfin.devices.model import STANDARD_PROFILES, Profile
from iotfin.devices.registry import DeviceRegistry
from iotfin.devices.tables import Device, DeviceProfile


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
    if rows:
        conn.execute(insert(Device), list(rows))
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
    from iotfin.devices.registry import STATUS_UNKNOWN

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
