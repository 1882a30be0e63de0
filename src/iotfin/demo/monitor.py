"""The demo's monitoring step: live signals and the alerts the injected incidents raise.

`attach_monitor(ws)` subscribes a MonitorService to the workspace's ingest *before* the demo loads
its telemetry, so the monitor sees every committed batch once (nothing is re-read).
`monitor_demo(ws, ds)` then closes the clock and reports the signals, the alerts per type and the
detections per injected incident type.

The demo loads telemetry in large batches that span days and hold some device types' days before
others'. So the monitor's clock after each batch is the *oldest* of the per-type newest timestamps:
a device type whose day has not been loaded yet is not taken for dark.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from iotfin.core.errors import ConfigError
from iotfin.demo.monitor_eval import SIGNAL_INCIDENTS, match
from iotfin.monitor.model import DEVICE_TYPES
from iotfin.monitor.service import MonitorService
from iotfin.monitor.signals import NO_TS
from iotfin.monitor.store import AlertStore, load_device_meta, load_peer_groups

_ATTR = "_monitor_demo"
# Slices of the demo's multi-day batches: short enough that a pledged-stock peak is still within the
# 24-hour window when a drop is seen (silences and pauses inside a slice are found in the slice),
# long enough to keep the demo's added time small.
DEMO_STEP_MS = 12 * 3_600_000


def attach_monitor(ws: Any) -> MonitorService:
    meta, names = load_device_meta(ws.engine)
    store = AlertStore(ws.engine)
    monitor: MonitorService = ws.monitor_service(meta, store=store, enterprise_names=names)
    monitor.set_peer_groups(load_peer_groups(ws.engine))  # firm-specific vs sector-wide stops (issue 24)
    store.rules_version = monitor.rules.version

    def on_commit(stored: pa.Table) -> None:
        started = time.perf_counter()
        monitor.on_commit_bulk(stored, step_ms=DEMO_STEP_MS, clock=lambda: batch_clock(monitor))
        monitor.busy_s += time.perf_counter() - started

    ws.ingest.on_commit.append(on_commit)
    setattr(ws, _ATTR, monitor)
    ws.bulk_load_monitor = on_commit  # a server started after the demo replaces it
    return monitor


def batch_clock(monitor: MonitorService) -> int:
    """The oldest of the per-device-type newest timestamps (see the module docstring)."""
    s = monitor.signals
    newest = []
    for code in range(len(DEVICE_TYPES)):
        of_type = s.meta.type_code == code
        if of_type.any():
            heard = s.last_ts[of_type]
            if (heard != NO_TS).any():
                newest.append(int(heard.max()))
    return min(newest) if newest else NO_TS


def monitor_demo(ws: Any, ds: Any) -> dict[str, Any]:
    monitor: MonitorService | None = getattr(ws, _ATTR, None)
    if monitor is None:
        raise ConfigError("monitor_demo: call attach_monitor(ws) before the demo ingests its telemetry")
    monitor.tick(batch_clock(monitor))
    incidents = ds.table("incidents").to_pylist()
    cfg = ds.manifest["config"]
    report = match(list(monitor.alerts.values()), incidents, float(ds.table("devices").num_rows * cfg["days"]))
    snapshot = monitor.snapshot()
    examples = sorted((a for a in monitor.alerts.values() if a.raised_at is not None),
                      key=lambda a: (a.incident_type, a.raised_at))
    seen: set[str] = set()
    shown = []
    for a in examples:
        if a.incident_type not in seen:
            seen.add(a.incident_type)
            shown.append({k: v for k, v in a.to_json().items() if k in
                          ("alert_id", "enterprise_id", "incident_type", "tier", "reason_zh", "reason_en", "devices")})
    return {
        "signals": {k: snapshot[k] for k in ("readings_seen", "signal_events", "rule_evaluations", "dark_devices",
                                              "offline_hours", "counters_behind", "seals_broken",
                                              "vehicles_outside_geofence", "enterprises_idle", "median_operating_rate")},
        "state_bytes_per_device": snapshot["state_bytes"]["per_device"],
        "alerts_by_type": snapshot["alerts_by_type"],
        "alerts_by_tier": snapshot["alerts_by_tier"],
        "suppressed_repeats": snapshot["suppressed_repeats"],
        "detections": {k: {"incidents": v["incidents"], "detected": v["detected"]}
                       for k, v in report["per_incident_type"].items() if k in SIGNAL_INCIDENTS},
        "false_alerts": report["false_alerts"],
        "example_alerts": shown,
        "rules_version": monitor.rules.version,
        "monitor_seconds_within_ingest": round(monitor.busy_s, 2),
        "operating_rate_p10_p50_p90": _quantiles(monitor.signals.operating_rate()),
    }


def _quantiles(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return [round(float(q), 3) for q in np.quantile(finite, [0.1, 0.5, 0.9])]
