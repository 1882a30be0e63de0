"""Counts and figures across the platform, shared by the demo, the CLI and the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from iotfin.app.workspace import Workspace
from iotfin.devices.tables import Device
from iotfin.supplychain.store import counts, documents_by_type, enterprises_by_sector


def platform_summary(ws: Workspace) -> dict[str, Any]:
    with ws.engine.connect() as conn:
        table_counts = counts(conn)
        by_sector = enterprises_by_sector(conn)
        documents = documents_by_type(conn)
        devices_by_type = dict(conn.execute(select(Device.device_type, func.count()).group_by(Device.device_type)).all())
    return {
        "economy": table_counts | {"enterprises_by_sector": by_sector},
        "devices": {"total": sum(devices_by_type.values()), "by_type": devices_by_type},
        "trade_documents": documents,
        "telemetry": ws.telemetry.stats(),
        "quarantine": {"by_reason": ws.quarantine.counts("reason")},
    }
