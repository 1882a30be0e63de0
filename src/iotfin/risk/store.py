"""The stored credit ratings: one row per (enterprise, lender, rating run), the three-dimension
profile as it was given, and the consent reads it drew on (re-checked whenever a lender reads it).

Ratings are append-only: a new rating is a new row; "the profile" is the latest row visible to
the caller. The profile JSON is what `iotfin.risk.scoring` returns for one enterprise (PD, score
and grade, per-dimension sub-scores, reasons in zh-CN and en, the model id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Date, Float, ForeignKey, Index, Integer, String, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.base import utc_now_column as _now
from iotfin.db.types import UTCDateTime


class CreditRating(Base):
    __tablename__ = "credit_ratings"
    __table_args__ = (Index("ix_credit_ratings_enterprise_lender", "enterprise_id", "lender", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), index=True,
                                                  comment="the lender that asked for the rating (NULL: not a tenant here)")
    lender: Mapped[str] = mapped_column(String(64), comment="consent recipient code the features were read for")
    purpose: Mapped[str] = mapped_column(String(32))
    as_of: Mapped[date] = mapped_column(Date, comment="business date (Asia/Shanghai) the features are as of")
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    model_id: Mapped[str] = mapped_column(String(200))
    pd: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(4))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    reads: Mapped[list[Any]] = mapped_column(JSON, comment="[scope, look-back days] consent reads the features drew on")
    features_withheld: Mapped[int] = mapped_column(Integer, default=0)


ratings_t = CreditRating.__table__


def insert_ratings(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    if rows:
        conn.execute(insert(ratings_t), list(rows))
    return len(rows)


def latest(conn: Connection, enterprise_id: int, *, tenant_id: int | None = None, lender: str | None = None) -> dict[str, Any] | None:
    """The newest rating of an enterprise, optionally only those a tenant / lender code asked for."""
    q = select(ratings_t).where(ratings_t.c.enterprise_id == enterprise_id)
    if tenant_id is not None:
        q = q.where(ratings_t.c.tenant_id == tenant_id)
    if lender is not None:
        q = q.where(ratings_t.c.lender == lender)
    row = conn.execute(q.order_by(ratings_t.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    for key in ("profile", "reads"):  # JSON comes back parsed; tolerate text from hand-written rows
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out
