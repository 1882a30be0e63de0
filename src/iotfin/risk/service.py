"""Credit ratings as a service: record the three-dimension ratings a lender asked for, and read an
enterprise's latest profile under the open API's rules.

Who sees what (docs/api.md#tenant-isolation, docs/risk.md#credit-profiles):
- the operator: every rating (optionally one lender's);
- a lender: only the ratings it asked for, and only while the consent they were computed under
  still holds — every read re-checks the consent reads the rating drew on, and each check is in
  the enterprise's access log (a withdrawn consent makes the profile unreadable: 403);
- an enterprise: its own ratings; anyone else's are 404, like every record that is not the caller's.

Consent is checked, and the device types a rating's reads depend on are read, through the ports of
`iotfin.risk.ports`; the composition root builds one `RatingService` per workspace (`Workspace.ratings`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from iotfin.core.errors import Forbidden, NotFound
from iotfin.core.time import utc_now
from iotfin.identity.model import Principal
from iotfin.risk import store
from iotfin.risk.features.catalogue import ALL_TELEMETRY, CATALOGUE
from iotfin.risk.grades import grade_of
from iotfin.risk.ports import Consent, ConsentRead, FeatureSources

if TYPE_CHECKING:  # the read path stays light: no pandas, DuckDB or LightGBM for a profile read
    import pandas as pd

    from iotfin.risk.models.bundle import RiskModel

PURPOSE = "credit_assessment"  # the purpose features are read for (iotfin.risk.features.engine.DEFAULT_PURPOSE)


class RatingService:
    """Ratings recorded, and profiles read, in one workspace: its database (risk's own tables and the
    identity kernel's tenants), the consent port, and the device rows a rating's reads depend on."""

    def __init__(self, engine: Engine, consent: Consent, sources: FeatureSources):
        self.engine = engine
        self.consent = consent
        self.sources = sources

    def consented_reads(self, enterprise_ids: Iterable[int],
                        withheld: Mapping[int, Iterable[str]]) -> dict[int, list[list[Any]]]:
        """Per enterprise, the [scope, look-back days] reads its features drew on: the scopes of every
        feature not withheld (telemetry scopes only for the device types it has), the widest look-back
        per scope. These are what a later read of the rating must still be allowed."""
        ids = list(enterprise_ids)
        scope_of = self.consent.telemetry_scope_of_device
        types: dict[int, set[str]] = {i: set() for i in ids}
        with self.engine.connect() as conn:
            for eid, t in self.sources.device_types(conn, ids):
                types[eid].add(t)
        out: dict[int, list[list[Any]]] = {}
        for eid in ids:
            held = {scope_of[t] for t in types[eid] if t in scope_of}
            refused = set(withheld.get(eid, ()))
            widest: dict[str, int] = {}
            for f in CATALOGUE:
                if f.name in refused:
                    continue
                for s in f.scopes:
                    for scope in (sorted(held) if s == ALL_TELEMETRY else [s]):
                        if scope.startswith("telemetry:") and scope not in held:
                            continue  # no device of that kind: nothing was read (as the feature engine plans reads)
                        widest[scope] = max(widest.get(scope, 0), f.lookback_days)
            out[eid] = [[s, n] for s, n in sorted(widest.items())]
        return out

    def record_ratings(self, model: RiskModel, lender: str, as_of: date, scored: pd.DataFrame,
                       withheld: Mapping[int, Iterable[str]], purpose: str = PURPOSE,
                       rated_at: datetime | None = None) -> int:
        """Store the ratings of `scored` (a `rate` table with an enterprise_id column) made for `lender`."""
        from iotfin.risk.scoring import (  # lazy: the risk engine brings pandas and LightGBM
            TOP_REASONS,
            profile_of_row,
        )

        if scored.empty:
            return 0
        ids = [int(i) for i in scored["enterprise_id"]]
        reads = self.consented_reads(ids, withheld)
        with self.engine.connect() as conn:
            tenant_id = store.tenant_id_of(conn, lender)
        rated_at = rated_at or utc_now()
        rows = []
        for eid, record in zip(ids, scored.to_dict("records"), strict=True):
            profile = profile_of_row(model, record, TOP_REASONS)
            rows.append({"enterprise_id": eid, "tenant_id": tenant_id, "lender": lender, "purpose": purpose,
                         "as_of": as_of, "rated_at": rated_at, "model_id": model.model_id, "pd": float(profile["pd"]),
                         "score": float(profile["score"]), "grade": profile["grade"], "profile": profile,
                         "reads": reads[eid], "features_withheld": len(list(withheld.get(eid, ())))})
        with self.engine.begin() as conn:
            return store.insert_ratings(conn, rows)

    def record_profiles(self, model_id: str, lender: str, as_of: date,
                        profiles: Iterable[tuple[int, Mapping[str, Any], Iterable[str]]], purpose: str = PURPOSE,
                        rated_at: datetime | None = None) -> int:
        """Store ratings given as structured profiles (the bootstrap scorecard's), one per
        (enterprise id, profile, features withheld)."""
        items = [(int(e), dict(p), list(w)) for e, p, w in profiles]
        if not items:
            return 0
        reads = self.consented_reads([e for e, _, _ in items], {e: w for e, _, w in items})
        with self.engine.connect() as conn:
            tenant_id = store.tenant_id_of(conn, lender)
        rated_at = rated_at or utc_now()
        rows = [{"enterprise_id": e, "tenant_id": tenant_id, "lender": lender, "purpose": purpose, "as_of": as_of,
                 "rated_at": rated_at, "model_id": model_id, "pd": float(p["pd"]), "score": float(p["score"]),
                 "grade": p["grade"], "profile": p, "reads": reads[e], "features_withheld": len(w)}
                for e, p, w in items]
        with self.engine.begin() as conn:
            return store.insert_ratings(conn, rows)

    def credit_profile(self, who: Principal, enterprise_id: int, lender: str | None = None) -> dict[str, Any]:
        """The latest rating of an enterprise that `who` may see (see the module docstring)."""
        missing = NotFound(f"no credit profile of enterprise {enterprise_id}" + (f" for {lender}" if lender else ""))
        with self.engine.connect() as conn:
            if who.platform:
                row = store.latest(conn, enterprise_id, lender=lender)
            elif who.enterprise_id is not None:
                row = store.latest(conn, enterprise_id, lender=lender) if who.enterprise_id == enterprise_id else None
            elif who.tenant_id is not None:
                row = store.latest(conn, enterprise_id, tenant_id=who.tenant_id, lender=lender)
            else:
                row = None
        if row is None:
            raise missing
        consent = None
        if not who.platform and who.enterprise_id is None:
            consent = self._recheck_consent(row)
        return _view(row, consent)

    def rating_history(self, who: Principal, enterprise_id: int, lender: str | None = None,
                       limit: int = 24) -> dict[str, Any]:
        """The ratings of an enterprise that `who` may see, newest first, as grade and PD over time. A
        lender's read re-checks consent on its newest rating (as `credit_profile` does) and is logged:
        the history says no more than the profile, but not after the enterprise withdrew."""
        with self.engine.connect() as conn:
            if who.platform or who.enterprise_id == enterprise_id:
                rows = store.history(conn, enterprise_id, lender=lender, limit=limit)
            elif who.enterprise_id is None and who.tenant_id is not None:
                rows = store.history(conn, enterprise_id, tenant_id=who.tenant_id, lender=lender, limit=limit)
            else:
                rows = []
            newest = store.latest(conn, enterprise_id, tenant_id=who.tenant_id, lender=lender) \
                if rows and not who.platform and who.enterprise_id is None else None
        if not rows:
            raise NotFound(f"no credit rating of enterprise {enterprise_id}" + (f" for {lender}" if lender else ""))
        if newest is not None:
            self._recheck_consent(newest)
        items = []
        for row in rows:
            grade = grade_of(float(row["pd"]))
            items.append({"rating_id": row["id"], "lender": row["lender"], "as_of": row["as_of"].isoformat(),
                          "rated_at": row["rated_at"].isoformat(), "model": row["model_id"], "pd": row["pd"],
                          "score": row["score"], "grade": row["grade"], "grade_en": grade.en, "grade_zh": grade.zh})
        return {"enterprise_id": enterprise_id, "items": items}

    def operator_profile(self, enterprise_id: int, lender: str | None = None, as_lender: bool = False) -> dict[str, Any]:
        """For the command line: the latest rating (of one lender's, if named). With `as_lender`, read
        as that lender would — the consent re-check runs and is logged."""
        with self.engine.connect() as conn:
            row = store.latest(conn, enterprise_id, lender=lender)
        if row is None:
            raise NotFound(f"no credit profile of enterprise {enterprise_id}" + (f" for {lender}" if lender else ""))
        return _view(row, self._recheck_consent(row) if as_lender else None)

    def _recheck_consent(self, row: Mapping[str, Any]) -> dict[str, Any]:
        as_of: date = row["as_of"]
        reads = [ConsentRead(scope, row["purpose"], as_of - timedelta(days=int(days) - 1), as_of)
                 for scope, days in row["reads"]]
        decisions = self.consent.check_many(row["lender"], [row["enterprise_id"]], {row["enterprise_id"]: reads},
                                            detail=f"credit profile {row['id']} as of {as_of.isoformat()}")
        refused = [(r.scope, d) for r, d in zip(reads, decisions[row["enterprise_id"]], strict=True) if not d.allowed]
        if refused:
            scope, decision = refused[0]
            raise Forbidden(f"the credit profile rests on {scope}, which {row['lender']} may no longer read: "
                            f"{decision.en} / 信用画像所依据的数据（{scope}）已不可读取：{decision.zh}")
        return {"checked": len(reads), "purpose": row["purpose"], "allowed": True}


def _view(row: Mapping[str, Any], consent: dict[str, Any] | None) -> dict[str, Any]:
    profile = dict(row["profile"])
    grade = grade_of(float(row["pd"]))
    out = {"enterprise_id": row["enterprise_id"], "lender": row["lender"], "rating_id": row["id"],
           "as_of": row["as_of"].isoformat(), "rated_at": row["rated_at"].isoformat(), "model": row["model_id"],
           "pd": profile["pd"], "score": profile["score"], "grade": profile["grade"],
           "grade_en": grade.en, "grade_zh": grade.zh}
    for key in ("pd_scorecard", "pd_challenger"):
        if key in profile:
            out[key] = profile[key]
    out["dimensions"] = profile.get("dimensions", {})
    out["reasons"] = profile.get("reasons", [])
    out["features_withheld"] = row["features_withheld"]
    if consent is not None:
        out["consent"] = consent
    return out
