"""The onboarding service on each backend: what is stored (the legal representative encrypted, the
onboarding lender as the owner), the database's own rules for partner tenants, and a refused
onboarding leaving nothing behind."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict, Forbidden, NotFound, ValidationError
from iotfin.db.pagination import PageParams
from iotfin.identity import codes
from iotfin.identity.access import customers_of
from iotfin.identity.crypto import PREFIX
from iotfin.identity.model import Principal
from iotfin.identity.onboarding import OPERATOR, EnterpriseIn, SiteIn, TenantIn
from iotfin.identity.tables import Enterprise, RecordOwner, Tenant

PAGE = PageParams(50, None)


def _enterprise(uscc: str = "91350100M000100Y43", **extra: object) -> EnterpriseIn:
    values: dict[str, object] = dict(uscc=uscc, name="福州示范", name_en="Fuzhou Demo", sector="energy",
                                     region_code="350102", founded_on=date(2012, 6, 1), registered_capital="800000",
                                     legal_rep_name="李四", legal_rep_id_number="11010519491231002X",
                                     legal_rep_phone="13900000000")
    return EnterpriseIn(**(values | extra))  # type: ignore[arg-type]


def _lender(ws: Workspace, code: str = "bank-a") -> Principal:
    tenant = ws.onboarding.create_tenant(TenantIn(code, "甲银行", "Bank A", "bank"))
    return Principal(subject=f"user:{code}-officer", tenant_id=tenant["id"], tenant_code=code,
                     roles=frozenset({"risk_officer"}))


def test_the_legal_representative_is_stored_encrypted_and_the_lender_owns_the_customer(workspace: Workspace) -> None:
    ws = workspace
    officer = _lender(ws)
    made = ws.onboarding.create_enterprise(officer, _enterprise())
    assert made["region"] == "福建省福州市" and made["region_code"] == "350102"  # a district of Fuzhou
    assert made["registered_capital"] == Decimal("800000.00")
    with ws.engine.connect() as conn:
        row = conn.execute(select(Enterprise).where(Enterprise.id == made["id"])).one()
        owner = conn.execute(select(RecordOwner.kind, RecordOwner.tenant_id, RecordOwner.enterprise_id)).all()
        customers = conn.execute(customers_of(officer.tenant_id)).scalars().all()
    for column in ("legal_rep_name", "legal_rep_id_number", "legal_rep_phone"):
        assert getattr(row, column).startswith(PREFIX), column
    assert owner == [("enterprise", officer.tenant_id, made["id"])] and customers == [made["id"]]
    # the protection context decrypts it (same columns, same associated data) and re-encrypts after rotation
    assert ws.protection.legal_representative(made["id"]) == {
        "enterprise_id": made["id"], "name": "李四", "id_number": "11010519491231002X", "phone": "13900000000"}
    ws.pii.keys.rotate()
    assert ws.protection.reencrypt()["enterprises.legal_rep_name"] == 1
    assert ws.protection.legal_representative(made["id"])["name"] == "李四"


def test_refusals_leave_nothing(workspace: Workspace) -> None:
    ws = workspace
    officer = _lender(ws)
    with pytest.raises(ValidationError) as bad:
        ws.onboarding.create_enterprise(officer, _enterprise(uscc="91350100M000100Y4X"))
    assert bad.value.field == "uscc"
    enterprise = Principal(subject="user:e", enterprise_id=1)
    partner = Principal(subject="client:p", tenant_id=ws.onboarding.create_tenant(
        TenantIn("vendor", "物联", "Vendor", "partner", "iot_vendor"))["id"], tenant_code="vendor")
    for who in (enterprise, partner):
        with pytest.raises(Forbidden):
            ws.onboarding.create_enterprise(who, _enterprise())
    with ws.engine.connect() as conn:
        assert conn.execute(select(Enterprise.id)).all() == [] and conn.execute(select(RecordOwner.kind)).all() == []
    made = ws.onboarding.create_enterprise(OPERATOR, _enterprise())
    assert made["onboarded_by"] is None  # the operator's own: no lender owns it
    with pytest.raises(Conflict):
        ws.onboarding.create_enterprise(OPERATOR, _enterprise(name="again"))
    # the lender never onboarded it: not its customer, so not found for it, and no site for it
    with pytest.raises(NotFound):
        ws.onboarding.enterprise(officer, made["id"])
    with pytest.raises(NotFound):
        ws.onboarding.create_site(officer, made["id"], SiteIn("yard", "yard", "somewhere 1", 26.0, 119.3))
    assert ws.onboarding.enterprises(officer, PAGE) == ([], None)
    assert ws.onboarding.sites(OPERATOR, made["id"], PAGE) == ([], None)


def test_the_operator_onboards_for_a_lender(workspace: Workspace) -> None:
    ws = workspace
    officer = _lender(ws, "bank-z")
    made = ws.onboarding.create_enterprise(OPERATOR, _enterprise(codes.make_uscc("91", "110105", "MA01ABCD1"),
                                                                 region_code="110105", lender="bank-z"))
    assert made["onboarded_by"] == "bank-z" and made["region"] == "北京市" and made["region_en"] == "Beijing"
    assert [e["id"] for e in ws.onboarding.enterprises(officer, PAGE)[0]] == [made["id"]]
    with pytest.raises(ValidationError) as bad:
        ws.onboarding.create_enterprise(OPERATOR, _enterprise(lender="vendor-x"))
    assert bad.value.field == "lender"


def test_the_database_keeps_a_partner_and_its_kind_together(workspace: Workspace) -> None:
    rows = ({"code": "p1", "name": "x", "name_en": "x", "kind": "partner"},                          # no partner_kind
            {"code": "p2", "name": "x", "name_en": "x", "kind": "bank", "partner_kind": "logistics"},  # a bank with one
            {"code": "p3", "name": "x", "name_en": "x", "kind": "partner", "partner_kind": "smuggler"},
            {"code": "p4", "name": "x", "name_en": "x", "kind": "lender"})
    for row in rows:
        with pytest.raises(IntegrityError), workspace.engine.begin() as conn:
            conn.execute(insert(Tenant).values(**row))
    with workspace.engine.begin() as conn:
        tenant = conn.execute(insert(Tenant).values(code="p5", name="x", name_en="x", kind="partner",
                                                    partner_kind="warehouse").returning(Tenant.id)).scalar_one()
        conn.execute(insert(RecordOwner).values(kind="enterprise", record_id=1, tenant_id=tenant, enterprise_id=1))
    with pytest.raises(IntegrityError), workspace.engine.begin() as conn:
        conn.execute(insert(RecordOwner).values(kind="spaceship", record_id=1, tenant_id=tenant, enterprise_id=1))


def test_partner_scopes_follow_the_partner_kind(workspace: Workspace) -> None:
    ws = workspace
    for code, kind in (("vendor", "iot_vendor"), ("haulier", "logistics"), ("depot", "warehouse")):
        ws.onboarding.create_tenant(TenantIn(code, code, code, "partner", kind))
    vendor = ws.identity.create_client("installer", "devices:provision telemetry:read", tenant="vendor")
    assert vendor["scopes"] == ["devices:provision", "telemetry:read"]
    for code in ("haulier", "depot"):
        with pytest.raises(ValidationError, match="partner's client"):
            ws.identity.create_client("x", "devices:provision", tenant=code)
        with pytest.raises(ValidationError):
            ws.identity.create_client("x", "lending:write", tenant=code)  # partners do not lend
    user = ws.identity.create_user("haulier-ops", "a long enough passphrase", ["risk_officer"], tenant="haulier")
    assert user["tenant"] == "haulier"
    who = ws.identity.authenticate_user("haulier-ops", "a long enough passphrase")
    assert who.scopes == {"consents:read", "consents:check", "webhooks:manage", "telemetry:read"}
