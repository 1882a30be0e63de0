"""Queries of monitoring: device metadata for the signals, alerts with their audit trail,
notifications, and commodity prices (system of record, SQLite or PostgreSQL; the tables are in
`iotfin.monitor.tables`)."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, Select, func, select, text, update

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.time import ms_to_datetime
from iotfin.db.pagination import PageParams, paginate
from iotfin.monitor.model import DEVICE_TYPES, DeviceMeta, RiskZone, check_transition, circle_polygon
from iotfin.monitor.prices import PricePoint
from iotfin.monitor.tables import CommodityPrice, MonitorAlert, MonitorAlertEvent, MonitorNotification

COLD_CHAIN_BAND_C = (0.0, 8.0)  # cold-chain rooms
STORE_BAND_C = (-10.0, 40.0)  # any other store
HUMIDITY_BAND = (15.0, 90.0)


# --- device metadata ------------------------------------------------------------------------------


def load_device_meta(engine: Engine, risk_zones: list[RiskZone] | None = None) -> tuple[DeviceMeta, dict[int, str]]:
    """Signal metadata for every active device, and enterprise names; GPS trackers are fenced to a
    circle of their site's geofence radius."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT d.id, d.enterprise_id, d.device_type, s.lat, s.lon, s.geofence_radius_m, e.subsector "
            "FROM devices d LEFT JOIN sites s ON s.id = d.site_id JOIN enterprises e ON e.id = d.enterprise_id "
            "WHERE d.status = 'active' ORDER BY d.id")).all()
        names = {int(i): str(n) for i, n in conn.execute(text("SELECT id, name FROM enterprises"))}
    rows = [r for r in rows if r[2] in DEVICE_TYPES]
    ids = np.array([r[0] for r in rows], np.int64)
    ents = np.array([r[1] for r in rows], np.int32)
    types = [r[2] for r in rows]
    fences: list[Any] = []
    fence_of = np.full(ids.size, -1, np.int32)
    for i, r in enumerate(rows):
        if r[2] == "gps_tracker" and r[3] is not None and r[5]:
            fence_of[i] = len(fences)
            fences.append(circle_polygon(float(r[3]), float(r[4]), float(r[5])))
    meta = DeviceMeta.build(ids, ents, types, fence_of, fences, risk_zones)
    for r in rows:
        if r[2] == "env_sensor":
            lo, hi = COLD_CHAIN_BAND_C if r[6] == "cold_chain" else STORE_BAND_C
            meta.temp_lo[r[0]], meta.temp_hi[r[0]] = lo, hi
            meta.hum_lo[r[0]], meta.hum_hi[r[0]] = HUMIDITY_BAND
    return meta, names


def load_peer_groups(engine: Engine) -> list[dict[int, str]]:
    """The enterprises' peer groups for telling a firm's own production stop from a sector-wide or
    regional one (issue 24): their sector, and their region."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, sector, region_code FROM enterprises")).all()
    return [{int(r[0]): str(r[1]) for r in rows}, {int(r[0]): str(r[2]) for r in rows}]


def load_enterprise_names_en(engine: Engine) -> dict[int, str]:
    """The enterprises' English names (for the English alert texts)."""
    with engine.connect() as conn:
        return {int(i): str(n) for i, n in conn.execute(text("SELECT id, name_en FROM enterprises")) if n}


# --- alerts ------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


class AlertStore:
    def __init__(self, engine: Engine, rules_version: str = ""):
        self.engine = engine
        self.rules_version = rules_version

    def next_alert_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(MonitorAlert.id), 0))).scalar_one()) + 1

    def record_change(self, change: Any, view: Any) -> None:
        """Write one Change of the alert book (open/escalate/reactivate/clear) and its audit row."""
        at = ms_to_datetime(change.at)
        detail = {"signal": change.event.signal, "value": change.event.value, "device_id": change.event.device_id,
                  "observed_at": change.event.ts, "rule": change.decision.rule, "tier": change.tier.name}
        with self.engine.begin() as conn:
            if change.kind == "open":
                conn.execute(MonitorAlert.__table__.insert().values(
                    id=view.alert_id, enterprise_id=view.enterprise_id, incident_type=view.incident_type,
                    tier=view.tier.name, status="open", rule=view.rule, rules_version=self.rules_version,
                    reason_zh=view.reason_zh, reason_en=view.reason_en, devices=json.dumps(sorted(view.devices)),
                    opened_at=at, raised_at=ms_to_datetime(view.raised_at) if view.raised_at else None,
                    signal_events=1, updated_at=_now()))
            else:
                values: dict[str, Any] = {"signal_events": view.signal_events, "devices": json.dumps(sorted(view.devices)),
                                          "updated_at": _now()}
                if change.kind == "escalate":
                    values |= {"tier": view.tier.name, "rule": view.rule, "reason_zh": view.reason_zh,
                               "reason_en": view.reason_en}
                if view.raised_at is not None:
                    values["raised_at"] = ms_to_datetime(view.raised_at)
                values["cleared_at"] = at if change.kind == "clear" else None
                conn.execute(update(MonitorAlert).where(MonitorAlert.id == view.alert_id).values(**values))
            conn.execute(MonitorAlertEvent.__table__.insert().values(
                alert_id=view.alert_id, kind=change.kind, actor="monitor", detail=json.dumps(detail), at=at))

    def audit(self, alert_id: int, kind: str, actor: str, detail: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(MonitorAlertEvent.__table__.insert().values(
                alert_id=alert_id, kind=kind, actor=actor, detail=json.dumps(detail, ensure_ascii=False), at=_now()))

    def add_notification(self, notice: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(MonitorNotification.__table__.insert().values(
                alert_id=notice["alert_id"], enterprise_id=notice["enterprise_id"], audience=notice["audience"],
                tier=notice["tier"], kind=notice["kind"], text_zh=notice["text_zh"], text_en=notice["text_en"],
                created_at=_now()))

    # --- officer side

    def get(self, alert_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(MonitorAlert).where(MonitorAlert.id == alert_id)).mappings().first()
            if row is None:
                raise NotFound(f"no alert {alert_id}")
            trail = conn.execute(select(MonitorAlertEvent).where(MonitorAlertEvent.alert_id == alert_id)
                                 .order_by(MonitorAlertEvent.id)).mappings().all()
        out = _alert_json(row)
        out["audit"] = [{"kind": t["kind"], "actor": t["actor"], "detail": json.loads(t["detail"]),
                         "at": t["at"].isoformat()} for t in trail]
        return out

    def list(self, status: str | None = None, enterprise_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` alerts."""
        return self.page(PageParams(limit, None), status, None if enterprise_id is None else {enterprise_id})[0]

    def page(self, page: PageParams, status: str | None = None, enterprise_ids: Collection[int] | None = None,
             among: Select | None = None, assigned_to: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of alerts, newest first, of these enterprises (None: all) and of those `among`
        selects (a subquery of enterprise ids: a lender's customers), optionally only those assigned to
        one officer; and the next cursor."""
        query = select(MonitorAlert)
        if status:
            query = query.where(MonitorAlert.status == status)
        if assigned_to is not None:
            query = query.where(MonitorAlert.assigned_to == assigned_to.strip())
        if enterprise_ids is not None:
            query = query.where(MonitorAlert.enterprise_id.in_(sorted(enterprise_ids)))
        if among is not None:
            query = query.where(MonitorAlert.enterprise_id.in_(among))
        with self.engine.connect() as conn:
            rows, cursor = paginate(conn, query, MonitorAlert.id, page, descending=True)
        return [_alert_json(r._mapping) for r in rows], cursor

    def transition(self, alert_id: int, target: str, actor: str, reason: str | None = None) -> dict[str, Any]:
        with self.engine.begin() as conn:
            row = conn.execute(select(MonitorAlert.status).where(MonitorAlert.id == alert_id)).first()
            if row is None:
                raise NotFound(f"no alert {alert_id}")
            check_transition(row[0], target, reason)
            values: dict[str, Any] = {"status": target, "updated_at": _now()}
            if target == "resolved":
                values["resolution_reason"] = reason.strip() if reason else None
            # Compare-and-set on the status read above: two officers cannot both move the same alert.
            done = conn.execute(update(MonitorAlert).where(MonitorAlert.id == alert_id, MonitorAlert.status == row[0])
                                .values(**values)).rowcount
            if done != 1:
                raise Conflict(f"alert {alert_id} changed meanwhile; reload and retry")
            conn.execute(MonitorAlertEvent.__table__.insert().values(
                alert_id=alert_id, kind=target, actor=actor, detail=json.dumps({"reason": reason}, ensure_ascii=False),
                at=_now()))
        return self.get(alert_id)

    def assign(self, alert_id: int, officer: str, actor: str) -> dict[str, Any]:
        if not officer.strip():
            raise ValidationError("assign: the officer must be named")
        with self.engine.begin() as conn:
            done = conn.execute(update(MonitorAlert).where(MonitorAlert.id == alert_id)
                                .values(assigned_to=officer.strip(), updated_at=_now())).rowcount
            if not done:
                raise NotFound(f"no alert {alert_id}")
            conn.execute(MonitorAlertEvent.__table__.insert().values(
                alert_id=alert_id, kind="assigned", actor=actor, detail=json.dumps({"officer": officer.strip()}),
                at=_now()))
        return self.get(alert_id)

    def notifications(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        query = select(MonitorNotification).order_by(MonitorNotification.id)
        if alert_id is not None:
            query = query.where(MonitorNotification.alert_id == alert_id)
        with self.engine.connect() as conn:
            return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
                    for r in conn.execute(query).mappings().all()]

    # --- prices

    def save_prices(self, points: list[PricePoint]) -> int:
        table = CommodityPrice.__table__
        with self.engine.begin() as conn:
            for p in points:
                conn.execute(table.delete().where(table.c.commodity == p.commodity, table.c.day == p.day))
            conn.execute(table.insert(), [{"commodity": p.commodity, "day": p.day, "price": p.price, "unit": p.unit}
                                          for p in points])
        return len(points)

    def load_prices(self) -> list[PricePoint]:
        with self.engine.connect() as conn:
            return [PricePoint(r.commodity, r.day, r.price, r.unit)
                    for r in conn.execute(select(CommodityPrice).order_by(CommodityPrice.commodity, CommodityPrice.day))]


def _alert_json(row: Any) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}
    out["devices"] = json.loads(out.get("devices") or "[]")
    return out
