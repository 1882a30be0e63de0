"""The demo's industry step (issue 24): compute the industry activity indices from the telemetry just
ingested, incrementally (a second update computes nothing new), and show what a lender is served —
the whole economy's and each sector's latest energy index, cells withheld under the privacy
threshold, and one firm's activity against its sector peers (read as the operator)."""

from __future__ import annotations

from datetime import date
from typing import Any

from iotfin.sim import SimDataset


def industry_demo(ws: Any, ds: SimDataset) -> dict[str, Any]:
    service = ws.industry
    first = service.update()
    again = service.update()
    latest = service.cells("energy")
    by_sector = {r["sector"]: {"index": r["index"], "trend7": r["trend7"], "firms": r["firms"]}
                 for r in latest["rows"] if r["region_code"] == "*" and r["chain_id"] == "*" and r["sector"] != "*"}
    whole = next((r for r in latest["rows"] if r["sector"] == r["region_code"] == r["chain_id"] == "*"), None)
    firm = int(ds.table("enterprises")["enterprise_id"][0].as_py())
    relative = service.relative(firm, date.fromisoformat(latest["day"]), recipient=None)
    return {"days_computed": first["days_computed"], "days_recomputed_on_second_update": again["days_computed"],
            "index_rows": first["index_rows"], "update_s": first["timings_s"]["total"], "day": latest["day"],
            "economy_energy_index": None if whole is None else whole["index"], "energy_index_by_sector": by_sector,
            "cells_served": len(latest["rows"]), "cells_withheld_under_min_firms": latest["suppressed_cells"],
            "min_firms": latest["min_firms"], "relative_activity_example": relative}
