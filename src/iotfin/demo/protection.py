"""The demo's open-API step: a lender's partner system and an enterprise's system get credentials,
fetch tokens, read the platform summary through the Python client, and one complaint goes from
filing to resolution with its zh/en texts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.client import IotfinClient
from iotfin.identity.tables import Enterprise, Tenant


def open_api_demo(ws: Workspace) -> dict[str, Any]:
    from fastapi.testclient import TestClient  # lazy: FastAPI loads only when this runs


    with ws.engine.connect() as conn:
        bank = conn.execute(select(Tenant.code).where(Tenant.kind == "bank").order_by(Tenant.id)).scalar()
        enterprise = conn.execute(select(Enterprise.id).order_by(Enterprise.id)).scalar()
    if bank is None or enterprise is None:
        return {}
    lender = ws.identity.create_client("demo core banking", "financing:read complaints:read complaints:handle "
                                       "webhooks:manage", tenant=bank)
    firm = ws.identity.create_client("demo enterprise ERP", "complaints:submit complaints:read", enterprise_id=enterprise)
    http = TestClient(create_app(ws, background=False))  # in process: the same app `iotfin serve` runs
    with IotfinClient(client_id=lender["client_id"], client_secret=lender["client_secret"], http=http) as bank_api, \
            IotfinClient(client_id=firm["client_id"], client_secret=firm["client_secret"], http=http) as firm_api:
        me = bank_api.me()
        summary = bank_api.summary()
        filed = firm_api.submit_complaint(category="pricing", subject="提前还款手续费 / early-repayment fee",
                                          description="合同未披露提前还款手续费。The contract did not disclose the fee.",
                                          tenant=bank, contact_phone="13800000000", idempotency_key="demo-complaint-1")
        bank_api.acknowledge_complaint(filed["id"])
        resolved = bank_api.resolve_complaint(filed["id"], "upheld_remedied", "fee refunded; disclosure template fixed")
    return {
        "lender_client": {"tenant": me["tenant"], "scopes": me["scopes"]},
        "summary_enterprises_via_client": summary["economy"]["enterprises"],
        "complaint": {"id": resolved["id"], "status": resolved["status"], "status_zh": resolved["status_text"]["zh"],
                      "resolution_zh": resolved["resolution_text"]["zh"], "resolution_en": resolved["resolution_text"]["en"],
                      "acknowledge_by": resolved["acknowledge_by"], "overdue": resolved["overdue"]},
    }
