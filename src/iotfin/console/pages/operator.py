"""Console pages of the platform operator (see iotfin.console.pages).

    /operator/fleet                   devices online / offline / never seen, by registry status, latest
                                      activity, ingest volume, rejected readings by reason
    /operator/fleet/{chart}.json      chart data: connectivity (pie), rejected readings by reason (bar)
    /operator/ledger                  latest checkpoint with its signatures and this platform's witness
                                      cosignature, anchors by record type; run an audit; evidence bundles
    /operator/close                   the daily close: closed through, last run, next run
    /operator/users                   tenants, their console users and partner clients; create either

The pages ask only for a signed-in user: what each shows is decided by the API it calls (the fleet
summary is the operator's, the ledger's status needs ledger:evidence, tenants need identity:manage),
so a lender's user who opens one gets the API's own refusal, with its reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import HTMLResponse, ORJSONResponse, Response

from iotfin.api.routing import ApiRouter
from iotfin.console.messages import N_
from iotfin.console.web import NavItem, Page, PageError, chart_json, form_for, page_for

NAV: list[NavItem] = [
    NavItem(N_("Operations"), N_("Fleet"), "/operator/fleet", "enterprises:read", platform_only=True),
    NavItem(N_("Operations"), N_("Ledger"), "/operator/ledger", "ledger:evidence", platform_only=True),
    NavItem(N_("Operations"), N_("Daily close"), "/operator/close", "lending:books", platform_only=True),
    NavItem(N_("Operations"), N_("Users and clients"), "/operator/users", "identity:manage", platform_only=True),
]

CONNECTIVITY_TEXT = {"online": N_("Online"), "offline": N_("Offline"), "never_seen": N_("Never seen")}
CLOSE_STATUS_TEXT = {"done": N_("Done"), "running": N_("Running"), "failed": N_("Failed")}
#: Roles an operator may give a lender's console user here (platform_admin only in the operator's tenant).
USER_ROLES = ("risk_officer", "approver", "auditor", "risk_manager", "platform_admin")


#: Operator pages ask only for a session; the API each calls decides (module docstring). Module level:
#: FastAPI resolves the (string) annotations in the module's namespace.
SIGNED_IN = page_for()
SIGNED_IN_FORM = form_for()


def router() -> ApiRouter:
    r = ApiRouter(include_in_schema=False)

    # --- fleet ----------------------------------------------------------------------------------

    @r.get("/operator/fleet")
    async def fleet(page: Annotated[Page, Depends(SIGNED_IN)]) -> HTMLResponse:
        data = await page.api.get("/api/v1/fleet")
        return page.render("operator/fleet.html", fleet=data)

    @r.get("/operator/fleet/connectivity.json")
    async def connectivity_chart(page: Annotated[Page, Depends(SIGNED_IN)]) -> ORJSONResponse:
        data = await page.api.get("/api/v1/fleet")
        return chart_json(page, {"unit": page._("devices"), "series": [{"name": page._("Devices"), "data": [
            {"name": page._(msgid), "value": data[key]} for key, msgid in CONNECTIVITY_TEXT.items()]}]})

    @r.get("/operator/fleet/rejected.json")
    async def rejected_chart(page: Annotated[Page, Depends(SIGNED_IN)]) -> ORJSONResponse:
        data = await page.api.get("/api/v1/fleet")
        reasons = list(data["rejected_by_reason"].items())[:15]
        return chart_json(page, {"x": "category", "categories": [k for k, _ in reasons], "unit": page._("readings"),
                             "series": [{"name": page._("Rejected readings"), "data": [[k, v] for k, v in reasons]}]})

    # --- ledger ---------------------------------------------------------------------------------

    @r.get("/operator/ledger")
    async def ledger(page: Annotated[Page, Depends(SIGNED_IN)]) -> HTMLResponse:
        data = await page.api.get("/api/v1/ledger/status")
        return page.render("operator/ledger.html", ledger=data)

    @r.post("/operator/ledger/audit")
    async def audit(page: Annotated[Page, Depends(SIGNED_IN_FORM)]) -> Response:
        result = await page.api.post("/api/v1/ledger/audit")
        if result["ok"]:
            flash = page._("Audit passed: {leaves} leaves re-derived, {records} records checked, no problem found.",
                           leaves=result["leaves"], records=result["records_checked"])
        else:
            problems = len(result.get("log") or []) + len(result.get("records") or [])
            flash = page._("Audit found {n} problems: {first}", n=problems,
                           first=str(((result.get("log") or []) + (result.get("records") or []))[0])[:300])
        return page.redirect("/operator/ledger", flash=flash)

    @r.get("/operator/ledger/evidence/{record_type}/{record_id}")
    async def evidence(record_type: str, record_id: str, page: Annotated[Page, Depends(SIGNED_IN)]) -> Response:
        """The API's evidence bundle, as a file to hand to whoever verifies it offline."""
        response = await page.api.call("GET", f"/api/v1/ledger/evidence/{record_type}/{record_id}", raw=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{record_type}-{record_id}")
        return Response(response.content, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="evidence-{safe}.json"',
                                 "Cache-Control": "no-store"})

    # --- daily close ----------------------------------------------------------------------------

    @r.get("/operator/close")
    async def close(page: Annotated[Page, Depends(SIGNED_IN)]) -> HTMLResponse:
        data = await page.api.get("/api/v1/lending/close")
        last = data.get("last_run") or {}
        status = last.get("status")
        return page.render("operator/close.html", close=data,
                           last_status=page._(CLOSE_STATUS_TEXT[status]) if status in CLOSE_STATUS_TEXT else (status or "—"))

    # --- users and partner clients --------------------------------------------------------------

    @r.get("/operator/users")
    async def users(page: Annotated[Page, Depends(SIGNED_IN)],
                    tenant: Annotated[str | None, Query(max_length=64)] = None,
                    cursor: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
        tenants = await page.api.get("/api/v1/tenants", limit=200)
        codes = [t["code"] for t in tenants["items"]]
        code = tenant or (codes[0] if codes else None)
        people = clients = {"items": [], "next_cursor": None}
        if code is not None:
            people = await page.api.get(f"/api/v1/tenants/{code}/users", limit=50, cursor=cursor)
            clients = await page.api.get(f"/api/v1/tenants/{code}/clients", limit=50)
        return page.render("operator/users.html", tenants=tenants["items"], code=code, people=people,
                           clients=clients, roles=USER_ROLES, created=None)

    @r.post("/operator/users")
    async def create_user(page: Annotated[Page, Depends(SIGNED_IN_FORM)]) -> Response:
        form = await page.form()
        code = str(form.get("tenant") or "")
        if not code:
            raise PageError(422, "tenant: choose a tenant")
        username = str(form.get("username") or "")
        await page.api.post(f"/api/v1/tenants/{code}/users", json={
            "username": username, "password": str(form.get("password") or ""),
            "roles": [str(v) for v in form.getlist("roles")], "display_name": str(form.get("display_name") or "") or None})
        return page.redirect(f"/operator/users?tenant={code}", flash=page._("User {username} created", username=username))

    @r.post("/operator/clients")
    async def create_client(page: Annotated[Page, Depends(SIGNED_IN_FORM)]) -> HTMLResponse:
        """Rendered directly, not redirected: the client secret is shown this once and must not travel
        in a flash cookie."""
        form = await page.form()
        code = str(form.get("tenant") or "")
        if not code:
            raise PageError(422, "tenant: choose a tenant")
        scopes = [s for s in str(form.get("scopes") or "").replace(",", " ").split() if s]
        created = await page.api.post(f"/api/v1/tenants/{code}/clients",
                                      json={"name": str(form.get("name") or ""), "scopes": scopes})
        tenants = await page.api.get("/api/v1/tenants", limit=200)
        people = await page.api.get(f"/api/v1/tenants/{code}/users", limit=50)
        clients = await page.api.get(f"/api/v1/tenants/{code}/clients", limit=50)
        return page.render("operator/users.html", tenants=tenants["items"], code=code, people=people,
                           clients=clients, roles=USER_ROLES, created=created)

    return r
