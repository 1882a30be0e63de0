"""Onboarding use cases: tenants (lenders, alliance partners, the operator), enterprises with a
validated unified social credit code and region, their sites, and their console users.

Who may do what is decided here, from the caller's `Principal`, so the API and the command line
behave alike (the command line acts as the operator):

- tenants: the operator (the edge asks for `identity:manage`);
- enterprises: the operator, or a lender's officer (`onboarding:write`); a lender that onboards an
  enterprise has it as a customer (`record_owners` kind `enterprise`), as when it makes an
  application or a loan. A lender lists and reads its customers only, an enterprise itself only;
  someone else's enterprise is *not found*;
- sites and an enterprise's console users: the operator, or a lender whose customer it is.

Every write is one transaction; a refused input changes nothing. Messages name the field at fault
(`ValidationError.field`, the problem body's `field`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Row
from sqlalchemy.exc import IntegrityError

from iotfin.core.errors import Conflict, Forbidden, NotFound, ValidationError
from iotfin.core.ids import is_valid_resident_id
from iotfin.core.time import business_date
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.identity import codes, store
from iotfin.identity.access import set_owner_in, visibility
from iotfin.identity.crypto import FieldCipher
from iotfin.identity.model import Principal
from iotfin.identity.tables import PARTNER_KINDS, SECTORS, TAX_GRADES, TENANT_KINDS

if TYPE_CHECKING:  # annotation only: the identity service loads argon2
    from iotfin.identity.service import IdentityService

#: The legal representative's personal data and the AES-GCM associated data of each column (the
#: same as `iotfin.protection.service.ENTERPRISE_PII`, which re-encrypts them after a key rotation).
LEGAL_REP_FIELDS = {"legal_rep_name": "enterprises.legal_rep_name",
                    "legal_rep_id_number": "enterprises.legal_rep_id_number",
                    "legal_rep_phone": "enterprises.legal_rep_phone"}
#: What a site is (the simulator's kinds, and a few more a pilot meets).
SITE_KINDS = ("factory", "warehouse", "depot", "yard", "farm", "site", "office", "store", "mine", "port")
TENANT_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # what consents name as the recipient
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,30}$")
_OTHER_ID = re.compile(r"^[A-Za-z0-9()\-]{5,32}$")  # passports, Hong Kong / Macao / Taiwan permits
_MONEY = re.compile(r"^\d{1,16}(\.\d{1,2})?$")


@dataclass(frozen=True)
class TenantIn:
    code: str
    name: str
    name_en: str
    kind: str
    partner_kind: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None


@dataclass(frozen=True)
class EnterpriseIn:
    uscc: str
    name: str
    name_en: str
    sector: str
    region_code: str
    founded_on: date
    registered_capital: str
    legal_rep_name: str
    legal_rep_id_number: str
    legal_rep_phone: str
    subsector: str = "unspecified"
    tax_grade: str = "M"            # 新设立 (new taxpayer): the grade of an enterprise not yet rated
    lender: str | None = None       # the operator onboarding for a lender: that lender's code


@dataclass(frozen=True)
class SiteIn:
    name: str
    kind: str
    address: str
    lat: float
    lon: float
    geofence_radius_m: float | None = None


OPERATOR = Principal(subject="cli:operator", platform=True)


class OnboardingService:
    def __init__(self, engine: Engine, cipher: FieldCipher, identity: IdentityService):
        self.engine = engine
        self.cipher = cipher
        self.identity = identity

    # --- tenants --------------------------------------------------------------------------------

    def create_tenant(self, data: TenantIn) -> dict[str, Any]:
        """A lender, an alliance partner or an operator tenant; 409 for a code in use."""
        values = _tenant_values(data)
        try:
            with write_transaction(self.engine) as conn:
                if store.tenant_code_taken(conn, values["code"]):
                    raise Conflict(f"a tenant with code {values['code']!r} exists already / 机构代码已存在")
                tenant_id = store.insert_tenant(conn, **values, created_at=datetime.now(UTC))
                row = store.tenant_row(conn, tenant_id=tenant_id)
        except IntegrityError:  # the same code created meanwhile by another request
            raise Conflict(f"a tenant with code {values['code']!r} exists already / 机构代码已存在") from None
        return tenant_json(row)

    def tenants(self, page: PageParams, kind: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        if kind is not None and kind not in TENANT_KINDS:
            raise ValidationError(f"kind must be one of {', '.join(TENANT_KINDS)}, not {kind!r}", field="kind")
        with self.engine.connect() as conn:
            rows, cursor = store.list_tenants(conn, page, kind)
        return [tenant_json(r) for r in rows], cursor

    def tenant(self, code: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = store.tenant_row(conn, code=code)
        if row is None:
            raise NotFound(f"no tenant with code {code!r}")
        return tenant_json(row)

    # --- enterprises ----------------------------------------------------------------------------

    def create_enterprise(self, who: Principal, data: EnterpriseIn) -> dict[str, Any]:
        """Onboard an enterprise: the code, region, sector and legal representative checked, the
        representative's data encrypted; a lender onboarding it (or the operator, naming `lender`)
        has it as a customer. 409 for a code already onboarded."""
        uscc = codes.check_uscc(data.uscc)
        where = codes.region(data.region_code)
        values = _enterprise_values(data, uscc.code, where)
        sealed = {attr: self.cipher.encrypt(values.pop(attr), ctx) for attr, ctx in LEGAL_REP_FIELDS.items()}
        try:
            with write_transaction(self.engine) as conn:
                owner = self._onboarding_lender(conn, who, data.lender)
                if store.uscc_taken(conn, uscc.code):
                    raise Conflict(f"an enterprise with uscc {uscc.code} is onboarded already / 该统一社会信用代码已登记")
                enterprise_id = store.insert_enterprise(conn, **values, **sealed, litigation_count=0,
                                                        key_person_changes=0, created_at=datetime.now(UTC))
                if owner is not None:
                    set_owner_in(conn, "enterprise", enterprise_id, owner, enterprise_id)
                row = store.enterprise_public(conn, enterprise_id)
        except IntegrityError:  # the same code onboarded meanwhile by another request
            raise Conflict(f"an enterprise with uscc {uscc.code} is onboarded already / 该统一社会信用代码已登记") from None
        return enterprise_json(row)

    def enterprises(self, who: Principal, page: PageParams, *, sector: str | None = None,
                    region_code: str | None = None, q: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """The enterprises the caller may see (all: the operator; a lender: its customers; an
        enterprise: itself), filtered by sector, region (a province or prefecture code lists all
        the regions in it) and text (name, English name or code)."""
        if sector is not None and sector not in SECTORS:
            raise ValidationError(f"sector must be one of {', '.join(SECTORS)}, not {sector!r}", field="sector")
        prefix = None
        if region_code is not None:
            where = codes.region(region_code)
            prefix = where.code[:2] if where.level == "province" else where.code[:4] if where.level == "prefecture" \
                else where.code
        text = (q or "").strip() or None
        if text is not None and len(text) > 100:
            raise ValidationError("q: at most 100 characters", field="q")
        with self.engine.connect() as conn:
            rows, cursor = store.list_enterprises(conn, page, self._visible(who), sector=sector, region_prefix=prefix,
                                                  text=text)
        return [enterprise_json(r) for r in rows], cursor

    def enterprise(self, who: Principal, enterprise_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = store.enterprise_public(conn, enterprise_id, self._visible(who))
        if row is None:
            raise NotFound(f"no enterprise {enterprise_id}")
        return enterprise_json(row)

    def visible_ids(self, who: Principal) -> list[int]:
        """The ids of the enterprises the caller may see (a lender: its customers)."""
        with self.engine.connect() as conn:
            return store.enterprise_ids(conn, self._visible(who))

    def require_visible(self, who: Principal, enterprise_id: int) -> None:
        """NotFound unless the enterprise exists and the caller may see it."""
        self.enterprise(who, enterprise_id)

    def exists(self, enterprise_id: int) -> bool:
        with self.engine.connect() as conn:
            return store.enterprise_exists(conn, enterprise_id)

    # --- an enterprise's sites and users --------------------------------------------------------

    def create_site(self, who: Principal, enterprise_id: int, data: SiteIn) -> dict[str, Any]:
        values = _site_values(data)
        with write_transaction(self.engine) as conn:
            self._require_manager(conn, who, enterprise_id)
            if store.site_name_taken(conn, enterprise_id, values["name"]):
                raise Conflict(f"enterprise {enterprise_id} has a site named {values['name']!r} already / 站点名称已存在")
            site_id = store.insert_site(conn, enterprise_id=enterprise_id, **values)
            row = store.site_row(conn, site_id)
        return site_json(row)

    def sites(self, who: Principal, enterprise_id: int, page: PageParams) -> tuple[list[dict[str, Any]], str | None]:
        self.require_visible(who, enterprise_id)
        with self.engine.connect() as conn:
            rows, cursor = store.list_sites(conn, enterprise_id, page)
        return [site_json(r) for r in rows], cursor

    def create_enterprise_user(self, who: Principal, enterprise_id: int, username: str, password: str,
                               display_name: str | None = None) -> dict[str, Any]:
        """A console user (role enterprise_admin) of the enterprise: by the operator, or a lender
        whose customer it is."""
        with self.engine.connect() as conn:
            self._require_manager(conn, who, enterprise_id)
        return self.identity.create_user(username, password, ["enterprise_admin"], enterprise_id=enterprise_id,
                                         display_name=display_name)

    # --- who may -------------------------------------------------------------------------------

    @staticmethod
    def _visible(who: Principal) -> Any:
        """WHERE clause of the enterprises the caller may see (None: all): the operator all, an
        enterprise itself, a lender its customers."""
        return store.visible_enterprises(*visibility(who))

    @staticmethod
    def _require_manager(conn: Any, who: Principal, enterprise_id: int) -> None:
        """The operator, or a lender whose customer the enterprise is; else *not found* (for a lender,
        an enterprise that is not its customer might as well not exist)."""
        if not store.enterprise_exists(conn, enterprise_id):
            raise NotFound(f"no enterprise {enterprise_id}")
        if who.platform:
            return
        if who.enterprise_id is not None:
            raise Forbidden("an enterprise's sites and users are set up by the operator or its lender")
        if who.tenant_id is None or not store.is_customer(conn, who.tenant_id, enterprise_id):
            raise NotFound(f"no enterprise {enterprise_id}")

    @staticmethod
    def _onboarding_lender(conn: Any, who: Principal, lender: str | None) -> int | None:
        """The lender tenant that will have the new enterprise as a customer (None: the operator's)."""
        if who.enterprise_id is not None:
            raise Forbidden("an enterprise cannot onboard another enterprise")
        if not who.platform:
            row = store.tenant_row(conn, tenant_id=who.tenant_id) if who.tenant_id is not None else None
            if row is None or row.kind != "bank":
                raise Forbidden("enterprises are onboarded by the operator or a lender / 仅平台或贷款机构可登记企业")
            if lender is not None and lender != row.code:
                raise Forbidden("a lender onboards enterprises for itself only (leave out lender)")
            return int(row.id)
        if lender is None:
            return None
        row = store.tenant_row(conn, code=lender)
        if row is None or row.kind != "bank":
            raise ValidationError(f"lender: no lender with code {lender!r}", field="lender")
        return int(row.id)


# --- validation: each field, by name -------------------------------------------------------------


def _text(value: Any, field: str, max_len: int, required: bool = True) -> str | None:
    text = value.strip() if isinstance(value, str) else value
    if text is None or text == "":
        if required:
            raise ValidationError(f"{field} is required", field=field)
        return None
    if not isinstance(text, str) or len(text) > max_len:
        raise ValidationError(f"{field}: text of at most {max_len} characters", field=field)
    return text


def _tenant_values(data: TenantIn) -> dict[str, Any]:
    code = (data.code or "").strip()
    if not TENANT_CODE.match(code):
        raise ValidationError(f"code {data.code!r}: 1-64 characters a-z, 0-9, '.', '_' or '-', starting with a "
                              "letter or digit (consents name the tenant by it)", field="code")
    if data.kind not in TENANT_KINDS:
        raise ValidationError(f"kind must be one of {', '.join(TENANT_KINDS)}, not {data.kind!r}", field="kind")
    if data.kind == "partner" and data.partner_kind not in PARTNER_KINDS:
        raise ValidationError(f"a partner needs partner_kind, one of {', '.join(PARTNER_KINDS)}", field="partner_kind")
    if data.kind != "partner" and data.partner_kind is not None:
        raise ValidationError("partner_kind is for partners only (kind partner)", field="partner_kind")
    email = _text(data.contact_email, "contact_email", 254, required=False)
    if email is not None and not _EMAIL.match(email):
        raise ValidationError(f"contact_email {email!r} is not an e-mail address", field="contact_email")
    phone = _text(data.contact_phone, "contact_phone", 32, required=False)
    if phone is not None and not _PHONE.match(phone):
        raise ValidationError(f"contact_phone {phone!r}: digits, spaces and '-', optionally after '+'",
                              field="contact_phone")
    return {"code": code, "name": _text(data.name, "name", 200), "name_en": _text(data.name_en, "name_en", 200),
            "kind": data.kind, "partner_kind": data.partner_kind,
            "contact_name": _text(data.contact_name, "contact_name", 200, required=False),
            "contact_phone": phone, "contact_email": email}


def _enterprise_values(data: EnterpriseIn, uscc: str, where: codes.Region) -> dict[str, Any]:
    if data.sector not in SECTORS:
        raise ValidationError(f"sector must be one of {', '.join(SECTORS)}, not {data.sector!r}", field="sector")
    if data.tax_grade not in TAX_GRADES:
        raise ValidationError(f"tax_grade must be one of {', '.join(TAX_GRADES)}, not {data.tax_grade!r}",
                              field="tax_grade")
    if not isinstance(data.founded_on, date) or data.founded_on > business_date(datetime.now(UTC)) \
            or data.founded_on < date(1900, 1, 1):
        raise ValidationError(f"founded_on {data.founded_on}: a date in the past", field="founded_on")
    capital = str(data.registered_capital).strip()
    try:
        amount = Decimal(capital) if _MONEY.match(capital) else None
    except InvalidOperation:
        amount = None
    if amount is None:
        raise ValidationError(f"registered_capital {data.registered_capital!r}: yuan as a decimal string with at "
                              "most 2 decimals, e.g. \"5000000.00\"", field="registered_capital")
    id_number = _text(data.legal_rep_id_number, "legal_rep_id_number", 32)
    assert id_number is not None
    resident = len(id_number) == 18 and id_number[:17].isdigit()
    if resident and not is_valid_resident_id(id_number):
        raise ValidationError("legal_rep_id_number: the resident identity number's check character is wrong / "
                              "身份证号码校验码错误", field="legal_rep_id_number")
    if not resident and not _OTHER_ID.match(id_number):
        raise ValidationError("legal_rep_id_number: an 18-character resident identity number, or a passport or "
                              "permit number (5-32 letters, digits)", field="legal_rep_id_number")
    phone = _text(data.legal_rep_phone, "legal_rep_phone", 32)
    assert phone is not None
    if not _PHONE.match(phone):
        raise ValidationError("legal_rep_phone: digits, spaces and '-', optionally after '+'", field="legal_rep_phone")
    return {"uscc": uscc, "name": _text(data.name, "name", 200), "name_en": _text(data.name_en, "name_en", 200),
            "sector": data.sector, "subsector": _text(data.subsector, "subsector", 64) or "unspecified",
            "region_code": where.code, "region": where.name[:100], "founded_on": data.founded_on,
            "registered_capital": amount.quantize(Decimal("0.01")), "tax_grade": data.tax_grade,
            "legal_rep_name": _text(data.legal_rep_name, "legal_rep_name", 100), "legal_rep_id_number": id_number.upper(),
            "legal_rep_phone": phone}


def _site_values(data: SiteIn) -> dict[str, Any]:
    if data.kind not in SITE_KINDS:
        raise ValidationError(f"kind must be one of {', '.join(SITE_KINDS)}, not {data.kind!r}", field="kind")
    for field, value, bound in (("lat", data.lat, 90), ("lon", data.lon, 180)):
        if not isinstance(value, int | float) or not math.isfinite(value) or abs(value) > bound:
            raise ValidationError(f"{field} must be a number from -{bound} to {bound} (WGS 84 degrees)", field=field)
    radius = data.geofence_radius_m
    if radius is not None and (not isinstance(radius, int | float) or not math.isfinite(radius)
                               or not 0 < radius <= 1_000_000):
        raise ValidationError("geofence_radius_m: metres, more than 0 and at most 1000000", field="geofence_radius_m")
    return {"name": _text(data.name, "name", 200), "kind": data.kind, "address": _text(data.address, "address", 500),
            "lat": float(data.lat), "lon": float(data.lon), "geofence_radius_m": None if radius is None else float(radius)}


# --- what the API and the command line show ------------------------------------------------------


def tenant_json(row: Row | Mapping[str, Any]) -> dict[str, Any]:
    r = row._mapping if isinstance(row, Row) else row
    return {"id": r["id"], "code": r["code"], "name": r["name"], "name_en": r["name_en"], "kind": r["kind"],
            "partner_kind": r["partner_kind"], "contact_name": r["contact_name"], "contact_phone": r["contact_phone"],
            "contact_email": r["contact_email"], "created_at": r["created_at"]}


def enterprise_json(row: Row) -> dict[str, Any]:
    """The enterprise without personal data (the legal representative is behind `pii:read`)."""
    r = row._mapping
    try:
        region_en: str | None = codes.region(r["region_code"]).name_en
    except ValidationError:  # a row imported with a code outside the shipped data
        region_en = None
    return {"id": r["id"], "uscc": r["uscc"], "name": r["name"], "name_en": r["name_en"], "sector": r["sector"],
            "subsector": r["subsector"], "region_code": r["region_code"], "region": r["region"],
            "region_en": region_en, "founded_on": r["founded_on"], "registered_capital": r["registered_capital"],
            "tax_grade": r["tax_grade"], "onboarded_by": r["onboarded_by"], "created_at": r["created_at"]}


def site_json(row: Row) -> dict[str, Any]:
    r = row._mapping
    return {"id": r["id"], "enterprise_id": r["enterprise_id"], "name": r["name"], "kind": r["kind"],
            "address": r["address"], "lat": r["lat"], "lon": r["lon"], "geofence_radius_m": r["geofence_radius_m"]}
