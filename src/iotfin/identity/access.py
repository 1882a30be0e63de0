"""Tenant isolation for queries: every list a router returns goes through `owned_by`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, false

from iotfin.identity.model import Principal


def owned_by(stmt: Select, who: Principal, tenant_column: Any = None, enterprise_column: Any = None) -> Select:
    """Restrict a query to the rows the caller may see: all for the operator, its own for a lender
    (by `tenant_column`) or an enterprise (by `enterprise_column`). A kind of owner the table does
    not record sees nothing."""
    if who.platform:
        return stmt
    if who.enterprise_id is not None:
        return stmt.where(enterprise_column == who.enterprise_id) if enterprise_column is not None else stmt.where(false())
    if who.tenant_id is not None and tenant_column is not None:
        return stmt.where(tenant_column == who.tenant_id)
    return stmt.where(false())
