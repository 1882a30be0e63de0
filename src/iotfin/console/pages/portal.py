"""Console pages of the enterprise (see iotfin.console.pages), signed in as its administrator.

    /portal/devices                   my devices: status, last reading, zoomable telemetry charts
    /portal/consents                  my consents: grant, withdraw, reconfirm
    /portal/access-log                who read which of my data, when, allowed or refused (paginated)
    /portal/offers                    my offers; /portal/offers/{id}: the key facts (APR, total cost,
                                      schedule), then accept
    /portal/loans                     my loans; /portal/loans/{id}: schedule and repayments
    /portal/complaints                file a complaint, see its status
    /portal/hardship                  ask a lender for relief, see its status

The enterprise is always the signed-in user's own (`who.enterprise_id`): no page takes an enterprise
id from the URL. Records named in a URL (an offer, a loan) are read through the API, which answers
404 for another enterprise's; the page answers the same.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query
from fastapi.responses import HTMLResponse, Response

from iotfin.api.routing import ApiRouter
from iotfin.console.messages import N_
from iotfin.console.pages.charts import newest_reading
from iotfin.console.web import NavItem, Page, PageError, form_for, page_for

ROLES = ("enterprise_admin",)
NAV: list[NavItem] = [
    NavItem(N_("My enterprise"), N_("My devices"), "/portal/devices", "devices:read", roles=ROLES),
    NavItem(N_("My enterprise"), N_("My consents"), "/portal/consents", "consents:read", roles=ROLES),
    NavItem(N_("My enterprise"), N_("Access log"), "/portal/access-log", "consents:read", roles=ROLES),
    NavItem(N_("My enterprise"), N_("My offers"), "/portal/offers", "offers:read", roles=ROLES),
    NavItem(N_("My enterprise"), N_("My loans"), "/portal/loans", "lending:read", roles=ROLES),
    NavItem(N_("My enterprise"), N_("Complaints"), "/portal/complaints", "complaints:read", roles=ROLES),
    NavItem(N_("My enterprise"), N_("Hardship requests"), "/portal/hardship", "hardship:submit", roles=ROLES),
]

#: Status values from the API -> message ids.
STATUS_TEXT = {
    "active": N_("Active"), "inactive": N_("Inactive"), "revoked": N_("Revoked"), "withdrawn": N_("Withdrawn"),
    "expired": N_("Expired"), "reconfirm_due": N_("Reconfirmation due"), "lapsed": N_("Lapsed"),
    "open": N_("Open"), "accepted": N_("Accepted"), "booked": N_("Booked"), "closed": N_("Closed"),
    "written_off": N_("Written off"), "allowed": N_("Allowed"), "refused": N_("Refused"),
}
#: Complaint categories and hardship reasons/reliefs (the API's codes; texts in our catalogs).
COMPLAINT_CATEGORIES = {"pricing": N_("Interest or fees"), "disclosure": N_("Disclosure"),
                        "collection": N_("Collection practice"), "data_privacy": N_("Personal data and data use"),
                        "service": N_("Service quality"), "decision": N_("Credit decision"), "other": N_("Other")}
HARDSHIP_REASONS = {"income_loss": N_("Sharp fall in business income"), "illness": N_("Illness of a key person"),
                    "disaster": N_("Natural disaster or emergency"),
                    "supply_chain": N_("Late payment by buyers or supply-chain disruption"),
                    "other": N_("Other hardship")}
RELIEF_KINDS = {"deferral": N_("Payment deferral"), "restructure": N_("Restructured repayment schedule"),
                "fee_waiver": N_("Waiver of penalty interest and fees"), "rate_reduction": N_("Interest-rate reduction")}
#: Which reading of each device type the pages chart (a device may report several keys; the API asks which).
CHART_KEY = {"electricity_meter": "power_kw", "env_sensor": "temperature_c", "tank_gauge": "level_pct",
             "load_cell": "weight_t", "door_seal": "door_open", "machine_sensor": "runtime_min",
             "gps_tracker": "speed_kmh", "livestock_tag": "activity"}
CHARTED_DEVICES = 3          # telemetry charts on the devices page (each is a request of its own)
LAST_READING_DEVICES = 12    # devices whose last reading the page shows (one bucketed read each)
SHANGHAI = timezone(timedelta(hours=8))
EMPTY: dict[str, Any] = {"items": [], "next_cursor": None}

# Module-level: the pages' annotations are strings (future annotations), resolved from module globals.
device_reader = page_for("devices:read", roles=ROLES)
consent_reader = page_for("consents:read", roles=ROLES)
consent_manager = form_for("consents:manage", roles=ROLES)
offer_reader = page_for("offers:read", roles=ROLES)
offer_acceptor = form_for("offers:accept", roles=ROLES)
loan_reader = page_for("lending:read", roles=ROLES)
complaint_reader = page_for("complaints:read", roles=ROLES)
complaint_filer = form_for("complaints:submit", roles=ROLES)
hardship_reader = page_for("hardship:submit", roles=ROLES)
hardship_filer = form_for("hardship:submit", roles=ROLES)

Cursor = Annotated[str | None, Query(max_length=64)]


def _eid(page: Page) -> int:
    if page.who.enterprise_id is None:  # roles=enterprise_admin: every such user belongs to an enterprise
        raise PageError(403, "the enterprise portal is for an enterprise's own users")
    return page.who.enterprise_id


def _status(page: Page, value: str | None) -> str:
    msgid = STATUS_TEXT.get(value or "")
    return page._(msgid) if msgid else (value or "—")


def _label(page: Page, table: dict[str, str], code: str | None) -> str:
    return page._(table[code]) if code in table else (code or "—")


async def _refused_as_flash(page: Page, back: str, call: Any) -> Response | None:
    """Run an API action; a refusal of the input (409/422) is told on the page it came from."""
    try:
        await call
    except PageError as exc:
        if exc.status in (409, 422):
            return page.redirect(back, flash=page._("Refused: {reason}", reason=exc.detail))
        raise
    return None


def _text(form: Any, name: str) -> str:
    return str(form.get(name) or "").strip()


def router() -> ApiRouter:
    r = ApiRouter(include_in_schema=False)

    # --- devices and data ------------------------------------------------------------------------

    @r.get("/portal/devices")
    async def devices(page: Annotated[Page, Depends(device_reader)], cursor: Cursor = None) -> HTMLResponse:
        eid = _eid(page)
        data = await page.api.get("/api/v1/devices", enterprise_id=eid, limit=50, cursor=cursor)
        items = data["items"]
        # Last readings are fetched by the browser after the page (htmx, `last_reading` below): each
        # is a bucketed telemetry read, and a dozen of them would otherwise hold the whole page.
        shown = [d for d in items if d.get("status") != "revoked" and d.get("device_type") in CHART_KEY]
        charted = shown[:CHARTED_DEVICES]
        return page.render("portal/devices.html", title=page._("My devices"), eid=eid, items=items,
                           chart_key=CHART_KEY, read_last=shown[:LAST_READING_DEVICES], charted=charted,
                           next_cursor=data["next_cursor"],
                           status_text=lambda v: _status(page, v))

    @r.get("/portal/devices/{device_id}/last")
    async def last_reading(device_id: int, page: Annotated[Page, Depends(device_reader)],
                           key: Annotated[str, Query(max_length=64)]) -> HTMLResponse:
        """One of my devices' last reading (the newest of the last 7 days), as a table cell (htmx)."""
        try:
            last = await newest_reading(page, _eid(page), device_id, key)
        except PageError as exc:
            if exc.status not in (404, 422):  # 404/422: no readings of that key (shown as none)
                raise
            last = None
        return page.render("_last_reading.html", lr=last)

    # --- consents and the access log -------------------------------------------------------------

    @r.get("/portal/consents")
    async def consents(page: Annotated[Page, Depends(consent_reader)]) -> HTMLResponse:
        eid = _eid(page)
        grants, vocabulary = await asyncio.gather(page.api.get("/api/v1/consents", enterprise_id=eid),
                                                  page.api.get("/api/v1/consents/vocabulary"))
        items = sorted(grants["items"], key=lambda g: (g["status"] != "active", -g["id"]))
        recipients = sorted({g["recipient"] for g in items})
        today = datetime.now(SHANGHAI).date()
        return page.render("portal/consents.html", title=page._("My consents"), items=items,
                           vocabulary=vocabulary, recipients=recipients, today=today.isoformat(),
                           until=(today + timedelta(days=364)).isoformat(),
                           can_manage=page.who.has("consents:manage"), status_text=lambda v: _status(page, v))

    @r.post("/portal/consents")
    async def grant(page: Annotated[Page, Depends(consent_manager)]) -> Response:
        eid = _eid(page)
        form = await page.form()
        back = "/portal/consents"
        scopes = [str(s) for s in form.getlist("scopes")]
        try:
            start = date.fromisoformat(_text(form, "window_start"))
            until = date.fromisoformat(_text(form, "expires_on"))
        except ValueError:
            return page.redirect(back, flash=page._("Refused: {reason}", reason=page._("dates must be YYYY-MM-DD")))
        body = {"enterprise_id": eid, "recipient": _text(form, "recipient"), "purpose": _text(form, "purpose"),
                "scopes": scopes, "window_start": start.isoformat(), "window_end": until.isoformat(),
                # the end of the chosen day, Beijing time (the API caps it at 12 months)
                "expires_at": datetime.combine(until, dtime(23, 59, 59), SHANGHAI).isoformat()}
        if not scopes:
            return page.redirect(back, flash=page._("Refused: {reason}", reason=page._("choose at least one kind of data")))
        refused = await _refused_as_flash(page, back, page.api.post("/api/v1/consents", json=body))
        return refused or page.redirect(back, flash=page._("Consent granted to {recipient}", recipient=body["recipient"]))

    @r.post("/portal/consents/{grant_id}/{action}")
    async def consent_action(grant_id: int, action: str, page: Annotated[Page, Depends(consent_manager)]) -> Response:
        if action not in ("withdraw", "reconfirm"):
            raise PageError(404, f"no consent action {action!r} (withdraw, reconfirm)")
        back = "/portal/consents"
        refused = await _refused_as_flash(page, back, page.api.post(f"/api/v1/consents/{grant_id}/{action}",
                                                                    json={"enterprise_id": _eid(page)}))
        done = N_("Consent withdrawn") if action == "withdraw" else N_("Consent reconfirmed")
        return refused or page.redirect(back, flash=page._(done))

    @r.get("/portal/access-log")
    async def access_log(page: Annotated[Page, Depends(consent_reader)], cursor: Cursor = None,
                         recipient: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
        eid = _eid(page)
        data, vocabulary, grants = await asyncio.gather(
            page.api.get("/api/v1/consents/access-log", enterprise_id=eid, recipient=recipient, limit=50, cursor=cursor),
            page.api.get("/api/v1/consents/vocabulary"), page.api.get("/api/v1/consents", enterprise_id=eid))
        base = "/portal/access-log" + (f"?{urlencode({'recipient': recipient})}" if recipient else "")
        return page.render("portal/access_log.html", title=page._("Access log"), items=data["items"],
                           next_cursor=data["next_cursor"], vocabulary=vocabulary, base=base,
                           recipient=recipient or "", recipients=sorted({g["recipient"] for g in grants["items"]}))

    # --- offers ----------------------------------------------------------------------------------

    @r.get("/portal/offers")
    async def offers(page: Annotated[Page, Depends(offer_reader)], cursor: Cursor = None) -> HTMLResponse:
        data = await page.api.get("/api/v1/offers", enterprise_id=_eid(page), limit=50, cursor=cursor)
        return page.render("portal/offers.html", title=page._("My offers"), items=data["items"],
                           next_cursor=data["next_cursor"], status_text=lambda v: _status(page, v))

    @r.get("/portal/offers/{offer_id}")
    async def offer(offer_id: int, page: Annotated[Page, Depends(offer_reader)]) -> HTMLResponse:
        o = await page.api.get(f"/api/v1/offers/{offer_id}")  # another enterprise's: 404, here too
        # the figures of the statement (total cost, schedule), recomputed by the API from the offer's terms
        facts = await page.api.post("/api/v1/lending/key-facts", json={
            "principal": str(o["amount"]), "annual_rate": str(o["annual_rate"]), "term": o["tenor_months"],
            "start": str(o["start"]), "product": o["servicing_product"], "subsidy_rate": str(o["subsidy_rate"])})
        text = o["key_facts"]["zh" if page.language == "zh" else "en"]
        return page.render("portal/offer.html", title=page._("Offer {id}", id=offer_id), o=o, facts=facts,
                           statement=text, can_accept=o["status"] == "open" and page.who.has("offers:accept"),
                           status_text=lambda v: _status(page, v))

    @r.post("/portal/offers/{offer_id}/acceptance")
    async def accept(offer_id: int, page: Annotated[Page, Depends(offer_acceptor)]) -> Response:
        form = await page.form()
        back = f"/portal/offers/{offer_id}"
        if form.get("read_key_facts") != "yes":
            return page.redirect(back, flash=page._("Refused: {reason}",
                                                    reason=page._("confirm that you have read the key facts")))
        refused = await _refused_as_flash(page, back, page.api.post(
            f"/api/v1/offers/{offer_id}/acceptance", json={"key_facts_digest": _text(form, "key_facts_digest")}))
        return refused or page.redirect(back, flash=page._("Offer accepted: your lender will now book the loan"))

    # --- loans -----------------------------------------------------------------------------------

    @r.get("/portal/loans")
    async def loans(page: Annotated[Page, Depends(loan_reader)], cursor: Cursor = None) -> HTMLResponse:
        data = await page.api.get("/api/v1/lending/loans", enterprise_id=_eid(page), limit=50, cursor=cursor)
        return page.render("portal/loans.html", title=page._("My loans"), items=data["items"],
                           next_cursor=data["next_cursor"], status_text=lambda v: _status(page, v))

    @r.get("/portal/loans/{loan_id}")
    async def loan(loan_id: int, page: Annotated[Page, Depends(loan_reader)], cursor: Cursor = None) -> HTMLResponse:
        detail, repaid = await asyncio.gather(page.api.get(f"/api/v1/lending/loans/{loan_id}"),
                                              page.api.get(f"/api/v1/lending/loans/{loan_id}/repayments",
                                                           limit=50, cursor=cursor))
        return page.render("portal/loan.html", title=page._("Loan {id}", id=loan_id), loan=detail,
                           repayments=repaid["items"], next_cursor=repaid["next_cursor"],
                           status_text=lambda v: _status(page, v))

    # --- complaints and hardship -----------------------------------------------------------------

    @r.get("/portal/complaints")
    async def complaints(page: Annotated[Page, Depends(complaint_reader)], cursor: Cursor = None) -> HTMLResponse:
        data = await page.api.get("/api/v1/complaints", limit=50, cursor=cursor)
        return page.render("portal/complaints.html", title=page._("Complaints"), items=data["items"],
                           next_cursor=data["next_cursor"], categories=COMPLAINT_CATEGORIES,
                           label=lambda code: _label(page, COMPLAINT_CATEGORIES, code),
                           can_file=page.who.has("complaints:submit"))

    @r.post("/portal/complaints")
    async def file_complaint(page: Annotated[Page, Depends(complaint_filer)]) -> Response:
        form = await page.form()
        body = {"category": _text(form, "category"), "subject": _text(form, "subject"),
                "description": _text(form, "description"), "tenant": _text(form, "tenant") or None}
        back = "/portal/complaints"
        refused = await _refused_as_flash(page, back, page.api.post("/api/v1/complaints", json=body))
        return refused or page.redirect(back, flash=page._("Complaint filed"))

    @r.get("/portal/hardship")
    async def hardship(page: Annotated[Page, Depends(hardship_reader)], cursor: Cursor = None) -> HTMLResponse:
        eid = _eid(page)
        mine, loans_, profile = await asyncio.gather(
            page.api.get("/api/v1/hardship-requests", limit=50, cursor=cursor) if page.who.has("hardship:review")
            else asyncio.sleep(0, EMPTY),
            page.api.get("/api/v1/lending/loans", enterprise_id=eid, limit=50),
            page.api.get(f"/api/v1/enterprises/{eid}"))
        return page.render("portal/hardship.html", title=page._("Hardship requests"), items=mine["items"],
                           next_cursor=mine["next_cursor"], loans=loans_["items"], reasons=HARDSHIP_REASONS,
                           reliefs=RELIEF_KINDS, reason_label=lambda c: _label(page, HARDSHIP_REASONS, c),
                           relief_label=lambda c: _label(page, RELIEF_KINDS, c),
                           house_bank=profile.get("onboarded_by"))

    @r.post("/portal/hardship")
    async def file_hardship(page: Annotated[Page, Depends(hardship_filer)]) -> Response:
        form = await page.form()
        body = {"tenant": _text(form, "tenant"), "loan_ref": _text(form, "loan_ref"),
                "reason_code": _text(form, "reason_code"), "relief": _text(form, "relief"),
                "description": _text(form, "description")}
        back = "/portal/hardship"
        refused = await _refused_as_flash(page, back, page.api.post("/api/v1/hardship-requests", json=body))
        return refused or page.redirect(back, flash=page._("Hardship request filed"))

    return r
