"""The demo's people: its records belong to named lenders, and each lender gets logins.

Every enterprise of the simulated economy is a customer of its house bank (the simulator's
`lender_tenant_id`): the bank owns the enterprise, and the loans and credit lines the demo services
for it, as if the bank had onboarded and booked them through the API. Each bank gets a credit
officer (risk_officer) and two approvers (four-eyes); the platform an operator; one enterprise its administrator.
The demo prints these logins, so signing in as a bank's officer shows that bank's customers and
nobody else's. One password per demo run, random, printed with them: the demo workspace is rebuilt
on every run and serves on localhost.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from iotfin.identity.access import set_owner_in
from iotfin.identity.tables import Tenant
from iotfin.lending.tables import CreditLine, Loan


def lender_accounts(ws: Any, lender_of: Mapping[int, str]) -> dict[int, tuple[int, str]]:
    """Enterprise id -> (tenant id, tenant code) of its house bank."""
    with ws.engine.connect() as conn:
        ids = dict(conn.execute(select(Tenant.code, Tenant.id)).all())
    return {eid: (ids[code], code) for eid, code in lender_of.items() if code in ids}


def lender_logins(ws: Any, lender_of: Mapping[int, str]) -> dict[str, Any]:
    accounts = lender_accounts(ws, lender_of)
    owned = {"enterprise": 0, "loan": 0, "credit_line": 0}
    with ws.engine.begin() as conn:
        for eid, (tenant_id, _) in accounts.items():
            set_owner_in(conn, "enterprise", eid, tenant_id, eid)
            owned["enterprise"] += 1
        for kind, table in (("loan", Loan), ("credit_line", CreditLine)):
            for record_id, eid in conn.execute(select(table.id, table.enterprise_id)).all():
                if eid in accounts:
                    set_owner_in(conn, kind, record_id, accounts[eid][0], eid)
                    owned[kind] += 1
    password = "demo-" + secrets.token_urlsafe(9)
    logins = [ws.identity.create_user("demo-operator", password, ["platform_admin"], display_name="平台运营 / operator")]
    for code in sorted({code for _, code in accounts.values()}):
        # two approvers: an approval above the four-eyes amount needs a second, different one
        for role, suffix in (("risk_officer", "officer"), ("approver", "approver"), ("approver", "approver2"),
                             ("risk_manager", "risk")):
            logins.append(ws.identity.create_user(f"{code}-{suffix}", password, [role], tenant=code))
    if accounts:
        first = min(accounts)
        logins.append(ws.identity.create_user(f"enterprise-{first}", password, ["enterprise_admin"], enterprise_id=first))
    customers = {code: sum(1 for _, c in accounts.values() if c == code) for _, code in accounts.values()}
    return {"password": password, "users": [{"username": u["username"], "roles": u["roles"],
                                             "tenant": u["tenant"], "enterprise_id": u["enterprise_id"]}
                                            for u in logins],
            "customers_by_lender": dict(sorted(customers.items())), "records_owned": owned}
