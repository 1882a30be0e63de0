"""Monitoring domain: signal events, tiers, the alert book (hysteresis and suppression) and the alert
lifecycle. Pure: numpy and shapely arrays in, records out; no database, no web framework, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from iotfin.core.errors import Conflict, ValidationError

HOUR_MS = 3_600_000
MINUTE_MS = 60_000

DEVICE_TYPES = ("electricity_meter", "machine_sensor", "load_cell", "door_seal", "env_sensor",
                "gps_tracker", "tank_gauge", "livestock_tag")
STOCK_TYPES = ("load_cell", "tank_gauge")
# A device is "dark" after this much silence (its reporting interval, plus outages that are normal:
# 15-minute devices lose the odd hour; livestock tags uplink through a satellite every 4-6 hours).
DARK_AFTER_MS = {"electricity_meter": 8 * HOUR_MS, "machine_sensor": 8 * HOUR_MS, "load_cell": 8 * HOUR_MS,
                 "door_seal": 8 * HOUR_MS, "env_sensor": 8 * HOUR_MS, "gps_tracker": 8 * HOUR_MS,
                 "tank_gauge": 8 * HOUR_MS, "livestock_tag": 16 * HOUR_MS}


class Tier(IntEnum):
    none = 0
    watch = 1
    alert = 2
    freeze = 3
    margin_call = 4

    @staticmethod
    def parse(text: str) -> Tier:
        try:
            return Tier[text]
        except KeyError:
            raise ValidationError(f"unknown tier {text!r}; expected one of {', '.join(t.name for t in Tier)}") from None


@dataclass(frozen=True, slots=True)
class Thresholds:
    idle_after_ms: int = 6 * HOUR_MS  # every reporting machine at zero runtime this long -> production idle
    machine_reporting_ms: int = 2 * HOUR_MS
    counter_epsilon: float = 0.5  # kWh a counter may read lower (rounding) before it "ran backwards"
    night_hours: tuple[int, int] = (22, 6)  # local hours outside which a door should stay shut
    door_open_min_ms: int = 40 * MINUTE_MS
    risk_dwell_ms: int = 30 * MINUTE_MS
    band_min_ms: int = 30 * MINUTE_MS
    herd_window_ms: int = 24 * HOUR_MS


@dataclass(frozen=True)
class SignalEvent:
    """A change of a discrete signal state (not a reading): what the rules are evaluated on."""

    signal: str
    device_id: int | None
    enterprise_id: int
    device_type: str
    value: float
    active: bool
    ts: int  # when the condition was observed (device time, UTC ms)
    detected_at: int  # the monitor's clock when it saw it (UTC ms)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"signal": self.signal, "device_id": self.device_id, "enterprise_id": self.enterprise_id,
                "device_type": self.device_type, "value": self.value, "active": self.active, "ts": self.ts,
                "detected_at": self.detected_at, "detail": self.detail}


@dataclass
class DeviceMeta:
    """What the signals need to know about each device, as arrays indexed by device id."""

    enterprise: np.ndarray  # int32, -1 = not a device
    type_code: np.ndarray  # int8 index into DEVICE_TYPES, -1 = none
    fence: np.ndarray  # int32 index into `fences`, -1 = no geofence
    fences: np.ndarray | None = None  # shapely polygons (lon, lat)
    risk_zones: list[RiskZone] = field(default_factory=list)
    temp_lo: np.ndarray | None = None  # float32 bands per device (NaN = none)
    temp_hi: np.ndarray | None = None
    hum_lo: np.ndarray | None = None
    hum_hi: np.ndarray | None = None
    risk_tree: STRtree | None = None
    fence_centre: np.ndarray | None = None  # (lon, lat) of each fence's centroid
    fence_inner: np.ndarray | None = None  # radius of a circle about the centroid inside the fence

    def __post_init__(self) -> None:
        n = self.size
        nan = np.full(n, np.nan, np.float32)
        for name in ("temp_lo", "temp_hi", "hum_lo", "hum_hi"):
            if getattr(self, name) is None:
                setattr(self, name, nan.copy())
        if self.fences is not None and len(self.fences):
            centroids = shapely.centroid(self.fences)
            self.fence_centre = shapely.get_coordinates(centroids)
            # Radius (in the polygons' own planar lon/lat units) of a circle about the centroid that
            # lies inside the polygon: points within it need no point-in-polygon test. 0 when the
            # centroid is outside (concave fences).
            inside = shapely.contains(self.fences, centroids)
            self.fence_inner = np.where(inside, shapely.distance(centroids, shapely.boundary(self.fences)), 0.0)
        if self.risk_zones:
            self.risk_tree = STRtree([z.polygon for z in self.risk_zones])
        self.is_stock = np.isin(self.type_code, [DEVICE_TYPES.index(t) for t in STOCK_TYPES])
        dark = np.array([DARK_AFTER_MS[t] for t in DEVICE_TYPES] + [0], np.int64)
        self.dark_after_ms = dark[self.type_code]

    def is_type(self, device_type: str) -> np.ndarray:
        return self.type_code == DEVICE_TYPES.index(device_type)

    def type_of(self, device: int) -> str:
        code = int(self.type_code[device])
        return DEVICE_TYPES[code] if code >= 0 else ""

    @property
    def size(self) -> int:
        return int(self.enterprise.size)

    @property
    def enterprise_count(self) -> int:
        return int(self.enterprise.max()) + 1 if self.enterprise.size else 0

    @staticmethod
    def build(device_ids: np.ndarray, enterprise_ids: np.ndarray, device_types: list[str],
              fence_of: np.ndarray | None = None, fences: list[Any] | None = None,
              risk_zones: list[RiskZone] | None = None) -> DeviceMeta:
        ids = np.asarray(device_ids, np.int64)
        n = int(ids.max()) + 1 if ids.size else 1
        enterprise = np.full(n, -1, np.int32)
        enterprise[ids] = enterprise_ids
        codes = np.full(n, -1, np.int8)
        unknown = sorted(set(device_types) - set(DEVICE_TYPES))
        if unknown:
            raise ValidationError(f"unknown device types for monitoring: {', '.join(unknown)}")
        codes[ids] = [DEVICE_TYPES.index(t) for t in device_types]
        fence = np.full(n, -1, np.int32)
        if fence_of is not None:
            fence[ids] = fence_of
        geoms = np.array(fences, dtype=object) if fences else None
        return DeviceMeta(enterprise, codes, fence, geoms, list(risk_zones or []))


# --- geofences --------------------------------------------------------------------------------------


def polygon_from_coords(coords: Any, what: str = "geofence") -> shapely.Polygon:
    """A valid polygon from [[lon, lat], ...]; anything else is refused with the reason shapely gives."""
    try:
        points = [(float(p[0]), float(p[1])) for p in coords]
    except (TypeError, ValueError, IndexError):
        raise ValidationError(f"{what}: coordinates must be a list of [lon, lat] pairs") from None
    if len(points) < 3:
        raise ValidationError(f"{what}: a polygon needs at least 3 points, got {len(points)}")
    if any(not (-180 <= x <= 180 and -90 <= y <= 90) for x, y in points):
        raise ValidationError(f"{what}: longitude must be within ±180 and latitude within ±90")
    polygon = shapely.Polygon(points)
    if not polygon.is_valid:
        raise ValidationError(f"{what}: invalid polygon ({shapely.is_valid_reason(polygon)})")
    if polygon.area == 0:
        raise ValidationError(f"{what}: polygon has no area")
    return polygon


def circle_polygon(lat: float, lon: float, radius_m: float, segments: int = 32) -> shapely.Polygon:
    """A site's circular geofence as a polygon in lon/lat degrees (local equirectangular scale)."""
    if radius_m <= 0:
        raise ValidationError(f"geofence radius must be positive, not {radius_m}")
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    dlat = radius_m / 111_000.0 * np.cos(angle)
    dlon = radius_m / (111_000.0 * np.cos(np.radians(lat))) * np.sin(angle)
    return shapely.Polygon(np.c_[lon + dlon, lat + dlat])


@dataclass(frozen=True)
class RiskZone:
    """A listed risk location (pawn shop, scrap yard, border crossing...) as a polygon."""

    name: str
    polygon: shapely.Polygon


# --- rules outcome and the alert book ---------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    tier: Tier
    incident_type: str
    rule: str
    reason_zh: str
    reason_en: str


@dataclass
class Condition:
    """The live state of one alert key (enterprise × incident type)."""

    alert_id: int
    tier: Tier
    devices: set[int] = field(default_factory=set)
    cleared_at: int | None = None
    events: int = 0


@dataclass(frozen=True)
class Change:
    kind: str  # open | escalate | reactivate | clear | hold
    alert_id: int
    key: tuple[int, str]
    tier: Tier
    at: int
    decision: Decision
    event: SignalEvent


class AlertBook:
    """Hysteresis and suppression, so one incident is one alert.

    An alert is keyed by (enterprise, incident type). It opens when the first device (or the
    enterprise itself) enters a condition the rules rate at watch or above; more devices, and the same
    condition again within `suppress_ms` after it cleared, fold into it (counted, not re-raised); a
    higher tier escalates it. Once quiet for longer than `suppress_ms`, the condition returning is a
    new incident and a new alert, whether or not an officer has resolved the old one yet. The rules see whether the device currently holds the condition
    (`active`), so their thresholds can differ for entering and leaving (hysteresis, in the rules).
    """

    def __init__(self, suppress_ms: int = 72 * HOUR_MS, first_id: int = 1):
        self.suppress_ms = suppress_ms
        self.conditions: dict[tuple[int, str], Condition] = {}
        self.held: dict[tuple[int, int, str], str] = {}  # (enterprise, device or 0, signal) -> incident type
        self._next_id = first_id
        self.suppressed = 0

    def holds(self, event: SignalEvent) -> bool:
        """Whether this device (or enterprise) currently holds the condition this signal reports."""
        return (event.enterprise_id, event.device_id or 0, event.signal) in self.held

    def apply(self, event: SignalEvent, decision: Decision) -> list[Change]:
        sub = event.device_id or 0
        held_key = (event.enterprise_id, sub, event.signal)
        at = event.detected_at
        changes: list[Change] = []
        if decision.tier > Tier.none:
            key = (event.enterprise_id, decision.incident_type)
            cond = self.conditions.get(key)
            if cond is None or (not cond.devices and cond.cleared_at is not None
                                and at - cond.cleared_at > self.suppress_ms):
                cond = Condition(self._next_id, decision.tier, {sub})
                self._next_id += 1
                self.conditions[key] = cond
                changes.append(Change("open", cond.alert_id, key, decision.tier, at, decision, event))
            else:
                was_active = bool(cond.devices)
                cond.devices.add(sub)
                cond.events += 1
                if decision.tier > cond.tier:
                    cond.tier = decision.tier
                    changes.append(Change("escalate", cond.alert_id, key, decision.tier, at, decision, event))
                elif not was_active:
                    self.suppressed += 1
                    changes.append(Change("reactivate", cond.alert_id, key, cond.tier, at, decision, event))
            if event.detail.get("one_shot"):  # late evidence: the condition held then, not necessarily now
                cond.devices.discard(sub)
                if not cond.devices:
                    cond.cleared_at = at
            else:
                self.held[held_key] = decision.incident_type
        elif held_key in self.held:
            key = (event.enterprise_id, self.held.pop(held_key))
            cond = self.conditions[key]
            cond.devices.discard(sub)
            if not cond.devices:
                cond.cleared_at = at
                changes.append(Change("clear", cond.alert_id, key, cond.tier, at, decision, event))
        return changes


# --- alert lifecycle --------------------------------------------------------------------------------

ALERT_STATUSES = ("open", "acknowledged", "resolved")
_TRANSITIONS = {"open": {"acknowledged", "resolved"}, "acknowledged": {"resolved"}, "resolved": set()}


def check_transition(current: str, target: str, reason: str | None = None) -> None:
    """Raise unless `current -> target` is allowed; resolving needs a non-empty reason."""
    if target not in ALERT_STATUSES:
        raise ValidationError(f"unknown alert status {target!r}; expected one of {', '.join(ALERT_STATUSES)}")
    if target not in _TRANSITIONS[current]:
        raise Conflict(f"an alert that is {current} cannot become {target}")
    if target == "resolved" and not (reason and reason.strip()):
        raise ValidationError("resolving an alert needs a resolution reason (解除预警须填写原因)")


def notification_texts(decision: Decision, enterprise_name: str, tier: Tier, kind: str,
                       enterprise_name_en: str | None = None) -> dict[str, dict[str, str]]:
    """What the lender and the enterprise are told, in Simplified Chinese and English (the English text
    names the company by its English name, when it has one)."""
    name_en = enterprise_name_en or enterprise_name
    tier_zh = {"watch": "关注", "alert": "预警", "freeze": "冻结授信", "margin_call": "追加保证金"}[tier.name]
    verb_zh, verb_en = ("升级为", "escalated to") if kind == "escalate" else ("触发", "raised at")
    return {
        "lender": {"zh": f"{enterprise_name}：{decision.reason_zh}（{verb_zh}{tier_zh}级）",
                   "en": f"{name_en}: {decision.reason_en} ({verb_en} {tier.name.replace('_', ' ')})"},
        "enterprise": {"zh": f"贵司{decision.reason_zh}，请尽快核实并与贷款机构联系。",
                       "en": f"Your company: {decision.reason_en}. Please check and contact your lender."},
    }


# --- firm-specific or sector-wide (issue 24) -----------------------------------------------------------

PEER_QUIET_MS = 2 * HOUR_MS  # a peer counts as stopped when none of its machines ran for this long
PEER_SHARE = 0.5  # ... and the stop is sector-wide (or regional) when this share of the peers stopped too
MIN_PEERS = 3  # fewer reporting peers than this in every group: the monitor cannot tell, the alert stands
SCOPE_TEXT = {
    "sector_wide": ("；同业/同地区{quiet}/{peers}家企业同时停机，判断为行业性或区域性停工（非企业个体风险），降为关注",
                    "; {quiet} of {peers} peers in the same sector or region stopped at the same time: a sector-wide "
                    "or regional stop, not firm-specific (lowered to watch)"),
    "firm_specific": ("；同业/同地区{peers}家企业中仅{quiet}家停机，属企业个体停工",
                      "; only {quiet} of {peers} peers in the same sector or region stopped: a firm-specific stop"),
}


def peer_scope(enterprise: int, groups: list[np.ndarray], quiet: np.ndarray, reporting: np.ndarray) -> tuple[str, int, int]:
    """(scope, stopped peers, reporting peers) of a firm's stop: `groups` are per-enterprise group codes
    (sector, region; -1 unknown), `quiet`/`reporting` per-enterprise flags. Sector-wide when in any group
    at least PEER_SHARE of at least MIN_PEERS reporting peers stopped too; the group with the most
    peers is reported otherwise."""
    best: tuple[str, int, int] = ("unknown", 0, 0)
    for codes in groups:
        code = codes[enterprise] if enterprise < codes.size else -1
        if code < 0:
            continue
        peers = (codes == code) & reporting
        peers[enterprise] = False
        n, q = int(peers.sum()), int((peers & quiet).sum())
        if n < MIN_PEERS:
            continue
        if q >= PEER_SHARE * n:
            return "sector_wide", q, n
        if n > best[2]:
            best = ("firm_specific", q, n)
    return best
