"""Adapters from the monitor's ports to the rest of the platform.

`LendingActions` is the `loan_action` port: an alert's action is per enterprise (freeze the credit
line, margin call); it is carried out through `LendingService` on that enterprise's active credit
lines and loans — `set_line_status(..., "frozen")`, `margin_call(...)` — once per (alert, action,
line or loan): each one done is an audit row of the alert (`monitor_alert_events`, kind
`loan_action_done`) and a loan event on the lending side, and a row already there means it is not
done again (a re-delivered change, a restarted monitor). When the alert is resolved, the lines it
froze are unfrozen unless another unresolved alert of the enterprise froze them too.

`WebhookNotifier` is the `notify` port: each notice (opened, escalated) goes out through the webhooks
outbox (`WebhookService.emit`) in the same transaction that records that it went — to the
enterprise's own subscriptions with the enterprise's text, and to the subscriptions of each lender
the enterprise has consented to for post-loan monitoring (a live `post_loan_monitoring` grant to the
tenant's code) with the lender's text. No consent, no lender notice.

`Resolutions` follows officers' resolutions, however they were made (HTTP, CLI in another process):
it reads new `resolved` audit rows, publishes `alert.resolved` and releases the loan actions, once
per alert (marked by an audit row `resolution_published`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, select

from iotfin.consent.tables import ConsentGrant
from iotfin.core.money import quantize_fen
from iotfin.core.time import business_date, ms_to_datetime
from iotfin.identity.tables import Tenant
from iotfin.lending.tables import CreditLine, Loan
from iotfin.monitor.tables import MonitorAlert, MonitorAlertEvent

log = logging.getLogger(__name__)
WEBHOOK_EVENT = {"open": "alert.raised", "escalate": "alert.escalated", "resolved": "alert.resolved"}
_ZH_TIER = {"watch": "关注", "alert": "预警", "freeze": "冻结授信", "margin_call": "追加保证金"}


def _events(conn: Any, alert_id: int, kind: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(MonitorAlertEvent.detail).where(
        MonitorAlertEvent.alert_id == alert_id, MonitorAlertEvent.kind == kind)).scalars().all()
    return [json.loads(r) for r in rows]


def _audit(conn: Any, alert_id: int, kind: str, detail: dict[str, Any]) -> None:
    conn.execute(MonitorAlertEvent.__table__.insert().values(
        alert_id=alert_id, kind=kind, actor="monitor", detail=json.dumps(detail, ensure_ascii=False, default=str),
        at=datetime.now(UTC)))


class LendingActions:
    """The loan_action port over LendingService (see the module docstring)."""

    def __init__(self, engine: Engine, lending: Any, margin_share: Decimal = Decimal("0.10"), margin_days: int = 7):
        self.engine = engine
        self.lending = lending
        self.margin_share = margin_share  # of the outstanding principal, unless coverage says more
        self.margin_days = margin_days

    def __call__(self, action: str, enterprise_id: int, context: dict[str, Any]) -> list[dict[str, Any]]:
        alert_id = int(context["alert_id"])
        on = business_date(ms_to_datetime(int(context["at"])))
        reason = f"monitor alert {alert_id} {context['rule']}: {context['reason_en']} / {context['reason_zh']}"
        with self.engine.connect() as conn:
            done = {(d["action"], d["target"], d["id"]) for d in _events(conn, alert_id, "loan_action_done")}
            lines = conn.execute(select(CreditLine.id, CreditLine.status).where(
                CreditLine.enterprise_id == enterprise_id, CreditLine.status != "closed")
                .order_by(CreditLine.id)).all()
            loans = conn.execute(select(Loan.id, Loan.principal_not_due, Loan.principal_due).where(
                Loan.enterprise_id == enterprise_id, Loan.status == "active").order_by(Loan.id)).all()
        results = []
        # A margin call is the tier above a freeze: the lines are frozen as well.
        for line_id, status in lines:
            if ("freeze_credit_line", "credit_line", line_id) in done:
                continue
            if status == "frozen":  # frozen by someone else: not ours to unfreeze later
                continue
            out = self.lending.set_line_status(line_id, "frozen", reason, on, actor="monitor")
            results.append(self._done(alert_id, "freeze_credit_line", "credit_line", line_id, out))
        if action == "margin_call":
            share = self.margin_share
            coverage = context.get("coverage")
            if coverage is not None and coverage < 1:
                share = max(share, Decimal(str(1 - coverage)))
            for loan_id, not_due, due in loans:
                if ("margin_call", "loan", loan_id) in done:
                    continue
                amount = quantize_fen((not_due + due) * share)
                if amount <= 0:
                    continue
                out = self.lending.margin_call(loan_id, amount, on + timedelta(days=self.margin_days), reason, on,
                                               actor="monitor")
                results.append(self._done(alert_id, "margin_call", "loan", loan_id, out))
        return results

    def _done(self, alert_id: int, action: str, target: str, target_id: int, out: dict[str, Any]) -> dict[str, Any]:
        detail = {"action": action, "target": target, "id": target_id, "result": out}
        with self.engine.begin() as conn:
            _audit(conn, alert_id, "loan_action_done", detail)
        return detail

    def release(self, alert_id: int, enterprise_id: int, on: date) -> list[dict[str, Any]]:
        """After the alert is resolved: unfreeze the lines it froze, unless another unresolved alert of
        the enterprise froze the same line."""

        with self.engine.connect() as conn:
            ours = [d["id"] for d in _events(conn, alert_id, "loan_action_done")
                    if d["action"] == "freeze_credit_line"]
            others = conn.execute(select(MonitorAlert.id).where(
                MonitorAlert.enterprise_id == enterprise_id, MonitorAlert.id != alert_id,
                MonitorAlert.status != "resolved")).scalars().all()
            held = {d["id"] for other in others for d in _events(conn, other, "loan_action_done")
                    if d["action"] == "freeze_credit_line"}
            status = dict(conn.execute(select(CreditLine.id, CreditLine.status).where(
                CreditLine.id.in_(ours or [-1]))).all())
        results = []
        for line_id in ours:
            if line_id in held or status.get(line_id) != "frozen":
                continue
            out = self.lending.set_line_status(line_id, "active", f"monitor alert {alert_id} resolved", on,
                                               actor="monitor")
            detail = {"line": line_id, "result": out}
            with self.engine.begin() as conn:
                _audit(conn, alert_id, "loan_action_released", detail)
            results.append(detail)
        return results


class WebhookNotifier:
    """The notify port over the webhooks outbox (see the module docstring)."""

    def __init__(self, engine: Engine, webhooks: Any):
        self.engine = engine
        self.webhooks = webhooks

    def lender_tenants(self, conn: Any, enterprise_id: int) -> list[int]:
        """Tenants the enterprise consented to for post-loan monitoring (live grant to the tenant's code)."""
        now = datetime.now(UTC)
        return sorted(set(conn.execute(select(Tenant.id).join(ConsentGrant, ConsentGrant.recipient == Tenant.code).where(and_(
            ConsentGrant.enterprise_id == enterprise_id, ConsentGrant.purpose == "post_loan_monitoring",
            ConsentGrant.withdrawn_at.is_(None), ConsentGrant.expires_at > now))).scalars().all()))

    def __call__(self, notice: dict[str, Any]) -> list[str]:
        event_type = WEBHOOK_EVENT.get(notice["kind"])
        if event_type is None:
            return []
        payload = {k: notice[k] for k in ("alert_id", "enterprise_id", "tier", "kind", "text_zh", "text_en")}
        payload["at"] = ms_to_datetime(int(notice["at"])).isoformat() if isinstance(notice["at"], int) else notice["at"]
        payload |= {"incident_type": notice.get("incident_type"), "rule": notice.get("rule")}
        ids = []
        with self.engine.begin() as conn:
            if notice["audience"] == "enterprise":
                ids.append(self.webhooks.emit(conn, event_type, payload, enterprise_id=int(notice["enterprise_id"])))
            else:
                for tenant in self.lender_tenants(conn, int(notice["enterprise_id"])):
                    ids.append(self.webhooks.emit(conn, event_type, payload, tenant_id=tenant))
            _audit(conn, int(notice["alert_id"]), "notified",
                   {"audience": notice["audience"], "event_type": event_type, "event_ids": ids})
        return ids


class Resolutions:
    """Officers' resolutions → `alert.resolved` webhooks and released loan actions, once per alert."""

    def __init__(self, engine: Engine, notify: WebhookNotifier | None, actions: LendingActions | None):
        self.engine = engine
        self.notify = notify
        self.actions = actions
        self.cursor = 0  # audit row id seen; restarts re-read and skip what is marked published

    def sweep(self) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(select(MonitorAlertEvent.id, MonitorAlertEvent.alert_id, MonitorAlertEvent.detail)
                                .where(MonitorAlertEvent.kind == "resolved", MonitorAlertEvent.id > self.cursor)
                                .order_by(MonitorAlertEvent.id)).all()
        handled = 0
        for event_id, alert_id, detail in rows:
            with self.engine.connect() as conn:
                published = _events(conn, alert_id, "resolution_published")
                alert = conn.execute(select(MonitorAlert).where(MonitorAlert.id == alert_id)).mappings().first()
            if not published and alert is not None:
                self._publish(alert, json.loads(detail or "{}").get("reason"))
                handled += 1
            self.cursor = event_id
        return handled

    def _publish(self, alert: Any, reason: str | None) -> None:
        now = datetime.now(UTC)
        if self.actions is not None:
            self.actions.release(alert["id"], alert["enterprise_id"], business_date(now))
        if self.notify is not None:
            texts = {
                "lender": (f"预警{alert['id']}已处理（{_ZH_TIER.get(alert['tier'], alert['tier'])}）：{reason}",
                           f"Alert {alert['id']} resolved ({alert['tier']}): {reason}"),
                "enterprise": (f"关于贵司的贷后预警{alert['id']}已解除：{reason}",
                               f"The post-loan alert {alert['id']} about your company was resolved: {reason}"),
            }
            for audience, (zh, en) in texts.items():
                self.notify({"alert_id": alert["id"], "enterprise_id": alert["enterprise_id"], "audience": audience,
                             "tier": alert["tier"], "kind": "resolved", "text_zh": zh, "text_en": en,
                             "at": now.isoformat(), "incident_type": alert["incident_type"], "rule": alert["rule"]})
        with self.engine.begin() as conn:
            _audit(conn, alert["id"], "resolution_published", {"reason": reason})
