"""Queries of the stored credit ratings (the table is in `iotfin.risk.tables`): one row per
(enterprise, lender, rating run), the three-dimension profile as it was given, and the consent
reads it drew on (re-checked whenever a lender reads it).

Ratings are append-only: a new rating is a new row; "the profile" is the latest row visible to
the caller. The profile JSON is what `iotfin.risk.scoring` returns for one enterprise (PD, score
and grade, per-dimension sub-scores, reasons in zh-CN and en, the model id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, insert, select, update

from iotfin.identity.tables import Tenant
from iotfin.risk.tables import CreditRating, RiskScorecard

ratings_t = CreditRating.__table__
scorecards_t = RiskScorecard.__table__


def tenant_id_of(conn: Connection, code: str) -> int | None:
    """The id of the tenant with this code (None: no such tenant; the rating then names the lender only)."""
    return conn.execute(select(Tenant.id).where(Tenant.code == code)).scalar()


def insert_ratings(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    if rows:
        conn.execute(insert(ratings_t), list(rows))
    return len(rows)


@lru_cache(maxsize=4)
def _latest(by_tenant: bool, by_lender: bool) -> Select:
    """The newest-rating query, built once per filter shape (a voucher financing reads it in its transaction)."""
    q = select(ratings_t).where(ratings_t.c.enterprise_id == bindparam("eid"))
    if by_tenant:
        q = q.where(ratings_t.c.tenant_id == bindparam("tenant_id"))
    if by_lender:
        q = q.where(ratings_t.c.lender == bindparam("lender"))
    return q.order_by(ratings_t.c.id.desc()).limit(1)


def latest(conn: Connection, enterprise_id: int, *, tenant_id: int | None = None, lender: str | None = None) -> dict[str, Any] | None:
    """The newest rating of an enterprise, optionally only those a tenant / lender code asked for."""
    q = _latest(tenant_id is not None, lender is not None)
    row = conn.execute(q, {"eid": enterprise_id, "tenant_id": tenant_id, "lender": lender}).mappings().first()
    if row is None:
        return None
    out = dict(row)
    for key in ("profile", "reads"):  # JSON comes back parsed; tolerate text from hand-written rows
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out


def history(conn: Connection, enterprise_id: int, *, tenant_id: int | None = None, lender: str | None = None,
            limit: int = 24) -> list[dict[str, Any]]:
    """An enterprise's ratings, newest first (the summary columns only: the console's rating history)."""
    q = select(ratings_t.c.id, ratings_t.c.lender, ratings_t.c.as_of, ratings_t.c.rated_at, ratings_t.c.model_id,
               ratings_t.c.pd, ratings_t.c.score, ratings_t.c.grade).where(ratings_t.c.enterprise_id == enterprise_id)
    if tenant_id is not None:
        q = q.where(ratings_t.c.tenant_id == tenant_id)
    if lender is not None:
        q = q.where(ratings_t.c.lender == lender)
    return [dict(r) for r in conn.execute(q.order_by(ratings_t.c.id.desc()).limit(limit)).mappings()]


# --- scorecard versions (iotfin.risk.scorecards) ---------------------------------------------------

def latest_scorecard_version(conn: Connection, name: str) -> int | None:
    return conn.execute(select(func.max(scorecards_t.c.version)).where(scorecards_t.c.name == name)).scalar()


def insert_scorecard(conn: Connection, **values: Any) -> None:
    conn.execute(insert(scorecards_t).values(**values))


def activate_scorecard(conn: Connection, name: str, version: int) -> int:
    """Make `version` the one in force: every other version of the name inactive. Rows changed."""
    conn.execute(update(scorecards_t).where(scorecards_t.c.name == name, scorecards_t.c.version != version,
                                            scorecards_t.c.active.is_(True)).values(active=False))
    return conn.execute(update(scorecards_t).where(scorecards_t.c.name == name, scorecards_t.c.version == version)
                        .values(active=True)).rowcount


def active_scorecard(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(scorecards_t).where(scorecards_t.c.name == name, scorecards_t.c.active.is_(True))
                       .order_by(scorecards_t.c.version.desc()).limit(1)).mappings().first()
    return _scorecard(row)


def scorecard(conn: Connection, name: str, version: int) -> dict[str, Any] | None:
    row = conn.execute(select(scorecards_t).where(scorecards_t.c.name == name, scorecards_t.c.version == version)
                       ).mappings().first()
    return _scorecard(row)


def scorecard_versions(conn: Connection, name: str) -> list[dict[str, Any]]:
    cols = [c for c in scorecards_t.c if c.name != "content"]
    rows = conn.execute(select(*cols).where(scorecards_t.c.name == name).order_by(scorecards_t.c.version)).mappings()
    return [dict(r) for r in rows]


def _scorecard(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    if isinstance(out["content"], str):
        out["content"] = json.loads(out["content"])
    return out
