"""HTTP adapter of the risk engine: `GET /api/v1/enterprises/{id}/credit-profile` — an enterprise's
latest three-dimension rating (sub-scores, combined PD and grade, reasons in zh-CN and en, model,
as-of date), under tenant isolation and, for lenders, a consent re-check logged in the access log;
and the bootstrap scorecard's versions (`/api/v1/risk/scorecards`, the operator's: publish, activate)."""

from __future__ import annotations

import json
import pathlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from iotfin.api.auth import require
from iotfin.api.responses import DecimalJSONResponse
from iotfin.api.routing import ApiRouter
from iotfin.identity.model import Principal


def model_versions(model_dir: pathlib.Path) -> list[dict[str, Any]]:
    """Versions with validation figures and the latest monitoring report of each (files the risk
    context writes beside the model: manifest.json, monitoring/report-*.json)."""
    from iotfin.risk.models import champion  # lazy: the model code loads only when models are listed

    if not model_dir.is_dir():
        return []
    items = []
    for entry in champion.versions(model_dir):
        vdir = model_dir / entry["version"]
        manifest = json.loads((vdir / "manifest.json").read_text())
        reports = sorted((vdir / "monitoring").glob("report-*.json")) if (vdir / "monitoring").is_dir() else []
        latest = json.loads(reports[-1].read_text()) if reports else None
        if latest is not None:
            features = latest.get("psi", {}).get("features", {})
            latest = {"at": latest.get("at"), "rows": latest.get("rows"), "psi_score": latest.get("psi", {}).get("score"),
                      "psi_features": dict(sorted(features.items(), key=lambda kv: -kv[1])[:12]),
                      "alerts": latest.get("alerts", []), "thresholds": latest.get("thresholds", {})}
        items.append({k: v for k, v in entry.items() if k != "report"} | {
            "has_report": entry.get("report") is not None, "champion_kind": manifest.get("champion"),
            "evaluation": manifest.get("evaluation", {}), "monitoring": latest, "monitoring_reports": len(reports)})
    return items


Reader = Annotated[Principal, Depends(require("risk:read"))]
Manager = Annotated[Principal, Depends(require("strategies:manage"))]


class ScorecardIn(BaseModel):
    published_by: str = Field(min_length=1, max_length=100)
    note: str | None = None
    activate: bool = True
    content: dict[str, Any] = Field(description="the scorecard (iotfin-bootstrap-scorecard/1, docs/risk.md)")


class ActivationIn(BaseModel):
    activated_by: str = Field(min_length=1, max_length=100)


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["credit risk"])

    @r.get("/enterprises/{enterprise_id}/credit-profile",
           responses={403: {"description": "the consent the rating rests on no longer holds"},
                      404: {"description": "no rating the caller may see"}})
    def profile(enterprise_id: Annotated[int, Path(gt=0)], who: Reader, request: Request,
                lender: Annotated[str | None, Query(max_length=64, description="only ratings made for this lender code")] = None,
                ) -> dict[str, Any]:
        """The latest credit rating of an enterprise the caller may see: a lender only the ratings it
        asked for (each read re-checks the enterprise's consent and is logged), an enterprise its own,
        the operator all."""
        return request.app.state.workspace.ratings.credit_profile(who, enterprise_id, lender)

    @r.get("/enterprises/{enterprise_id}/credit-ratings",
           responses={403: {"description": "the consent the ratings rest on no longer holds"},
                      404: {"description": "no rating the caller may see"}})
    def rating_history(enterprise_id: Annotated[int, Path(gt=0)], who: Reader, request: Request,
                       lender: Annotated[str | None, Query(max_length=64, description="only ratings made for this lender code")] = None,
                       limit: Annotated[int, Query(ge=1, le=100)] = 24) -> dict[str, Any]:
        """An enterprise's rating history, newest first (grade, PD, score, model, as-of date), under the
        same visibility as the credit profile: a lender its own ratings, after a consent re-check that
        is logged; an enterprise its own; the operator all."""
        return request.app.state.workspace.ratings.rating_history(who, enterprise_id, lender, limit)

    @r.get("/risk/models", response_class=DecimalJSONResponse)
    def models(who: Manager, request: Request) -> DecimalJSONResponse:
        """The enterprise model's versions (champion, former champion, candidate) with their validation
        figures (AUC, KS, sample; the evaluation of every candidate model) and each version's latest
        monitoring report (score and feature PSI against the training sample, alerts), as recorded
        beside the model by `iotfin risk train` / `iotfin risk monitor`."""
        return DecimalJSONResponse({"items": model_versions(request.app.state.workspace.enterprise_model_dir)})

    @r.get("/risk/scorecards", response_class=DecimalJSONResponse)
    def scorecards(who: Manager, request: Request) -> DecimalJSONResponse:
        """The bootstrap scorecard's versions (the shipped one is published on first use) and which is active."""
        svc = request.app.state.workspace.scorecards
        svc.ensure_shipped()
        items = svc.versions()
        return DecimalJSONResponse({"items": items, "active": next((i["version"] for i in items if i["active"]), None)})

    @r.get("/risk/scorecards/versions/{version}", response_class=DecimalJSONResponse)
    def scorecard(version: Annotated[int, Path(ge=1)], who: Manager, request: Request) -> DecimalJSONResponse:
        """One version with its content."""
        svc = request.app.state.workspace.scorecards
        svc.ensure_shipped()
        return DecimalJSONResponse(svc.version(version))

    @r.post("/risk/scorecards/versions", status_code=201, response_class=DecimalJSONResponse,
            responses={422: {"description": "invalid content: the field and feature are named"}})
    def publish(body: ScorecardIn, who: Manager, request: Request) -> DecimalJSONResponse:
        """Validate and publish a new version of the bootstrap scorecard (active at once unless activate=false)."""
        svc = request.app.state.workspace.scorecards
        svc.ensure_shipped()
        return DecimalJSONResponse(svc.publish(body.content, by=body.published_by, note=body.note,
                                               activate=body.activate), status_code=201)

    @r.post("/risk/scorecards/versions/{version}/activation", response_class=DecimalJSONResponse)
    def activate(version: Annotated[int, Path(ge=1)], body: ActivationIn, who: Manager,
                 request: Request) -> DecimalJSONResponse:
        """Put a published version in force."""
        out = request.app.state.workspace.scorecards.activate(version, by=body.activated_by)
        out.pop("content", None)
        return DecimalJSONResponse(out)

    return r
