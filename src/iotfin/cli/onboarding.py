"""`iotfin tenants ...`, `iotfin enterprises ...`, `iotfin sites ...`: onboarding from the operator's
shell, through the same service the API uses (docs/onboarding.md). The command line acts as the
platform operator."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import ValidationError
from iotfin.core.jsonout import dumps

tenants_app = typer.Typer(help="Tenants: lenders, alliance partners (IoT vendors, logistics, warehouses), the "
                          "operator.", no_args_is_help=True)
enterprises_app = typer.Typer(help="Enterprises: onboard (统一社会信用代码 checked), list, show.", no_args_is_help=True)
sites_app = typer.Typer(help="An enterprise's sites: factories, warehouses, depots... with address and coordinates.",
                        no_args_is_help=True)

LimitOpt = Annotated[int, typer.Option(min=1, max=200, help="Items per page (at most 200).")]
CursorOpt = Annotated[str | None, typer.Option(help="next_cursor of the previous page.")]


def _svc(data_dir: Path | None) -> Any:
    return kit.workspace(data_dir, schema=True).onboarding


def _onboarding() -> Any:
    """The onboarding module: its input records and the operator principal the command line acts as."""
    from iotfin.identity import onboarding  # lazy: it brings SQLAlchemy; `iotfin --help` starts without it

    return onboarding


def _page(limit: int, cursor: str | None) -> Any:
    from iotfin.db.pagination import PageParams, decode_cursor  # lazy: SQLAlchemy, as above

    return PageParams(limit, decode_cursor(cursor) if cursor else None)


def _list(title: str, columns: tuple[str, ...], items: list[dict[str, Any]], cursor: str | None,
          as_json: bool) -> None:
    def render(d: dict[str, Any]) -> None:
        if not d["items"]:
            kit.out.print(f"{title}: none / 无")
            return
        table = Table(*columns, title=title)
        for item in d["items"]:
            table.add_row(*[v if isinstance(v := item.get(c), str) else dumps(v).strip('"') for c in columns])
        kit.out.print(table)
        if d["next_cursor"]:
            kit.out.print(f"more: --cursor {d['next_cursor']}")

    kit.emit({"items": items, "next_cursor": cursor}, as_json, render)


# --- tenants --------------------------------------------------------------------------------------


@tenants_app.command("create")
def tenants_create(
    code: Annotated[str, typer.Option(help="Code (a-z, 0-9, '.', '_', '-'): consents name the tenant by it.")],
    name: Annotated[str, typer.Option(help="Name in Chinese.")],
    name_en: Annotated[str, typer.Option("--name-en", help="Name in English.")],
    kind: Annotated[str, typer.Option(help="bank, partner or platform.")] = "bank",
    partner_kind: Annotated[str | None, typer.Option("--partner-kind",
                                                     help="A partner's kind: iot_vendor, logistics, warehouse.")] = None,
    contact_name: Annotated[str | None, typer.Option("--contact-name")] = None,
    contact_phone: Annotated[str | None, typer.Option("--contact-phone")] = None,
    contact_email: Annotated[str | None, typer.Option("--contact-email")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a lender, an alliance partner or an operator tenant."""
    created = _svc(data_dir).create_tenant(_onboarding().TenantIn(code, name, name_en, kind, partner_kind, contact_name,
                                                    contact_phone, contact_email))
    kit.show("tenant created / 已创建机构", created, as_json)


@tenants_app.command("list")
def tenants_list(kind: Annotated[str | None, typer.Option(help="Only bank, partner or platform.")] = None,
                 limit: LimitOpt = 50, cursor: CursorOpt = None, data_dir: DataDirOpt = None,
                 as_json: JsonOpt = False) -> None:
    """The tenants, oldest first."""
    items, next_cursor = _svc(data_dir).tenants(_page(limit, cursor), kind)
    _list("tenants / 机构", ("id", "code", "name", "name_en", "kind", "partner_kind", "contact_name"), items,
          next_cursor, as_json)


# --- enterprises ----------------------------------------------------------------------------------


@enterprises_app.command("create")
def enterprises_create(
    uscc: Annotated[str, typer.Option(help="Unified social credit code, 18 characters (GB 32100-2015).")],
    name: Annotated[str, typer.Option(help="Registered name in Chinese.")],
    name_en: Annotated[str, typer.Option("--name-en", help="Name in English.")],
    sector: Annotated[str, typer.Option(help="manufacturing, logistics, energy, agriculture or infrastructure.")],
    region_code: Annotated[str, typer.Option("--region-code", help="GB/T 2260 region code, e.g. 440300.")],
    founded_on: Annotated[str, typer.Option("--founded-on", help="Date of establishment, YYYY-MM-DD.")],
    registered_capital: Annotated[str, typer.Option("--registered-capital", help="Yuan, e.g. 5000000.00.")],
    legal_rep_name: Annotated[str, typer.Option("--legal-rep-name", help="Legal representative (stored encrypted).")],
    legal_rep_id_number: Annotated[str, typer.Option("--legal-rep-id-number", envvar="IOTFIN_LEGAL_REP_ID_NUMBER",
                                                     help="Their identity document number (encrypted).")],
    legal_rep_phone: Annotated[str, typer.Option("--legal-rep-phone", help="Their phone (encrypted).")],
    subsector: Annotated[str, typer.Option(help="Sub-sector, free text.")] = "unspecified",
    tax_grade: Annotated[str, typer.Option("--tax-grade", help="A, B, M, C or D (M: not yet rated).")] = "M",
    lender: Annotated[str | None, typer.Option(help="Code of the lender the enterprise is a customer of.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Onboard an enterprise: the code's check character, authority, type and region are verified."""
    try:
        founded = date.fromisoformat(founded_on)
    except ValueError:
        raise ValidationError(f"--founded-on: not a date (YYYY-MM-DD): {founded_on!r}", field="founded_on") from None
    m = _onboarding()
    created = _svc(data_dir).create_enterprise(m.OPERATOR, m.EnterpriseIn(
        uscc=uscc, name=name, name_en=name_en, sector=sector, region_code=region_code, founded_on=founded,
        registered_capital=registered_capital, legal_rep_name=legal_rep_name,
        legal_rep_id_number=legal_rep_id_number, legal_rep_phone=legal_rep_phone, subsector=subsector,
        tax_grade=tax_grade, lender=lender))
    kit.show("enterprise onboarded / 企业已登记", created, as_json)


@enterprises_app.command("list")
def enterprises_list(sector: Annotated[str | None, typer.Option()] = None,
                     region_code: Annotated[str | None, typer.Option("--region-code",
                                                                     help="A province or prefecture lists all in it.")] = None,
                     q: Annotated[str | None, typer.Option("--q", help="Text in the name, English name or code.")] = None,
                     limit: LimitOpt = 50, cursor: CursorOpt = None, data_dir: DataDirOpt = None,
                     as_json: JsonOpt = False) -> None:
    """The enterprises, oldest first."""
    items, next_cursor = _svc(data_dir).enterprises(_onboarding().OPERATOR, _page(limit, cursor), sector=sector,
                                                    region_code=region_code, q=q)
    _list("enterprises / 企业", ("id", "uscc", "name", "sector", "region_code", "region", "onboarded_by"), items,
          next_cursor, as_json)


@enterprises_app.command("show")
def enterprises_show(enterprise: Annotated[int, typer.Argument(help="Enterprise id.")], data_dir: DataDirOpt = None,
                     as_json: JsonOpt = False) -> None:
    """One enterprise (without the legal representative's personal data)."""
    kit.show("enterprise / 企业", _svc(data_dir).enterprise(_onboarding().OPERATOR, enterprise), as_json)


# --- sites ----------------------------------------------------------------------------------------


@sites_app.command("create")
def sites_create(
    enterprise: Annotated[int, typer.Option(help="Enterprise id.")],
    name: Annotated[str, typer.Option(help="Site name, unique within the enterprise.")],
    kind: Annotated[str, typer.Option(help="factory, warehouse, depot, yard, farm, site, office, store, mine, port.")],
    address: Annotated[str, typer.Option(help="Postal address.")],
    lat: Annotated[float, typer.Option(help="Latitude, WGS 84 degrees.")],
    lon: Annotated[float, typer.Option(help="Longitude, WGS 84 degrees.")],
    geofence_radius_m: Annotated[float | None, typer.Option("--geofence-radius-m",
                                                            help="Radius devices here stay within.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a site to an enterprise; devices are then created with `iotfin devices create --site ID`."""
    m = _onboarding()
    created = _svc(data_dir).create_site(m.OPERATOR, enterprise, m.SiteIn(name, kind, address, lat, lon,
                                                                          geofence_radius_m))
    kit.show("site created / 已创建站点", created, as_json)


@sites_app.command("list")
def sites_list(enterprise: Annotated[int, typer.Option(help="Enterprise id.")], limit: LimitOpt = 50,
               cursor: CursorOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """An enterprise's sites."""
    items, next_cursor = _svc(data_dir).sites(_onboarding().OPERATOR, enterprise, _page(limit, cursor))
    _list("sites / 站点", ("id", "name", "kind", "address", "lat", "lon", "geofence_radius_m"), items, next_cursor,
          as_json)
