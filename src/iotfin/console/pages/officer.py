"""Console pages of the credit officer and the approver (see iotfin.console.pages).

    /officer                          home: the review queue, my alerts, offers awaiting acceptance
    /officer/applications             the review queue (or every application, by status)
    /officer/applications/{id}        grade, PD, the three sub-scores with their reasons, the strategy's
                                      trace, limit and pricing, evidence; approve / decline / counter-offer
    /officer/enterprises              the lender's customers
    /officer/enterprises/{id}         enterprise 360: profile, sites map, devices and charts, consents,
                                      rating, loans, offers, applications, alerts
    /officer/alerts                   alert inbox: acknowledge, assign, resolve

Every read and action goes through the platform's API as the signed-in user (`page.api`), so tenant
isolation, four-eyes and consent are the API's: a refusal there is the same refusal here.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import HTMLResponse, ORJSONResponse, Response

from iotfin.api.routing import ApiRouter
from iotfin.console.messages import N_
from iotfin.console.pages.charts import newest_reading
from iotfin.console.web import NavItem, Page, PageError, chart_json, form_for, page_for

ROLES = ("risk_officer", "approver")
NAV: list[NavItem] = [
    NavItem(N_("Credit"), N_("Officer home"), "/officer/home", "applications:read", roles=ROLES),
    NavItem(N_("Credit"), N_("Applications"), "/officer/applications", "applications:read", roles=ROLES),
    NavItem(N_("Credit"), N_("Enterprises"), "/officer/enterprises", "enterprises:read", roles=ROLES),
    NavItem(N_("Credit"), N_("Alerts"), "/officer/alerts", "alerts:read", roles=ROLES),
]

#: Status values from the API -> message ids (extracted by iotfin.console.messages through N_).
STATUS_TEXT = {
    "referred": N_("Referred"),
    "awaiting_second_approval": N_("Awaiting second approver"),
    "approved": N_("Approved"),
    "declined": N_("Declined"),
    "open": N_("Open"),
    "acknowledged": N_("Acknowledged"),
    "resolved": N_("Resolved"),
    "active": N_("Active"),
    "inactive": N_("Inactive"),
    "revoked": N_("Revoked"),
    "accepted": N_("Accepted"),
    "booked": N_("Booked"),
    "expired": N_("Expired"),
    "withdrawn": N_("Withdrawn"),
    "closed": N_("Closed"),
    "written_off": N_("Written off"),
    "released": N_("Released"),
    "approve": N_("Approve"),
    "decline": N_("Decline"),
    "refer": N_("Refer"),
    "counter_offer": N_("Counter-offer"),
}
DOC_TEXT = {
    "purchase_order": N_("Purchase order"),
    "delivery_note": N_("Delivery note"),
    "invoice": N_("Invoice"),
    "warehouse_receipt": N_("Warehouse receipt"),
    "payment": N_("Payment"),
}
#: Which reading of each device type the enterprise page charts (a device may report several keys).
CHART_KEY = {
    "electricity_meter": "power_kw",
    "env_sensor": "temperature_c",
    "tank_gauge": "level_pct",
    "load_cell": "weight_t",
    "door_seal": "door_open",
    "machine_sensor": "runtime_min",
    "gps_tracker": "speed_kmh",
    "livestock_tag": "activity",
}
#: Sub-score reasons are told apart by their code's prefix (the risk engine's feature naming).
DIMENSIONS = (
    ("entity", "e_", N_("Entity credit")),
    ("asset", "a_", N_("Asset credit")),
    ("transaction", "t_", N_("Transaction credit")),
)
CHARTED_DEVICES = 3  # telemetry charts on the enterprise page (each is a request of its own)


def _status(page: Page, value: str | None) -> str:
    msgid = STATUS_TEXT.get(value or "")
    return page._(msgid) if msgid else (value or "—")


async def _maybe(coro: Any, default: Any = None) -> Any:
    """A part of a page the caller may not see (no consent to that scope, no rating yet): shown as
    absent with the API's reason; the page's main record itself is never read this way."""
    try:
        return await coro
    except PageError as exc:
        if exc.status in (403, 404):
            return {"refused": exc.status, "detail": exc.detail} if default is None else default
        raise


def _reasons_by_dimension(assessment: dict[str, Any]) -> list[dict[str, Any]]:
    reasons = assessment.get("reasons") or []
    scores = assessment.get("sub_scores") or {}
    out = []
    for key, prefix, label in DIMENSIONS:
        out.append(
            {
                "key": key,
                "label": label,
                "score": scores.get(key),
                "reasons": [r for r in reasons if str(r.get("code", "")).startswith(prefix)],
            }
        )
    other = [r for r in reasons if not any(str(r.get("code", "")).startswith(p) for _, p, _ in DIMENSIONS)]
    if other:
        out.append({"key": "other", "label": N_("Other reasons"), "score": None, "reasons": other})
    return out


# Module-level: the pages' annotations are strings (future annotations), resolved from module globals.
reader = page_for("applications:read", roles=ROLES)
ent_reader = page_for("enterprises:read", roles=ROLES)
alert_reader = page_for("alerts:read", roles=ROLES)
reviewer = form_for("applications:review", roles=ROLES)
alert_handler = form_for("alerts:handle", roles=ROLES)


def router() -> ApiRouter:
    r = ApiRouter(include_in_schema=False)

    @r.get("/officer/home")
    async def home(page: Annotated[Page, Depends(reader)]) -> HTMLResponse:
        me = page.session.username
        queue, offers, mine, recent = await asyncio.gather(
            page.api.get("/api/v1/review-queue", limit=200),
            _maybe(
                page.api.get("/api/v1/offers", status="open", limit=20), {"items": [], "next_cursor": None}
            ),
            _maybe(
                page.api.get("/api/v1/monitor/alerts", assigned_to=me, limit=20),
                {"items": [], "next_cursor": None},
            ),
            _maybe(
                page.api.get("/api/v1/monitor/alerts", status="open", limit=200),
                {"items": [], "next_cursor": None},
            ),
        )
        counts = {
            "referred": sum(1 for a in queue["items"] if a["status"] == "referred"),
            "awaiting": sum(1 for a in queue["items"] if a["status"] == "awaiting_second_approval"),
            "more": queue["next_cursor"] is not None,
            "open_alerts": len(recent["items"]),
            "open_offers": len(offers["items"]),
        }
        return page.render(
            "officer/home.html",
            title=page._("Officer home"),
            counts=counts,
            queue=queue["items"][:10],
            offers=offers["items"],
            mine=[a for a in mine["items"] if a["status"] != "resolved"],
            status_text=lambda v: _status(page, v),
        )

    @r.get("/officer/applications")
    async def applications(
        page: Annotated[Page, Depends(reader)],
        status: Annotated[str | None, Query(max_length=32)] = None,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> HTMLResponse:
        if status:
            data = await page.api.get("/api/v1/credit-applications", status=status, limit=50, cursor=cursor)
        else:
            data = await page.api.get("/api/v1/review-queue", limit=50, cursor=cursor)
        base = "/officer/applications" + (f"?status={status}" if status else "")
        return page.render(
            "officer/applications.html",
            title=page._("Applications"),
            items=data["items"],
            next_cursor=data["next_cursor"],
            base=base,
            filter_status=status or "",
            status_text=lambda v: _status(page, v),
        )

    @r.get("/officer/applications/{application_id}")
    async def application(application_id: int, page: Annotated[Page, Depends(reader)]) -> HTMLResponse:
        app = await page.api.get(f"/api/v1/credit-applications/{application_id}")
        decisions = app.get("decisions") or []
        strategy = next(
            (d for d in decisions if d.get("source") == "strategy"), decisions[0] if decisions else None
        )
        result = (strategy or {}).get("result") or {}
        assessment = result.get("assessment") or (app.get("inputs") or {}).get("assessment") or {}
        proposed = (
            Decimal(str(strategy["offered_amount"])) if strategy and strategy.get("offered_amount") else None
        )
        four_eyes = Decimal(str(app.get("four_eyes_amount") or "0"))
        pending = None
        if app["status"] == "awaiting_second_approval" and app.get("reviews"):
            pending = app["reviews"][-1]
        trace = sorted(
            ((k, v) for k, v in (result.get("trace") or {}).items() if isinstance(v, dict)),
            key=lambda kv: kv[1].get("order", 0),
        )
        offers = await _maybe(
            page.api.get("/api/v1/offers", enterprise_id=app["enterprise_id"], limit=20), {"items": []}
        )
        my_offers = [o for o in offers["items"] if o.get("application_id") == application_id]
        return page.render(
            "officer/application.html",
            title=page._("Application {id}", id=application_id),
            app=app,
            strategy=strategy,
            result=result,
            assessment=assessment,
            dimensions=_reasons_by_dimension(assessment),
            trace=trace,
            proposed=proposed,
            four_eyes=four_eyes,
            needs_two=proposed is not None and proposed > four_eyes,
            pending=pending,
            offers=my_offers,
            can_review=page.who.has("applications:review"),
            open=app["status"] in ("referred", "awaiting_second_approval"),
            status_text=lambda v: _status(page, v),
        )

    @r.get("/officer/applications/{application_id}/decisions/{decision_id}/evidence.json")
    async def decision_evidence(application_id: int, decision_id: int,
                                page: Annotated[Page, Depends(reader)]) -> Response:
        """The decision's evidence bundle from the API, as a file to verify offline (`iotfin ledger verify`)."""
        response = await page.api.call(
            "GET", f"/api/v1/credit-applications/{application_id}/decisions/{decision_id}/evidence", raw=True
        )
        return Response(
            response.content,
            media_type="application/json",
            headers={
                "Content-Disposition": f'attachment; filename="evidence-decision-{decision_id}.json"',
                "Cache-Control": "no-store",
            },
        )

    @r.post("/officer/applications/{application_id}/review")
    async def review(application_id: int, page: Annotated[Page, Depends(reviewer)]) -> Response:
        form = await page.form()
        action = str(form.get("action") or "")
        body: dict[str, Any] = {
            "officer": page.session.username,
            "action": action,
            "reason": str(form.get("reason") or "").strip(),
        }
        if action == "counter_offer":
            body |= {
                "amount": str(form.get("amount") or "").strip() or None,
                "tenor_months": int(str(form.get("tenor_months")))
                if str(form.get("tenor_months") or "").isdigit()
                else None,
                "rate": str(form.get("rate") or "").strip() or None,
            }
        target = f"/officer/applications/{application_id}"
        try:
            out = await page.api.post(f"/api/v1/credit-applications/{application_id}/reviews", json=body)
        except PageError as exc:
            if exc.status in (
                409,
                422,
            ):  # refused (four-eyes, not awaiting review, bad terms): said on the page
                return page.redirect(target, flash=page._("Refused: {reason}", reason=exc.detail))
            raise
        if out.get("status") == "awaiting_second_approval":
            return page.redirect(
                target, flash=page._("Recorded: a second, different approver must confirm it")
            )
        return page.redirect(
            target, flash=page._("Decision recorded: {status}", status=_status(page, out.get("status")))
        )

    # --- enterprises ---------------------------------------------------------------------------

    @r.get("/officer/enterprises")
    async def enterprises(
        page: Annotated[Page, Depends(ent_reader)],
        q: Annotated[str | None, Query(max_length=100)] = None,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> HTMLResponse:
        data = await page.api.get("/api/v1/enterprises", q=q, limit=50, cursor=cursor)
        base = "/officer/enterprises" + (f"?q={q}" if q else "")
        return page.render(
            "officer/enterprises.html",
            title=page._("Enterprises"),
            items=data["items"],
            next_cursor=data["next_cursor"],
            base=base,
            q=q or "",
        )

    @r.get("/officer/enterprises/{enterprise_id}")
    async def enterprise(enterprise_id: int, page: Annotated[Page, Depends(ent_reader)]) -> HTMLResponse:
        profile = await page.api.get(
            f"/api/v1/enterprises/{enterprise_id}"
        )  # 404 for another's: the page's too
        empty = {"items": [], "next_cursor": None}
        consents = await _maybe(page.api.get("/api/v1/consents", enterprise_id=enterprise_id), empty)
        mine = [c for c in consents.get("items", []) if c.get("recipient") == page.who.tenant_code]
        active = [c for c in mine if c.get("status") == "active"]
        # the purpose to read devices and telemetry under: post-loan monitoring if consented, else assessment
        purposes = [c["purpose"] for c in active]
        purpose = (
            "post_loan_monitoring"
            if "post_loan_monitoring" in purposes
            else (purposes[0] if purposes else "credit_assessment")
        )
        trade_purpose = next(
            (c["purpose"] for c in active if "trade_documents" in c.get("scopes", [])), purpose
        )
        sites, devices, rating, history, loans, offers, apps, alerts, documents, liens = await asyncio.gather(
            _maybe(page.api.get(f"/api/v1/enterprises/{enterprise_id}/sites", limit=100), empty),
            _maybe(
                page.api.get("/api/v1/devices", enterprise_id=enterprise_id, purpose=purpose, limit=100),
                empty,
            ),
            _maybe(page.api.get(f"/api/v1/enterprises/{enterprise_id}/credit-profile")),
            _maybe(page.api.get(f"/api/v1/enterprises/{enterprise_id}/credit-ratings", limit=12), empty),
            _maybe(page.api.get("/api/v1/lending/loans", enterprise_id=enterprise_id, limit=20), empty),
            _maybe(page.api.get("/api/v1/offers", enterprise_id=enterprise_id, limit=20), empty),
            _maybe(page.api.get("/api/v1/credit-applications", enterprise_id=enterprise_id, limit=20), empty),
            _maybe(page.api.get("/api/v1/monitor/alerts", enterprise_id=enterprise_id, limit=20), empty),
            _maybe(
                page.api.get(
                    f"/api/v1/enterprises/{enterprise_id}/trade-documents", purpose=trade_purpose, limit=10
                )
            ),
            _maybe(page.api.get("/api/v1/financing/liens", enterprise_id=enterprise_id, limit=10)),
        )
        device_items = devices.get("items", [])
        # Last readings are fetched by the browser after the page (htmx, `last_reading` below): each is a
        # bucketed telemetry read (~0.1-0.3 s on the demo), which would otherwise hold the whole page.
        charted = [
            d for d in device_items if d.get("status") != "revoked" and d.get("device_type") in CHART_KEY
        ][:CHARTED_DEVICES]
        return page.render(
            "officer/enterprise.html",
            title=profile.get("name") or str(enterprise_id),
            e=profile,
            sites=sites.get("items", []),
            devices=device_items,
            charted=charted,
            chart_key=CHART_KEY,
            purpose=purpose,
            consents=mine,
            dimension_labels=[(k, label) for k, _, label in DIMENSIONS],
            rating=rating,
            rating_history=history.get("items", []),
            loans=loans.get("items", []),
            offers=offers.get("items", []),
            apps=apps.get("items", []),
            alerts=alerts.get("items", []),
            documents=documents,
            liens=liens,
            doc_text=lambda v: page._(DOC_TEXT[v]) if v in DOC_TEXT else v,
            status_text=lambda v: _status(page, v),
        )

    @r.get("/officer/enterprises/{enterprise_id}/devices/{device_id}/last")
    async def last_reading(
        enterprise_id: int,
        device_id: int,
        page: Annotated[Page, Depends(ent_reader)],
        key: Annotated[str, Query(max_length=64)],
        purpose: Annotated[str, Query(max_length=32)] = "post_loan_monitoring",
    ) -> HTMLResponse:
        """A device's last reading (the newest of the last 7 days), as a table cell's content (htmx)."""
        # refused (no consent to that device's scope) or nothing to show: an empty cell, not an error
        last = await _maybe(newest_reading(page, enterprise_id, device_id, key, purpose=purpose), {}) or None
        return page.render("_last_reading.html", lr=last)

    @r.get("/officer/enterprises/{enterprise_id}/sites.json")
    async def sites_map(enterprise_id: int, page: Annotated[Page, Depends(ent_reader)]) -> ORJSONResponse:
        """The enterprise's sites for console.js's `scatter-map` chart: [[lon, lat, label], ...]."""
        data = await page.api.get(f"/api/v1/enterprises/{enterprise_id}/sites", limit=200)
        points = [
            [s["lon"], s["lat"], f"{s['name']} ({s['kind']})"]
            for s in data["items"]
            if s.get("lon") is not None and s.get("lat") is not None
        ]
        body = {"x": "value", "unit": "", "series": [{"name": page._("Sites"), "data": points}]}
        return chart_json(page, body)

    # --- alerts --------------------------------------------------------------------------------

    @r.get("/officer/alerts")
    async def alerts(
        page: Annotated[Page, Depends(alert_reader)],
        status: Annotated[str | None, Query(max_length=16)] = None,
        mine: Annotated[bool, Query()] = False,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> HTMLResponse:
        data = await page.api.get(
            "/api/v1/monitor/alerts",
            status=status,
            limit=50,
            cursor=cursor,
            assigned_to=page.session.username if mine else None,
        )
        query = "&".join(p for p in (f"status={status}" if status else "", "mine=1" if mine else "") if p)
        return page.render(
            "officer/alerts.html",
            title=page._("Alerts"),
            items=data["items"],
            next_cursor=data["next_cursor"],
            base="/officer/alerts" + (f"?{query}" if query else ""),
            filter_status=status or "",
            mine=mine,
            can_handle=page.who.has("alerts:handle"),
            status_text=lambda v: _status(page, v),
        )

    @r.post("/officer/alerts/{alert_id}/{action}")
    async def handle_alert(
        alert_id: int, action: str, page: Annotated[Page, Depends(alert_handler)]
    ) -> Response:
        form = await page.form()
        me = page.session.username
        if action == "acknowledge":
            body: dict[str, Any] = {"by": me}
        elif action == "assign":
            body = {"by": me, "officer": str(form.get("officer") or "").strip() or me}
        elif action == "resolve":
            body = {"by": me, "reason": str(form.get("reason") or "").strip()}
        else:
            raise PageError(404, f"no alert action {action!r} (acknowledge, assign, resolve)")
        back = str(form.get("back") or "/officer/alerts")
        back = back if back.startswith("/officer/") else "/officer/alerts"
        try:
            await page.api.post(f"/api/v1/monitor/alerts/{alert_id}/{action}", json=body)
        except PageError as exc:
            if exc.status in (409, 422):
                return page.redirect(back, flash=page._("Refused: {reason}", reason=exc.detail))
            raise
        done = {
            "acknowledge": N_("Alert acknowledged"),
            "assign": N_("Alert assigned"),
            "resolve": N_("Alert resolved"),
        }[action]
        return page.redirect(back, flash=page._(done))

    return r
