"""Console pages of the risk manager (see iotfin.console.pages).

    /risk/portfolio                   the book: five-tier classification (五级分类), DPD buckets, NPL ratio,
                                      provisions, vintage curves — a bank's risk manager sees its own
                                      tenant's book, the operator the whole book (the API decides which)
    /risk/portfolio/{chart}.json      chart data: tiers (pie), dpd (bar), vintages (lines)
    /risk/strategies                  decision strategy versions, what changed between versions, replay
                                      of a version on past applications, deploy / roll back (operator)
    /risk/models                      the enterprise model's versions, validation figures, PSI drift, and
                                      the bootstrap scorecard's versions (operator)

Every read and action goes through the platform's API as the signed-in user (`page.api`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import HTMLResponse, ORJSONResponse, Response

from iotfin.api.routing import ApiRouter
from iotfin.console.messages import N_
from iotfin.console.web import NavItem, Page, PageError, chart_json, form_for, page_for

NAV: list[NavItem] = [
    NavItem(N_("Risk"), N_("Portfolio"), "/risk/portfolio", "portfolio:read"),
    NavItem(N_("Risk"), N_("Strategies"), "/risk/strategies", "strategies:manage", platform_only=True),
    NavItem(N_("Risk"), N_("Models"), "/risk/models", "strategies:manage", platform_only=True),
]

#: The five tiers of 《商业银行金融资产风险分类办法》, as the lending API names them.
TIER_TEXT = {"normal": N_("Normal"), "special-mention": N_("Special mention"), "substandard": N_("Substandard"),
             "doubtful": N_("Doubtful"), "loss": N_("Loss")}
DPD_TEXT = {"current": N_("Current"), "1-30": N_("1–30 days"), "31-60": N_("31–60 days"), "61-90": N_("61–90 days"),
            "91-180": N_("91–180 days"), "181-360": N_("181–360 days"), "360+": N_("Over 360 days")}
MODEL_STATUS_TEXT = {"champion": N_("Champion"), "former champion": N_("Former champion"),
                     "candidate": N_("Candidate")}
STRATEGY = "default"


def _text(page: Page, table: dict[str, str], value: str) -> str:
    msgid = table.get(value)
    return page._(msgid) if msgid else value


def _tiers(book: dict[str, Any]) -> list[str]:
    """The book's tiers from normal to loss (the API's JSON has sorted keys)."""
    return [t for t in TIER_TEXT if t in book["by_tier"]] + [t for t in book["by_tier"] if t not in TIER_TEXT]


def _dpd(page: Page, buckets: dict[str, int]) -> list[tuple[str, int]]:
    """DPD buckets in their own order (the API's JSON has sorted keys), named in the page's language."""
    known = [k for k in DPD_TEXT if k in buckets] + [k for k in buckets if k not in DPD_TEXT]
    return [(_text(page, DPD_TEXT, k), buckets[k]) for k in known]


# --- what changed between two strategy versions ------------------------------------------------------


def _rows(node: dict[str, Any]) -> list[str]:
    content = node.get("content") or {}
    rules = content.get("rules") or []
    cols = [c.get("id") for c in (content.get("inputs") or []) + (content.get("outputs") or [])]
    return [" | ".join(str(rule.get(c, "")) for c in cols) for rule in rules]


def strategy_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Nodes of a JDM graph added, removed or changed (a decision table's rule rows added and removed),
    matched by node name; the order a reviewer reads a change in."""
    def by_name(graph: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        return {str(n.get("name") or n.get("id")): n for n in (graph or {}).get("nodes", [])}

    before, after = by_name(old), by_name(new)
    out: list[dict[str, Any]] = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None:
            out.append({"node": name, "kind": "added", "type": (b or {}).get("type"), "added": [], "removed": []})
        elif b is None:
            out.append({"node": name, "kind": "removed", "type": a.get("type"), "added": [], "removed": []})
        elif a.get("content") != b.get("content"):
            ra, rb = _rows(a), _rows(b)
            out.append({"node": name, "kind": "changed", "type": b.get("type"),
                        "added": [r for r in rb if r not in ra][:20], "removed": [r for r in ra if r not in rb][:20]})
    return out


def router() -> ApiRouter:
    r = ApiRouter(include_in_schema=False)

    # --- portfolio ------------------------------------------------------------------------------

    @r.get("/risk/portfolio")
    async def portfolio(page: Annotated[Page, Depends(page_for("portfolio:read"))]) -> HTMLResponse:
        book = await page.api.get("/api/v1/lending/portfolio")
        tiers = [{"tier": t, "name": _text(page, TIER_TEXT, t), **book["by_tier"][t]} for t in _tiers(book)]
        scope = page._("Whole book (all lenders)") if page.who.platform else page._(
            "Book of {tenant}", tenant=page.who.tenant_code or "")
        return page.render("risk/portfolio.html", book=book, tiers=tiers, scope=scope,
                           dpd=_dpd(page, book["by_dpd_bucket"]))

    @r.get("/risk/portfolio/tiers.json")
    async def tiers_chart(page: Annotated[Page, Depends(page_for("portfolio:read"))]) -> ORJSONResponse:
        book = await page.api.get("/api/v1/lending/portfolio")
        data = [{"name": _text(page, TIER_TEXT, t), "value": float(Decimal(book["by_tier"][t]["principal"]))}
                for t in _tiers(book)]  # chart geometry only; the table shows the exact amounts
        return chart_json(page, {"unit": "¥", "series": [{"name": page._("Principal outstanding"), "data": data}]})

    @r.get("/risk/portfolio/dpd.json")
    async def dpd_chart(page: Annotated[Page, Depends(page_for("portfolio:read"))]) -> ORJSONResponse:
        book = await page.api.get("/api/v1/lending/portfolio")
        buckets = _dpd(page, book["by_dpd_bucket"])
        return chart_json(page, {"x": "category", "categories": [n for n, _ in buckets], "unit": page._("loans"),
                             "series": [{"name": page._("Active loans"), "data": [[n, v] for n, v in buckets]}]})

    @r.get("/risk/portfolio/vintages.json")
    async def vintage_chart(page: Annotated[Page, Depends(page_for("portfolio:read"))]) -> ORJSONResponse:
        book = await page.api.get("/api/v1/lending/portfolio", vintages="true")
        curves = book.get("vintages") or []
        longest = max((len(c["points"]) for c in curves), default=1)
        series = [{"name": c["cohort"], "type": "line",
                   "data": [[mob, float(Decimal(share)) * 100] for mob, share in c["points"]]} for c in curves]
        return chart_json(page, {"x": "category", "categories": [str(i) for i in range(longest)],
                             "unit": page._("% of principal 30+ days past due"), "series": series})

    # --- strategies -----------------------------------------------------------------------------

    @r.get("/risk/strategies")
    async def strategies(page: Annotated[Page, Depends(page_for("strategies:manage"))],
                         name: Annotated[str, Query(max_length=64)] = STRATEGY,
                         compare: Annotated[int | None, Query(ge=1)] = None) -> HTMLResponse:
        data = await page.api.get(f"/api/v1/decision-strategies/{name}")
        versions = data["versions"]
        deployment = data["deployment"]
        latest = versions[-1]["version"] if versions else None
        shown = compare or latest
        changes: list[dict[str, Any]] | None = None
        if shown is not None:
            new = await page.api.get(f"/api/v1/decision-strategies/{name}/versions/{shown}")
            old = await page.api.get(f"/api/v1/decision-strategies/{name}/versions/{shown - 1}") if shown > 1 else None
            changes = strategy_changes(old, new)
        return page.render("risk/strategies.html", name=name, versions=list(reversed(versions)),
                           deployment=deployment, shown=shown, changes=changes, replay=None)

    @r.post("/risk/strategies/{name}/replay")
    async def replay(name: str, page: Annotated[Page, Depends(form_for("strategies:manage"))]) -> HTMLResponse:
        """What a version would have decided on past applications (the API's replay; nothing changes)."""
        form = await page.form()
        try:
            version = int(str(form.get("version") or ""))
        except ValueError as exc:
            raise PageError(422, "version: a version number") from exc
        content = await page.api.get(f"/api/v1/decision-strategies/{name}/versions/{version}")
        result = await page.api.post(f"/api/v1/decision-strategies/{name}/replay", json=content)
        data = await page.api.get(f"/api/v1/decision-strategies/{name}")
        return page.render("risk/strategies.html", name=name, versions=list(reversed(data["versions"])),
                           deployment=data["deployment"], shown=None, changes=None,
                           replay={"version": version, **result})

    @r.post("/risk/strategies/{name}/deploy")
    async def deploy(name: str, page: Annotated[Page, Depends(form_for("strategies:manage"))]) -> Response:
        form = await page.form()
        try:
            version = int(str(form.get("version") or ""))
        except ValueError as exc:
            raise PageError(422, "version: a version number") from exc
        await page.api.post(f"/api/v1/decision-strategies/{name}/deployments",
                            json={"champion": version, "deployed_by": page.session.username})
        return page.redirect(f"/risk/strategies?name={name}",
                             flash=page._("Version {version} deployed as champion", version=version))

    @r.post("/risk/strategies/{name}/rollback")
    async def rollback(name: str, page: Annotated[Page, Depends(form_for("strategies:manage"))]) -> Response:
        done = await page.api.post(f"/api/v1/decision-strategies/{name}/rollback",
                                   json={"rolled_back_by": page.session.username})
        return page.redirect(f"/risk/strategies?name={name}",
                             flash=page._("Rolled back: version {version} is the champion again",
                                          version=done.get("champion_version")))

    # --- models ---------------------------------------------------------------------------------

    @r.get("/risk/models")
    async def models(page: Annotated[Page, Depends(page_for("strategies:manage"))]) -> HTMLResponse:
        data = await page.api.get("/api/v1/risk/models")
        scorecards = await page.api.get("/api/v1/risk/scorecards")
        items = [{**m, "status_text": _text(page, MODEL_STATUS_TEXT, m.get("status") or "")} for m in data["items"]]
        return page.render("risk/models.html", items=list(reversed(items)),
                           scorecards=list(reversed(scorecards["items"])))

    return r
