"""The monitoring use case: committed readings -> signal changes -> rules -> alerts -> actions and notices.

`MonitorService.on_commit` is an ingest subscriber (IngestService.on_commit); `tick(now)` is called
by a timer in a server (and by the evaluation's simulated clock) for the signals that depend on
silence. Rules run once per signal *change*, never per reading. Actions on the loan (freeze, margin
call) go through the `loan_action` port and notices to the lender and the enterprise through the
`notify` port; both are plain callables (`iotfin.app.monitor_actions` adapts them to the lending service
and the webhooks outbox; `iotfin.app.monitor_runtime` wires them in a server). At each business day end
`check_trade` checks the day's trade documents against the signals (`iotfin.monitor.trade`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotfin.core.errors import ConfigError
from iotfin.core.money import quantize_fen
from iotfin.core.time import business_date, ms_to_datetime
from iotfin.monitor.model import (
    HOUR_MS,
    PEER_QUIET_MS,
    SCOPE_TEXT,
    AlertBook,
    Change,
    Decision,
    DeviceMeta,
    SignalEvent,
    Thresholds,
    Tier,
    notification_texts,
    peer_scope,
)
from iotfin.monitor.ports import TradeDocuments, TradeFeatures
from iotfin.monitor.prices import PriceBook
from iotfin.monitor.rules import RuleSet
from iotfin.monitor.signals import NO_TS, SignalEngine
from iotfin.monitor.trade import (
    GPS_CHECK,
    INVOICE_CHECK,
    OUTPUT_CHECK,
    OutputEnergy,
    documents_of_day,
    findings,
)
from iotfin.telemetry.model import sort_order

log = logging.getLogger(__name__)
LoanAction = Callable[[str, int, dict[str, Any]], object]  # (action, enterprise id, context)
Notify = Callable[[dict[str, Any]], object]


@dataclass
class PledgedLot:
    """Stock pledged for a loan: its quantity is what the lot's devices measure."""

    lot_id: str
    enterprise_id: int
    commodity: str
    device_ids: list[int]
    exposure: Decimal  # outstanding amount the lot secures, yuan
    haircut: Decimal = Decimal("0.7")


@dataclass
class AlertView:
    """The in-memory view of one alert; the store keeps the system-of-record copy and its audit trail."""

    alert_id: int
    enterprise_id: int
    incident_type: str
    tier: Tier
    rule: str
    reason_zh: str
    reason_en: str
    opened_at: int  # simulated/monitor time, UTC ms
    raised_at: int | None  # first time at tier >= alert
    devices: set[int] = field(default_factory=set)
    signal_events: int = 1
    status: str = "open"
    latency_s: float = 0.0  # wall-clock: batch handed to the monitor -> alert recorded
    recorded_perf: float = 0.0  # time.perf_counter() when last recorded (for latency benchmarks)

    def to_json(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "enterprise_id": self.enterprise_id, "incident_type": self.incident_type,
                "tier": self.tier.name, "rule": self.rule, "reason_zh": self.reason_zh, "reason_en": self.reason_en,
                "opened_at": self.opened_at, "raised_at": self.raised_at, "devices": sorted(self.devices),
                "signal_events": self.signal_events, "status": self.status}


class MonitorService:
    def __init__(self, meta: DeviceMeta, rules: RuleSet | None = None, thresholds: Thresholds | None = None,
                 store: Any = None, loan_action: LoanAction | None = None, notify: Notify | None = None,
                 enterprise_names: dict[int, str] | None = None, suppress_ms: int = 72 * HOUR_MS,
                 prices: PriceBook | None = None, trade_features: TradeFeatures | None = None,
                 trade_documents: TradeDocuments | None = None, enterprise_names_en: dict[int, str] | None = None):
        self.signals = SignalEngine(meta, thresholds)
        # The day-end trade checks' ports (iotfin.monitor.ports); without them `check_trade` refuses.
        self.trade_features = trade_features
        self.trade_documents = trade_documents
        self.output = None if trade_features is None else OutputEnergy(meta.enterprise_count, trade_features)
        self._meters_heard = np.zeros(meta.enterprise_count, np.int64)
        self.rules = rules or RuleSet.default()
        self.store = store
        self.book = AlertBook(suppress_ms, first_id=store.next_alert_id() if store is not None else 1)
        self.loan_action = loan_action
        self.notify = notify
        self.names = enterprise_names or {}
        self.names_en = enterprise_names_en or {}  # the English texts name the company in English
        self.alerts: dict[int, AlertView] = {}
        self.prices = prices or PriceBook()
        self.lots: list[PledgedLot] = []
        self._coverage_level: dict[str, int] = {}
        self.events_seen = 0
        self.rule_evaluations = 0
        self.latencies_s: list[float] = []
        self.busy_s = 0.0  # wall time in a subscriber that times itself (the demo's)
        self.port_errors = 0  # loan_action / notify calls that raised
        self.peer_groups: list[np.ndarray] = []  # set_peer_groups: firm-specific vs sector-wide stops
        self._peer_maps: list[dict[int, str]] = []
        self.scopes: dict[str, int] = {}

    # --- entry points -----------------------------------------------------------------------------

    def knows(self, device_ids: np.ndarray) -> bool:
        """Whether every device of `device_ids` is in the monitored fleet."""
        meta = self.signals.meta
        ids = np.asarray(device_ids, np.int64)
        return not ids.size or bool(((ids > 0) & (ids < meta.size)).all() and (meta.enterprise[ids] >= 0).all())

    def adopt(self, meta: DeviceMeta, enterprise_names: dict[int, str] | None = None,
              enterprise_names_en: dict[int, str] | None = None) -> None:
        """Monitor the fleet `meta` from now on (devices registered while serving), keeping the signal
        state of the devices already monitored; per-enterprise state grows with new enterprises."""
        self.signals = self.signals.grown(meta)
        ents = meta.enterprise_count
        if ents > self._meters_heard.size:
            self._meters_heard = np.pad(self._meters_heard, (0, ents - self._meters_heard.size))
            if self.output is not None:
                out = self.output
                grow = ents - out.counter.size
                out.kwh = np.pad(out.kwh, ((0, grow), (0, 0)))
                out.sales_fen = np.pad(out.sales_fen, ((0, grow), (0, 0)))
                out.counter = np.pad(out.counter, (0, grow), constant_values=np.nan)
                out.level = np.pad(out.level, (0, grow))
        if enterprise_names is not None:
            self.names = enterprise_names
        if enterprise_names_en is not None:
            self.names_en = enterprise_names_en

    def on_commit(self, stored: pa.Table) -> list[Change]:
        started = time.perf_counter()
        events = self.signals.on_commit(stored)
        if self.lots and stored.num_rows:
            events += self._coverage(self.signals.now)
        return self.handle(events, started)

    def on_commit_bulk(self, stored: pa.Table, step_ms: int = 3 * HOUR_MS,
                       clock: Callable[[], int] | None = None) -> list[Change]:
        """A committed batch that spans days (a bulk load, a gateway's backfill): replayed through the
        signals in `step_ms` slices of its own timestamps, with the clock ticked after each, so that
        conditions that began and ended inside the batch are seen at their time, not at its end.
        `clock` caps each tick (e.g. the oldest per-type newest timestamp of a load that is ordered
        by type within a day).

        The batch is turned into numpy columns and sorted once, by (slice, device, ts); each slice is
        then a contiguous, already ordered run handed to the signals (no per-slice Arrow work, no
        per-signal sorts)."""
        if stored.num_rows == 0:
            return []
        started = time.perf_counter()
        ids, ts = stored["device_id"].to_numpy(), stored["ts"].to_numpy()
        encoded = pc.dictionary_encode(stored["key"]).combine_chunks()
        codes, names, values = encoded.indices.to_numpy(), encoded.dictionary.to_pylist(), stored["value"].to_numpy()
        base = (int(ts.min()) // step_ms) * step_ms
        piece = (ts - base) // step_ms
        order = sort_order(piece, ids, ts)
        ids, ts, codes, values, piece = ids[order], ts[order], codes[order], values[order], piece[order]
        bounds = np.searchsorted(piece, np.arange(int(piece[-1]) + 2))
        changes: list[Change] = []
        for k in range(int(piece[-1]) + 1):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            if hi > lo:
                events = self.signals.on_columns(ids[lo:hi], ts[lo:hi], codes[lo:hi], names, values[lo:hi],
                                                 presorted=True)
                if self.lots:
                    events += self._coverage(self.signals.now)
                changes += self.handle(events, started)
            edge = base + (k + 1) * step_ms
            now = edge if clock is None else min(edge, clock())
            changes += self.tick(now)
            started = time.perf_counter()
        return changes

    def tick(self, now_ms: int) -> list[Change]:
        started = time.perf_counter()
        return self.handle(self.signals.tick(now_ms), started)

    def provenance(self, events: pa.Table) -> list[Change]:
        """Provenance findings from the ingest layer (replayed or unsigned data, bad signatures).

        Expected columns: device_id int64, ts int64 (UTC ms of the offending reading), kind string
        (`replayed` | `unsigned` | `bad_signature`). Each is one-shot evidence of tampering.
        """
        started = time.perf_counter()
        meta = self.signals.meta
        out = []
        for device, ts, kind in zip(events["device_id"].to_pylist(), events["ts"].to_pylist(),
                                    events["kind"].to_pylist(), strict=True):
            if not (0 < device < meta.size) or meta.enterprise[device] < 0:
                continue
            out.append(SignalEvent("provenance", device, int(meta.enterprise[device]), meta.type_of(device),
                                   1.0, True, int(ts), max(self.signals.now, int(ts)), {"kind": kind, "one_shot": True}))
        return self.handle(out, started)

    def financing_refused(self, enterprise_id: int, at_ms: int, detail: dict[str, Any]) -> list[Change]:
        """The financing registry refused an asset already financed (a receivable offered twice): an
        early warning on the enterprise that offered it, whichever lender it went to."""
        event = SignalEvent("double_financing", None, int(enterprise_id), "", 1.0, True, int(at_ms),
                            max(self.signals.now, int(at_ms)), {"one_shot": True, **detail})
        return self.handle([event], time.perf_counter())

    def maturity_at_risk(self, vouchers: list[dict[str, Any]], now_ms: int) -> list[Change]:
        """Digital debt vouchers whose maturity is at risk (the receivables context's at-risk list: past
        maturity and unpaid, or falling due soon from a core enterprise that paid late before or rates
        poorly) as alerts on the core enterprise that owes them: `voucher_overdue` (past maturity) and
        `voucher_at_risk` (likely late), tiered by the rules (VCH-1, VCH-2). Each item needs `issuer_id`,
        `voucher_id`, `matures_on`, `unpaid`, `reason`; one alert per core enterprise, its vouchers folded
        in while the condition keeps being seen (the caller passes the list once a day)."""
        detected = max(self.signals.now, now_ms)
        events = []
        for v in vouchers:
            overdue = str(v["reason"]).startswith("past maturity")
            events.append(SignalEvent("voucher_overdue" if overdue else "voucher_at_risk", None, int(v["issuer_id"]), "",
                                      1.0, True, now_ms, detected,
                                      {"one_shot": True, "voucher_id": v["voucher_id"], "number": v.get("number"),
                                       "matures_on": str(v["matures_on"]), "unpaid": str(v["unpaid"]),
                                       "why": v["reason"]}))
        return self.handle(events, time.perf_counter())

    def check_trade(self, docs: pa.Table, day: int, now_ms: int) -> list[Change]:
        """Trade documents vs. telemetry at the end of local day `day` (days since 1970-01-01 local), with
        the risk features' consistency checks (`iotfin.monitor.trade`): an invoice whose order has no
        delivery note, or a delivery note naming a truck that did not move that day, is a sign of
        fabricated trade on the seller; and invoiced sales per metered kWh against the enterprise's
        own history (energy vs. reported output). `docs` is `trade.documents_of_day` (or its schema)."""
        if self.trade_features is None:
            raise ConfigError("the monitor's trade checks need the risk features (the trade_features port)")
        events = []
        detected = max(self.signals.now, now_ms)
        for row in findings(docs, self.signals.gps_daily(day), day, self.trade_features):
            for signal, name in (("invoice_without_delivery", INVOICE_CHECK),
                                 ("delivery_without_trip", GPS_CHECK)):
                if row[name]:
                    events.append(SignalEvent(signal, None, row["enterprise_id"], "", float(row[name]), True, now_ms,
                                              detected, {"one_shot": True, "day": day, "feature": name,
                                                         "count": row[name]}))
        events += self._output_energy(docs, day, now_ms, detected)
        return self.handle(events, time.perf_counter())

    def _output_energy(self, docs: pa.Table, day: int, now_ms: int, detected: int) -> list[SignalEvent]:
        s, out = self.signals, self.output
        assert out is not None  # built with the trade_features port, which check_trade requires
        meters = np.flatnonzero(s.meter_row >= 0)
        ent = s.meta.enterprise[meters]
        value = s.energy_last[s.meter_row[meters]]
        heard = ~np.isnan(value)
        n = out.counter.size
        total = np.bincount(ent[heard], value[heard], minlength=n)[:n]
        count = np.bincount(ent[heard], minlength=n)[:n]
        # A meter heard for the first time adds its whole counter: that day's energy is not known.
        counters = np.where((count > 0) & (count == self._meters_heard), total, np.nan)
        if (count != self._meters_heard).any():
            out.counter = np.where(count != self._meters_heard, np.where(count > 0, total, np.nan), out.counter)
            self._meters_heard = count
        events = []
        for enterprise, v in out.close_day(day, counters, docs).items():
            level = int(np.clip(np.floor(v * 4), -4, 40))  # 0.25 steps: the rules run when a step is crossed
            if level == out.level[enterprise]:
                continue
            out.level[enterprise] = level
            events.append(SignalEvent("output_energy_mismatch", None, enterprise, "", round(v, 3), v >= 1.0, now_ms,
                                      detected, {"day": day, "feature": OUTPUT_CHECK}))
        return events

    def check_trade_day(self, engine: Any, day: int, now_ms: int) -> list[Change]:
        """`check_trade` over the system of record's documents of local day `day`."""
        if self.trade_documents is None:
            raise ConfigError("the monitor's trade checks need the day's trade documents (the trade_documents port)")
        return self.check_trade(documents_of_day(engine, day, self.trade_documents), day, now_ms)

    def set_lots(self, lots: list[PledgedLot]) -> None:
        self.lots = list(lots)

    def on_prices(self) -> list[Change]:
        """A price import changed the book: re-value every pledged lot now."""
        return self.handle(self._coverage(self.signals.now), time.perf_counter())

    # --- pipeline ---------------------------------------------------------------------------------

    def handle(self, events: list[SignalEvent], started: float) -> list[Change]:
        changes: list[Change] = []
        for event in events:
            self.events_seen += 1
            decision = self.rules.decide(event, self.book.holds(event))
            self.rule_evaluations += 1
            if self.peer_groups and event.signal == "production_idle" and event.active and decision.tier >= Tier.alert:
                decision = self._scoped(event, decision)
            for change in self.book.apply(event, decision):
                self._record(change, started)
                changes.append(change)
        return changes

    def set_peer_groups(self, groups: list[dict[int, str]]) -> None:
        """Peer groups of the enterprises (e.g. sector, region): with them a production stop is checked
        against the peers' machines and the alert says whether it is firm-specific or sector-wide
        (a sector-wide or regional stop is lowered to watch). Empty: every stop is alerted as before."""
        n = self.signals.meta.enterprise_count
        self.peer_groups = []
        self._peer_maps = groups
        for mapping in groups:
            labels = sorted(set(mapping.values()))
            code_of = {label: i for i, label in enumerate(labels)}
            codes = np.full(n, -1, np.int64)
            for e, label in mapping.items():
                if 0 <= e < n:
                    codes[e] = code_of[label]
            self.peer_groups.append(codes)

    def _scoped(self, event: SignalEvent, decision: Decision) -> Decision:
        """The decision on a production stop, with whether the peers stopped too (issue 24)."""
        sig = self.signals
        n = sig.meta.enterprise_count
        if any(codes.size != n for codes in self.peer_groups):  # the fleet grew (adopt): re-code the groups
            self.set_peer_groups(self._peer_maps)
        machines = np.flatnonzero(sig.machine_row >= 0)
        rows = sig.machine_row[machines]
        ents = sig.meta.enterprise[machines]
        now = max(sig.now, event.detected_at)
        recent = sig.machine_last_ts[rows] > now - sig.t.machine_reporting_ms
        reporting = np.zeros(n, bool)
        reporting[ents[recent]] = True
        last_busy = np.full(n, NO_TS, np.int64)
        np.maximum.at(last_busy, ents, sig.machine_active_ts[rows])
        quiet = reporting & (now - last_busy >= PEER_QUIET_MS)
        scope, stopped, peers = peer_scope(event.enterprise_id, self.peer_groups, quiet, reporting)
        self.scopes[scope] = self.scopes.get(scope, 0) + 1
        if scope == "unknown":
            return decision
        zh, en = SCOPE_TEXT[scope]
        return replace(decision, tier=Tier.watch if scope == "sector_wide" else decision.tier,
                       reason_zh=decision.reason_zh + zh.format(quiet=stopped, peers=peers),
                       reason_en=decision.reason_en + en.format(quiet=stopped, peers=peers))

    def _record(self, change: Change, started: float) -> None:
        d: Decision = change.decision
        view = self.alerts.get(change.alert_id)
        device = change.event.device_id
        if change.kind == "open":
            view = AlertView(change.alert_id, change.key[0], change.key[1], change.tier, d.rule, d.reason_zh,
                             d.reason_en, change.at, change.at if change.tier >= Tier.alert else None)
            self.alerts[change.alert_id] = view
        elif view is None:
            return
        else:
            view.signal_events += 1
            if change.kind == "escalate":
                view.tier, view.rule, view.reason_zh, view.reason_en = change.tier, d.rule, d.reason_zh, d.reason_en
            if view.raised_at is None and view.tier >= Tier.alert and change.kind != "clear":
                view.raised_at = change.at
        if device is not None and change.kind != "clear":
            view.devices.add(device)
        if self.store is not None:
            self.store.record_change(change, view)
        if change.kind in ("open", "escalate"):
            self._act(change, view)
        view.recorded_perf = time.perf_counter()
        view.latency_s = view.recorded_perf - started
        if change.kind in ("open", "escalate"):
            self.latencies_s.append(view.latency_s)

    def _act(self, change: Change, view: AlertView) -> None:
        name = self.names.get(view.enterprise_id, f"企业{view.enterprise_id}")
        context = {"alert_id": view.alert_id, "incident_type": view.incident_type, "tier": view.tier.name,
                   "rule": view.rule, "reason_en": view.reason_en, "reason_zh": view.reason_zh, "at": change.at,
                   "coverage": change.event.value if change.event.signal == "collateral_coverage" else None}
        if view.tier in (Tier.freeze, Tier.margin_call) and self.loan_action is not None:
            action = "freeze_credit_line" if view.tier == Tier.freeze else "margin_call"
            # A port that fails (lending refuses, the database is away) costs this action, not the
            # monitor: logged, audited, counted; the alert and its notices stand.
            try:
                self.loan_action(action, view.enterprise_id, context)
                outcome: dict[str, Any] = {"action": action}
            except Exception as exc:
                self.port_errors += 1
                log.exception("loan action %s for alert %d failed", action, view.alert_id)
                outcome = {"action": action, "error": f"{type(exc).__name__}: {exc}"}
            if self.store is not None:
                self.store.audit(view.alert_id, "loan_action", "monitor", outcome)
        texts = notification_texts(change.decision, name, view.tier, change.kind,
                                   self.names_en.get(view.enterprise_id, f"Enterprise {view.enterprise_id}"))
        for audience in ("lender", "enterprise"):
            notice = {"alert_id": view.alert_id, "enterprise_id": view.enterprise_id, "audience": audience,
                      "tier": view.tier.name, "kind": change.kind, "text_zh": texts[audience]["zh"],
                      "text_en": texts[audience]["en"], "at": change.at, "incident_type": view.incident_type,
                      "rule": view.rule}
            if self.store is not None:
                self.store.add_notification(notice)
            if self.notify is not None:
                try:
                    self.notify(notice)
                except Exception:
                    self.port_errors += 1
                    log.exception("notice for alert %d (%s) failed", view.alert_id, audience)

    # --- collateral coverage ----------------------------------------------------------------------

    def coverage(self) -> list[dict[str, Any]]:
        """Each pledged lot: measured quantity, price, value after haircut, exposure and coverage."""
        out = []
        now = self.signals.now
        # The price of the monitor's business day (Asia/Shanghai); before any reading, the latest known.
        today = None if now == NO_TS else business_date(ms_to_datetime(now))
        for lot in self.lots:
            qty = self.signals.stock_quantity(np.asarray(lot.device_ids, np.int64))
            price = self.prices.latest(lot.commodity, as_of=today)
            if price is None or np.isnan(qty).all():
                continue
            # Measured tonnes (or m³, head) from sensor floats, kept to the kilogram as a Decimal so
            # the money arithmetic below stays in Decimal.
            quantity = Decimal(str(round(float(np.nansum(qty)), 3)))
            value = quantize_fen(quantity * price.price * lot.haircut)
            ratio = (value / lot.exposure) if lot.exposure > 0 else Decimal("Infinity")
            out.append({"lot_id": lot.lot_id, "enterprise_id": lot.enterprise_id, "commodity": lot.commodity,
                        "quantity": str(quantity), "price": str(price.price), "price_day": price.day.isoformat(),
                        "haircut": str(lot.haircut), "collateral_value": str(value), "exposure": str(lot.exposure),
                        "coverage": float(round(ratio, 4)) if ratio.is_finite() else None})
        return out

    def _coverage(self, now: int) -> list[SignalEvent]:
        events = []
        for row in self.coverage():
            if row["coverage"] is None:
                continue
            level = int(np.floor(row["coverage"] * 20))  # 5 % steps: rules run when a step is crossed
            if self._coverage_level.get(row["lot_id"]) == level:
                continue
            self._coverage_level[row["lot_id"]] = level
            events.append(SignalEvent("collateral_coverage", None, row["enterprise_id"], "", row["coverage"],
                                      row["coverage"] < 1.3, now, now, {"lot_id": row["lot_id"], **row}))
        return events

    # --- read side --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        s = self.signals
        rate = s.operating_rate()
        return {
            "readings_seen": s.readings_seen, "signal_events": self.events_seen, "rule_evaluations": self.rule_evaluations,
            "dark_devices": int(s.dark.sum()), "offline_hours": round(float(s.offline_ms.sum()) / HOUR_MS, 1),
            "stock_devices_dropping": int((s.stock_level >= 5).sum()), "counters_behind": int(s.energy_back.sum()),
            "seals_broken": int((s.seal_since != np.iinfo(np.int64).min).sum()),
            "vehicles_outside_geofence": int((s.out_since != np.iinfo(np.int64).min).sum()),
            "enterprises_idle": int(s.ent_idle.sum()),
            "median_operating_rate": round(float(np.nanmedian(rate)), 3) if np.isfinite(rate).any() else None,
            "alerts_by_type": _count(v.incident_type for v in self.alerts.values()),
            "alerts_by_tier": _count(v.tier.name for v in self.alerts.values()),
            "suppressed_repeats": self.book.suppressed,
            "state_bytes": s.state_bytes(),
        }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))
