"""Consent (数据授权): grants, the rules that decide a read, and reason codes. Pure: no I/O.

An enterprise grants a named recipient (a lender's tenant code, or a partner's code) a set of data
scopes for one stated purpose, over a data window (which business dates of data may be read), until
an expiry at most 12 months after the grant. The grant stops working when it is not reconfirmed
within `reconfirm_days` (at most 90) of the last confirmation, and the moment it is withdrawn.
Passing the data on to a third party needs that party named in the grant's `onward_recipients`: a
separate consent, never implied by the first.

`check` is the single decision every read of enterprise data by someone other than the enterprise
goes through; it is a pure function of the grants, the request and the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from iotfin.core.errors import ValidationError

# --- vocabulary ------------------------------------------------------------------------------------

# Scope -> (zh-CN, en, what it covers). Telemetry categories follow the device types the platform
# supports (iotfin.sim.reference.DEVICE_TYPES); see TELEMETRY_SCOPE_OF_DEVICE.
SCOPES: dict[str, tuple[str, str, str]] = {
    "telemetry:energy": ("用电数据", "electricity use", "electricity meters: energy_kwh, power_kw"),
    "telemetry:equipment": ("设备运行数据", "equipment runtime", "machine sensors: runtime_min, cycles"),
    "telemetry:inventory": ("库存数据", "inventory levels", "load cells (weight_t) and tank gauges (level_pct, volume_m3)"),
    "telemetry:security": ("仓储门磁数据", "warehouse door seals", "door seals: door_open, seal_intact"),
    "telemetry:environment": ("环境数据", "storage environment", "environment sensors: temperature_c, humidity_pct"),
    "telemetry:gps": ("车辆定位数据", "vehicle positions", "GPS trackers: lat, lon, speed_kmh"),
    "telemetry:livestock": ("活体牲畜数据", "livestock tags", "livestock tags: activity, body_temp_c"),
    "trade_documents": ("贸易单据", "trade documents", "orders, delivery notes, invoices, warehouse receipts, payments"),
    "business_registration": ("工商登记信息", "business registration", "founding date, registered capital, sector, region"),
    "tax_rating": ("纳税信用等级", "tax credit rating", "the tax authority's A/B/M/C/D grade"),
    "credit_report": ("征信与司法信息", "credit report", "litigation and key-person changes"),
    "alerts": ("预警信息", "alerts", "monitoring alerts raised on the enterprise's devices and collateral"),
}

TELEMETRY_SCOPE_OF_DEVICE: dict[str, str] = {
    "electricity_meter": "telemetry:energy",
    "machine_sensor": "telemetry:equipment",
    "load_cell": "telemetry:inventory",
    "tank_gauge": "telemetry:inventory",
    "door_seal": "telemetry:security",
    "env_sensor": "telemetry:environment",
    "gps_tracker": "telemetry:gps",
    "livestock_tag": "telemetry:livestock",
}

PURPOSES: dict[str, tuple[str, str]] = {
    "credit_assessment": ("授信评估", "credit assessment"),
    "post_loan_monitoring": ("贷后监控", "post-loan monitoring"),
    "financing_verification": ("融资核验", "financing verification"),
    "supply_chain_service": ("供应链协同服务", "supply-chain services"),
}

MAX_TERM_DAYS = 366  # "at most 12 months": a grant may run to the same calendar day next year
MAX_RECONFIRM_DAYS = 90
RECIPIENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# Reason codes of a decision, with what the enterprise and the officer read (zh-CN, en).
REASONS: dict[str, tuple[str, str]] = {
    "granted": ("已授权", "consent granted"),
    "own_data": ("企业本人访问", "the enterprise reading its own data"),
    "no_grant": ("企业未向该机构授权", "the enterprise has granted this recipient nothing"),
    "scope_not_granted": ("未授权该数据范围", "this data scope is not in any grant"),
    "purpose_mismatch": ("用途与授权不符", "the stated purpose is not the one consented to"),
    "onward_not_consented": ("未同意向第三方转授", "onward sharing with this third party was not consented to"),
    "withdrawn": ("授权已撤回", "consent has been withdrawn"),
    "not_yet_valid": ("授权尚未生效", "consent is not yet in force"),
    "expired": ("授权已过期", "consent has expired"),
    "reconfirmation_overdue": ("授权未按期确认", "consent was not reconfirmed in time"),
    "outside_window": ("超出授权数据期间", "the data requested lies outside the consented period"),
}


def scope_label(scope: str) -> dict[str, str]:
    zh, en, _ = SCOPES[scope]
    return {"zh": zh, "en": en}


def validate_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValidationError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")
    return scope


def validate_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValidationError(f"unknown purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    return purpose


def validate_recipient(recipient: str) -> str:
    if not RECIPIENT_RE.match(recipient or ""):
        raise ValidationError(f"recipient {recipient!r} must be a code of 1-64 characters a-z, 0-9, '.', '_' or '-'")
    return recipient


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValidationError(f"{name} must be timezone-aware")
    return value


# --- grants --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    enterprise_id: int
    recipient: str
    purpose: str
    scopes: frozenset[str]
    window_start: date
    window_end: date
    granted_at: datetime
    expires_at: datetime
    confirmed_at: datetime
    reconfirm_days: int = MAX_RECONFIRM_DAYS
    onward_recipients: frozenset[str] = field(default_factory=frozenset)
    withdrawn_at: datetime | None = None

    def reconfirm_due(self) -> datetime:
        return min(self.confirmed_at + timedelta(days=self.reconfirm_days), self.expires_at)

    def status(self, now: datetime) -> str:
        if self.withdrawn_at is not None and self.withdrawn_at <= now:
            return "withdrawn"
        if now < self.granted_at:
            return "not_yet_valid"
        if now >= self.expires_at:
            return "expired"
        if now >= self.confirmed_at + timedelta(days=self.reconfirm_days):
            return "reconfirmation_overdue"
        return "active"


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """What an enterprise submits; `validate` turns it into the fields of a Grant or refuses it."""

    enterprise_id: int
    recipient: str
    purpose: str
    scopes: tuple[str, ...]
    window_start: date
    window_end: date
    expires_at: datetime
    reconfirm_days: int = MAX_RECONFIRM_DAYS
    onward_recipients: tuple[str, ...] = ()

    def validate(self, now: datetime) -> dict[str, object]:
        _aware("now", now)
        _aware("expires_at", self.expires_at)
        if not isinstance(self.enterprise_id, int) or self.enterprise_id <= 0:
            raise ValidationError("enterprise_id must be a positive integer")
        validate_recipient(self.recipient)
        validate_purpose(self.purpose)
        if not self.scopes:
            raise ValidationError("a grant needs at least one scope")
        for scope in self.scopes:
            validate_scope(scope)
        if len(set(self.scopes)) != len(self.scopes):
            raise ValidationError("a scope is listed twice")
        if self.window_end < self.window_start:
            raise ValidationError(f"data window ends ({self.window_end}) before it starts ({self.window_start})")
        if self.expires_at <= now:
            raise ValidationError("expiry must be in the future")
        if self.expires_at > now + timedelta(days=MAX_TERM_DAYS):
            raise ValidationError(f"expiry {self.expires_at.isoformat()} is more than 12 months away (at most {MAX_TERM_DAYS} days)")
        if not 1 <= self.reconfirm_days <= MAX_RECONFIRM_DAYS:
            raise ValidationError(f"reconfirmation interval must be 1-{MAX_RECONFIRM_DAYS} days, not {self.reconfirm_days}")
        for onward in self.onward_recipients:
            validate_recipient(onward)
            if onward == self.recipient:
                raise ValidationError("the recipient cannot be its own onward recipient")
        return {
            "enterprise_id": self.enterprise_id, "recipient": self.recipient, "purpose": self.purpose,
            "scopes": sorted(self.scopes), "window_start": self.window_start, "window_end": self.window_end,
            "granted_at": now, "expires_at": self.expires_at, "confirmed_at": now,
            "reconfirm_days": self.reconfirm_days, "onward_recipients": sorted(set(self.onward_recipients)),
            "withdrawn_at": None,
        }


def can_withdraw(grant: Grant, now: datetime) -> None:
    if grant.withdrawn_at is not None:
        raise ValidationError(f"consent {grant.id} was already withdrawn at {grant.withdrawn_at.isoformat()}")


def can_reconfirm(grant: Grant, now: datetime) -> None:
    """An active or overdue grant may be reconfirmed; a withdrawn or expired one must be granted anew."""
    status = grant.status(now)
    if status == "withdrawn":
        raise ValidationError(f"consent {grant.id} was withdrawn; grant a new one")
    if status == "expired":
        raise ValidationError(f"consent {grant.id} expired at {grant.expires_at.isoformat()}; grant a new one")


# --- the decision --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    grant_id: int | None = None

    @property
    def zh(self) -> str:
        return REASONS[self.reason][0]

    @property
    def en(self) -> str:
        return REASONS[self.reason][1]

    def to_json(self) -> dict[str, object]:
        return {"allowed": self.allowed, "reason": self.reason, "grant_id": self.grant_id,
                "reason_zh": self.zh, "reason_en": self.en}


# The order in which a grant is tested against a request. A denial names the grant that got furthest
# down this list and the test it failed, so the reason is the most specific one there is (a withdrawn
# grant for the right scope says "withdrawn", not "scope not granted").
_STAGES = ("scope_not_granted", "purpose_mismatch", "onward_not_consented", "withdrawn", "not_yet_valid",
           "expired", "reconfirmation_overdue", "outside_window")


def _first_failure(g: Grant, scope: str, purpose: str, start: date, end: date, now: datetime,
                   onward_to: str | None) -> int:
    """Index into _STAGES of the first test the grant fails, or len(_STAGES) when it allows."""
    if scope not in g.scopes:
        return 0
    if g.purpose != purpose:
        return 1
    if onward_to is not None and onward_to not in g.onward_recipients:
        return 2
    if g.withdrawn_at is not None and g.withdrawn_at <= now:
        return 3
    if now < g.granted_at:
        return 4
    if now >= g.expires_at:
        return 5
    if now >= g.confirmed_at + timedelta(days=g.reconfirm_days):
        return 6
    if start < g.window_start or end > g.window_end:
        return 7
    return 8


def check(grants: Iterable[Grant], recipient: str, enterprise_id: int, scope: str, purpose: str,
          data_range: tuple[date, date], now: datetime, onward_to: str | None = None) -> Decision:
    """May `recipient` read `enterprise_id`'s data of `scope`, dated within `data_range` (inclusive
    business dates), for `purpose`, at `now` (and, with `onward_to`, pass it on to that party)?

    Grants of other recipients or enterprises are ignored, so the caller may pass any superset.
    Unknown scopes or purposes, or a range that ends before it starts, are errors, not denials.
    """
    if scope not in SCOPES:
        validate_scope(scope)
    if purpose not in PURPOSES:
        validate_purpose(purpose)
    start, end = data_range
    if end < start:
        raise ValidationError(f"data range ends ({end}) before it starts ({start})")
    best, best_grant = -1, None
    for g in grants:
        if g.recipient != recipient or g.enterprise_id != enterprise_id:
            continue
        stage = _first_failure(g, scope, purpose, start, end, now, onward_to)
        if stage == len(_STAGES):
            return Decision(True, "granted", g.id)
        if stage > best:
            best, best_grant = stage, g
    if best_grant is None:
        return Decision(False, "no_grant")
    return Decision(False, _STAGES[best], best_grant.id)


@dataclass(frozen=True, slots=True)
class Access:
    """One access-log row: who read (or tried to read) what of whose data, why, and the decision."""

    enterprise_id: int
    recipient: str
    scope: str
    purpose: str
    data_start: date
    data_end: date
    at: datetime
    allowed: bool
    reason: str
    grant_id: int | None
    onward_to: str | None = None
    detail: str | None = None
