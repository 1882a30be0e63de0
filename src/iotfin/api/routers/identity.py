"""HTTP adapter of onboarding (docs/onboarding.md): tenants and their principals, enterprises, sites,
enterprise users, device provisioning, and the lists and telemetry reads an operator, a lender and
an enterprise work through.

Access (docs/api.md#tenant-isolation):
- tenants, their clients and users: the operator (`identity:manage`);
- enterprises: onboarded by the operator or a lender's officer (`onboarding:write`); read
  (`enterprises:read`) by the operator (all), a lender (its customers: those it onboarded or has
  any record of) and the enterprise itself; someone else's enterprise is a 404;
- sites and enterprise users: the operator, or a lender whose customer the enterprise is;
- devices: provisioned (`devices:provision`) by the operator, the enterprise itself, or an IoT
  vendor with the enterprise's consent (the device type's telemetry scope, purpose
  `supply_chain_service`); listed by the operator (all), the enterprise (its own) and a lender
  (`telemetry:read`: devices of enterprises that consented to the device's telemetry scope, each
  check logged);
- telemetry (`telemetry:read`): the enterprise itself, the operator, or a lender or partner within
  the enterprise's consent to the device's telemetry scope for the stated purpose (logged).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import consented, principal, require
from iotfin.api.fields import Text
from iotfin.api.pagination import Page
from iotfin.api.responses import DecimalJSONResponse
from iotfin.api.routing import ApiRouter
from iotfin.consent.model import PURPOSES, TELEMETRY_SCOPE_OF_DEVICE
from iotfin.consent.service import ReadRequest
from iotfin.core.errors import Forbidden, NotFound, ValidationError
from iotfin.core.time import MS_PER_DAY, business_date, now_ms, parse_time, utc_now
from iotfin.db.pagination import ID_MAX
from iotfin.identity.model import Principal
from iotfin.identity.onboarding import EnterpriseIn, SiteIn, TenantIn
from iotfin.identity.tables import PARTNER_KINDS, TENANT_KINDS
from iotfin.supplychain import store as supplychain_store
from iotfin.supplychain.tables import DOC_TYPES
from iotfin.telemetry.model import parse_bucket

MAX_RANGE_MS = 400 * MS_PER_DAY
MAX_BUCKETS = 10_000
Id = Annotated[int, Field(gt=0, le=ID_MAX)]


class TenantBody(BaseModel):
    code: Text(64)
    name: Text(200)
    name_en: Text(200)
    kind: Literal[TENANT_KINDS]  # type: ignore[valid-type]
    partner_kind: Literal[PARTNER_KINDS] | None = None  # type: ignore[valid-type]
    contact_name: Text(200) | None = None
    contact_phone: Text(32) | None = None
    contact_email: Text(254) | None = None


class ClientBody(BaseModel):
    name: Text(200)
    scopes: list[Text(64)] = Field(min_length=1, max_length=64)


class UserBody(BaseModel):
    username: Text(100)
    password: Text(200, min_length=1)
    roles: list[Text(32)] = Field(min_length=1, max_length=8)
    display_name: Text(200) | None = None


class EnterpriseUserBody(BaseModel):
    username: Text(100)
    password: Text(200, min_length=1)
    display_name: Text(200) | None = None


class EnterpriseBody(BaseModel):
    uscc: Text(64) = Field(description="unified social credit code (GB 32100-2015), 18 characters")
    name: Text(200)
    name_en: Text(200)
    sector: Text(32)
    subsector: Text(64) = "unspecified"
    region_code: Text(16) = Field(description="GB/T 2260 region code of registration, e.g. 440300")
    founded_on: date
    registered_capital: Text(32) = Field(description="yuan, a decimal string", examples=["5000000.00"])
    legal_rep_name: Text(100)
    legal_rep_id_number: Text(32)
    legal_rep_phone: Text(32)
    tax_grade: Text(1) = "M"
    lender: Text(64) | None = Field(default=None, description="the operator onboarding for a lender: its code")


class SiteBody(BaseModel):
    name: Text(200)
    kind: Text(32)
    address: Text(500)
    lat: float
    lon: float
    geofence_radius_m: float | None = None


class DeviceBody(BaseModel):
    name: Text(200) | None = Field(default=None, description="unique device name (optional)")
    profile: Text(64) = Field(description="device profile, e.g. electricity_meter")
    site_id: Id


Manager = Annotated[Principal, Depends(require("identity:manage"))]
Onboarder = Annotated[Principal, Depends(require("onboarding:write"))]
Reader = Annotated[Principal, Depends(require("enterprises:read"))]
Provisioner = Annotated[Principal, Depends(require("devices:provision"))]
TelemetryReader = Annotated[Principal, Depends(require("telemetry:read"))]
Caller = Annotated[Principal, Depends(principal)]


async def _user_maker(who: Caller) -> Principal:
    """An enterprise's console users are made by the operator (`identity:manage`) or a lender's
    officer (`onboarding:write`, for its customers)."""
    who.require("identity:manage" if who.platform else "onboarding:write")
    return who


UserMaker = Annotated[Principal, Depends(_user_maker)]


def _json(data: Any, status: int = 200) -> DecimalJSONResponse:
    return DecimalJSONResponse(data, status_code=status)


def _page(items: list[dict[str, Any]], cursor: str | None) -> DecimalJSONResponse:
    return _json({"items": items, "next_cursor": cursor})


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["onboarding"])

    def ws(request: Request) -> Any:
        return request.app.state.workspace

    # --- tenants ---------------------------------------------------------------------------------

    @r.post("/tenants", status_code=201, response_model=None)
    def create_tenant(body: TenantBody, who: Manager, request: Request) -> DecimalJSONResponse:
        """A lender (`bank`), an alliance partner (`partner`: `iot_vendor`, `logistics`, `warehouse`)
        or an operator tenant, with its business contact. 409 for a code in use."""
        return _json(ws(request).onboarding.create_tenant(TenantIn(**body.model_dump())), 201)

    @r.get("/tenants", response_model=None)
    def tenants(who: Manager, request: Request, page: Page,
                kind: Literal[TENANT_KINDS] | None = None) -> DecimalJSONResponse:  # type: ignore[valid-type]
        return _page(*ws(request).onboarding.tenants(page, kind))

    @r.get("/tenants/{code}", response_model=None)
    def tenant(code: str, who: Manager, request: Request) -> DecimalJSONResponse:
        return _json(ws(request).onboarding.tenant(code))

    @r.post("/tenants/{code}/clients", status_code=201)
    def create_tenant_client(code: str, body: ClientBody, who: Manager, request: Request) -> dict[str, Any]:
        """A partner system of the tenant (OAuth2 client credentials); the secret is shown this once.
        A partner's clients hold partner scopes only (an IoT vendor's: `devices:provision` too)."""
        return ws(request).identity.create_client(body.name, body.scopes, tenant=code)

    @r.get("/tenants/{code}/clients", response_model=None)
    def tenant_clients(code: str, who: Manager, request: Request, page: Page) -> DecimalJSONResponse:
        """The tenant's partner clients (name, client id, scopes, active; never a secret)."""
        return _page(*ws(request).identity.principals_of(code, "clients", page))

    @r.get("/tenants/{code}/users", response_model=None)
    def tenant_users(code: str, who: Manager, request: Request, page: Page) -> DecimalJSONResponse:
        """The tenant's console users (username, display name, roles, active; never a password hash)."""
        return _page(*ws(request).identity.principals_of(code, "users", page))

    @r.post("/tenants/{code}/users", status_code=201)
    def create_tenant_user(code: str, body: UserBody, who: Manager, request: Request) -> dict[str, Any]:
        """A console user of the tenant with roles (risk_officer, approver, auditor; platform_admin for
        the operator's own tenant)."""
        return ws(request).identity.create_user(body.username, body.password, body.roles, tenant=code,
                                                display_name=body.display_name)

    # --- enterprises -----------------------------------------------------------------------------

    @r.post("/enterprises", status_code=201, response_model=None)
    def create_enterprise(body: EnterpriseBody, who: Onboarder, request: Request) -> DecimalJSONResponse:
        """Onboard an enterprise: its unified social credit code (check character, authority, type and
        region verified), GB/T 2260 region, sector and legal representative (stored encrypted, never
        returned here). A lender onboarding it has it as a customer. 422 names the field at fault;
        409 for a code already onboarded."""
        return _json(ws(request).onboarding.create_enterprise(who, EnterpriseIn(**body.model_dump())), 201)

    @r.get("/enterprises", response_model=None)
    def enterprises(who: Reader, request: Request, page: Page, sector: str | None = Query(default=None, max_length=32),
                    region_code: str | None = Query(default=None, max_length=6),
                    q: str | None = Query(default=None, max_length=100)) -> DecimalJSONResponse:
        """The operator: every enterprise; a lender: its customers; an enterprise: itself. A province or
        prefecture `region_code` lists every region in it; `q` matches the name, English name or code."""
        return _page(*ws(request).onboarding.enterprises(who, page, sector=sector, region_code=region_code, q=q))

    @r.get("/enterprises/{enterprise_id}", response_model=None)
    def enterprise(enterprise_id: int, who: Reader, request: Request) -> DecimalJSONResponse:
        return _json(ws(request).onboarding.enterprise(who, enterprise_id))

    @r.post("/enterprises/{enterprise_id}/users", status_code=201)
    def create_enterprise_user(enterprise_id: int, body: EnterpriseUserBody, who: UserMaker,
                               request: Request) -> dict[str, Any]:
        """A console user of the enterprise (role enterprise_admin): by the operator (`identity:manage`)
        or a lender whose customer it is (`onboarding:write`)."""
        return ws(request).onboarding.create_enterprise_user(who, enterprise_id, body.username, body.password,
                                                             body.display_name)

    @r.post("/enterprises/{enterprise_id}/sites", status_code=201)
    def create_site(enterprise_id: int, body: SiteBody, who: Onboarder, request: Request) -> dict[str, Any]:
        """A site of the enterprise (factory, warehouse, depot, yard, farm, ...) with its address and
        WGS 84 coordinates; `geofence_radius_m` fences the devices placed there."""
        return ws(request).onboarding.create_site(who, enterprise_id, SiteIn(**body.model_dump()))

    @r.get("/enterprises/{enterprise_id}/sites")
    def sites(enterprise_id: int, who: Reader, request: Request, page: Page) -> dict[str, Any]:
        items, cursor = ws(request).onboarding.sites(who, enterprise_id, page)
        return {"items": items, "next_cursor": cursor}

    @r.get("/enterprises/{enterprise_id}/trade-documents", response_model=None)
    def trade_documents(enterprise_id: int, who: Reader, request: Request, page: Page,
                        doc_type: Literal[DOC_TYPES] | None = None,  # type: ignore[valid-type]
                        purpose: str = Query(default="credit_assessment", max_length=32)) -> DecimalJSONResponse:
        """Orders, delivery notes, invoices, warehouse receipts and payments the enterprise sold or
        bought under, newest first: the enterprise's own, all for the operator, a lender's customer's
        within its consent to `trade_documents` for `purpose` (logged); another's enterprise is a 404."""
        if purpose not in PURPOSES:
            raise ValidationError(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
        platform = ws(request)
        platform.onboarding.enterprise(who, enterprise_id)  # 404 unless the caller may see it
        consented(request, who, enterprise_id, "trade_documents", purpose, detail="trade documents")
        with platform.engine.connect() as conn:
            return _page(*supplychain_store.trade_documents_page(conn, enterprise_id, page, doc_type))

    # --- devices ---------------------------------------------------------------------------------

    @r.post("/enterprises/{enterprise_id}/devices", status_code=201, response_model=None)
    def provision_device(enterprise_id: int, body: DeviceBody, who: Provisioner,
                         request: Request) -> DecimalJSONResponse:
        """Register a device at a site of the enterprise. The access token is shown this once: the
        device sends it as its MQTT username, or in the HTTP device API's path. An IoT vendor needs
        the enterprise's consent to the device type's telemetry scope for `supply_chain_service`."""
        platform = ws(request)
        if not platform.onboarding.exists(enterprise_id) or (who.enterprise_id is not None
                                                             and who.enterprise_id != enterprise_id):
            raise NotFound(f"no enterprise {enterprise_id}")
        device_type = platform.devices.profile_device_type(body.profile)
        if device_type is None:
            raise ValidationError(f"profile: no device profile {body.profile!r}", field="profile")
        if not who.platform and who.enterprise_id is None:  # a partner, within the enterprise's consent
            scope = TELEMETRY_SCOPE_OF_DEVICE.get(device_type)
            if scope is None:
                raise Forbidden(f"a partner provisions devices whose data an enterprise can consent to "
                                f"({', '.join(sorted(TELEMETRY_SCOPE_OF_DEVICE))}), not {device_type!r}")
            consented(request, who, enterprise_id, scope, "supply_chain_service",
                      detail=f"provision {body.profile} at site {body.site_id}")
        issued = platform.devices.create(enterprise_id=enterprise_id, profile=body.profile, name=body.name,
                                         site_id=body.site_id)
        return _json({"device_id": issued.id, "name": issued.name, "enterprise_id": issued.enterprise_id,
                      "site_id": issued.site_id, "profile": issued.profile, "device_type": device_type,
                      "status": "active", "access_token": issued.token}, 201)

    @r.get("/devices", response_model=None)
    def devices(who: Caller, request: Request, page: Page,
                enterprise_id: int | None = Query(default=None, gt=0, le=ID_MAX),
                site_id: int | None = Query(default=None, gt=0, le=ID_MAX),
                status: Literal["active", "inactive", "revoked"] | None = None,
                profile: str | None = Query(default=None, max_length=64),
                purpose: str = Query(default="post_loan_monitoring", max_length=32)) -> DecimalJSONResponse:
        """The operator: every device; an enterprise (`devices:read`): its own; a lender or partner
        (`telemetry:read`): the devices of its customers (or of `enterprise_id`) whose telemetry
        scope the enterprise consented to for `purpose` (each check logged)."""
        platform = ws(request)
        if who.platform or who.enterprise_id is not None:
            who.require("devices:read")
            visible = None if who.platform else [(who.enterprise_id, None)]
        else:
            who.require("telemetry:read")
            visible = _consented_device_types(request, who, enterprise_id, purpose)
        return _page(*platform.devices.devices(page, visible, enterprise_id=enterprise_id, site_id=site_id,
                                               status=status, profile=profile))

    # --- telemetry -------------------------------------------------------------------------------

    @r.get("/enterprises/{enterprise_id}/telemetry", tags=["telemetry"], response_model=None)
    def telemetry(enterprise_id: int, who: TelemetryReader, request: Request,
                  device_id: int = Query(gt=0, le=ID_MAX), key: str | None = Query(default=None, max_length=255),
                  start: str | None = Query(default=None, max_length=40,
                                            description="ISO 8601 (naive = UTC) or epoch ms; default end - 24 h"),
                  end: str | None = Query(default=None, max_length=40, description="exclusive; default now"),
                  bucket: str | None = Query(default=None, max_length=8, description="1m, 15m, 1h, 1d; none: raw"),
                  purpose: str = Query(default="post_loan_monitoring", max_length=32),
                  limit: int = Query(default=1000, ge=1, le=10_000, description="raw points at most")
                  ) -> DecimalJSONResponse:
        """One device's readings of one key: raw points, or `bucket` aggregates (avg, min, max, count).
        A lender or partner reads within the enterprise's consent to the device's telemetry scope for
        `purpose`, over the dates read (logged); the enterprise and the operator read unchecked."""
        platform = ws(request)
        if who.enterprise_id is not None and who.enterprise_id != enterprise_id:
            raise NotFound(f"no enterprise {enterprise_id}")
        device = platform.devices.device(device_id)
        if device is None or device["enterprise_id"] != enterprise_id:
            raise NotFound(f"no device {device_id} at enterprise {enterprise_id}")
        metric = _metric(device, key)
        end_ms = _time(end, "end") if end is not None else now_ms()
        start_ms = _time(start, "start") if start is not None else end_ms - MS_PER_DAY
        if end_ms <= start_ms or end_ms - start_ms > MAX_RANGE_MS:
            raise ValidationError("start must be before end, at most 400 days apart", field="start")
        width = None
        if bucket is not None:
            try:
                width = parse_bucket(bucket)
            except ValueError as exc:
                raise ValidationError(f"bucket: {exc}", field="bucket") from None
            if (end_ms - start_ms) // width > MAX_BUCKETS:
                raise ValidationError(f"bucket {bucket} over this range gives more than {MAX_BUCKETS} buckets",
                                      field="bucket")
        if purpose not in PURPOSES:
            raise ValidationError(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
        if not who.platform and who.enterprise_id is None:
            scope = TELEMETRY_SCOPE_OF_DEVICE.get(device["device_type"])
            if scope is None:
                raise Forbidden(f"no consent scope covers devices of type {device['device_type']!r}")
            days = (_day(start_ms), _day(end_ms - 1))
            consented(request, who, enterprise_id, scope, purpose, detail=f"telemetry {device_id}/{metric}",
                      data_range=days)
        out: dict[str, Any] = {"enterprise_id": enterprise_id, "device_id": device_id, "key": metric,
                               "start": start_ms, "end": end_ms, "bucket": bucket}
        if width is None:
            table = platform.telemetry.series(device_id, metric, start_ms, end_ms)
            ts, values = table["ts"].to_pylist(), table["value"].to_pylist()
            out["points"] = [{"ts": t, "value": v} for t, v in zip(ts[:limit], values[:limit], strict=True)]
            out["truncated"] = len(ts) > limit
        else:
            agg = platform.telemetry.aggregate(device_id, metric, start_ms, end_ms, bucket).to_pydict()
            # `last`: the bucket's newest reading (a device's last reading, e.g. on the console's enterprise page)
            out["points"] = [{"ts": t, "avg": a, "min": lo, "max": hi, "count": n, "last": la}
                             for t, a, lo, hi, n, la in zip(agg["bucket_start"], agg["mean"], agg["min"], agg["max"],
                                                            agg["count"], agg["last"], strict=True)]
        return _json(out)

    return r


def _consented_device_types(request: Request, who: Principal, enterprise_id: int | None,
                            purpose: str) -> list[tuple[int, list[str]]]:
    """(enterprise, device types) a lender or partner may list: of its customers (or `enterprise_id`),
    the device types whose telemetry scope the enterprise consented to for `purpose`; every check is
    logged."""
    if purpose not in PURPOSES:
        raise ValidationError(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
    platform = request.app.state.workspace
    if who.tenant_code is None or who.tenant_id is None:
        return []
    if enterprise_id is not None:
        candidates = [enterprise_id]
    else:
        candidates = platform.onboarding.visible_ids(who)
    types = platform.devices.device_types_of(candidates)
    if not types:
        return []
    today = business_date(utc_now())
    by_scope: dict[int, dict[str, list[str]]] = {}
    for eid, device_type in types:
        scope = TELEMETRY_SCOPE_OF_DEVICE.get(device_type)
        if scope is not None:
            by_scope.setdefault(eid, {}).setdefault(scope, []).append(device_type)
    plan = {eid: [ReadRequest(scope, purpose, today, today) for scope in sorted(scopes)]
            for eid, scopes in by_scope.items()}
    decisions = platform.consent.check_many(who.tenant_code, sorted(plan), plan, detail="list devices")
    out = []
    for eid, ds in decisions.items():
        allowed = [t for read, d in zip(plan[eid], ds, strict=True) if d.allowed for t in by_scope[eid][read.scope]]
        if allowed:
            out.append((eid, allowed))
    return out


def _metric(device: dict[str, Any], key: str | None) -> str:
    """The key read: the one asked for (one of the profile's metrics), or the profile's only metric."""
    named = [m for m in device["metrics"] if m != "*"]
    if key is None:
        if len(named) == 1:
            return named[0]
        raise ValidationError(f"key: which metric? this device reports {', '.join(named) or 'any key'}", field="key")
    if "*" not in device["metrics"] and key not in named:
        raise ValidationError(f"key {key!r}: this device reports {', '.join(named)}", field="key")
    return key


def _time(text: str, field: str) -> int:
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        raise ValidationError(f"{field}: an ISO 8601 date or time (naive = UTC), or epoch milliseconds",
                              field=field) from None


def _day(ms: int) -> date:
    """The business date (Asia/Shanghai) of an epoch-ms instant."""
    return business_date(datetime.fromtimestamp(ms / 1000, UTC))
