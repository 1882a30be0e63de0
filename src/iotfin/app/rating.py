"""Rating on a live platform, across contexts (so here, at the composition root): training the
enterprise model from the platform's own book, and the scheduled re-rating.

`train_enterprise(ws)`: one training row per loan — the enterprise's features as of the loan's
start (booking) date, point in time, within the consent of the lender that booked it (loans booked
by the operator: the platform's own features, unscoped) — labelled bad when the loan reached 90 days
past due or was written off within `window_days` of its start. Loans whose window has not elapsed
and that are not bad yet are left out (their outcome is unknown). With `outcomes` (a CSV or Parquet
file of enterprise_id, as_of, default) the rows are those instead. The model and its validation
report are written as a new version (`iotfin.risk.models.train`), anchored in the ledger, and NOT
made champion: `Workspace.promote_model` is that explicit step.

`rerate(ws)`: every enterprise with an active loan (for the lender that booked it) or an open
credit-assessment consent (for its recipient) is rated again with the risk engine in force (the
champion model, else the bootstrap scorecard) and the rating stored (`credit_ratings`).
`RerateScheduler` runs it daily at the `rerate_at` local time (Asia/Shanghai) inside `iotfin serve`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from iotfin.consent.store import open_grant_pairs
from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.time import BUSINESS_TZ, business_date, utc_now
from iotfin.lending.store import book_for_rating

log = logging.getLogger(__name__)

DPD_BAD = 90
MIN_BADS = 5
MIN_PRESENT = 0.1
RERATE_PURPOSES = ("credit_assessment",)


def label_book(loans: Sequence[tuple[Any, ...]], today: date, window_days: int) -> list[tuple[int, date, int, str | None]]:
    """(enterprise id, as-of date, bad 0/1, lender) per loan whose outcome is known by `today`: bad
    when it reached 90 DPD or was written off within `window_days` of its start. Pure."""
    out = []
    for _loan_id, eid, start, _status, overdue_since, written_off_on, lender in loans:
        end = start + timedelta(days=window_days)
        seen_until = min(end, today)
        dpd90 = overdue_since is not None and overdue_since + timedelta(days=DPD_BAD) <= seen_until
        written = written_off_on is not None and written_off_on <= seen_until
        bad = int(dpd90 or written)
        if bad or end <= today:
            out.append((int(eid), start, bad, lender))
    return out


def _outcomes_file(path: Path) -> list[tuple[int, date, int, str | None]]:
    from iotfin.risk.data import binary_target, read_table  # lazy: pandas loads only when this runs

    frame = read_table(Path(path))
    missing = [c for c in ("enterprise_id", "as_of", "default") if c not in frame.columns]
    if missing:
        raise ValidationError(f"--outcomes {path}: missing column(s) {', '.join(missing)} "
                              "(expected enterprise_id, as_of, default)")
    bad = binary_target(frame["default"], None)
    rows = []
    for i, (eid, as_of) in enumerate(zip(frame["enterprise_id"], frame["as_of"], strict=True)):
        try:
            rows.append((int(eid), date.fromisoformat(str(as_of)[:10]), int(bad[i]), None))
        except ValueError:
            raise ValidationError(f"--outcomes {path}: row {i + 2}: as_of {as_of!r} is not a date (YYYY-MM-DD)") from None
    return rows


def training_frame(ws: Any, rows: Sequence[tuple[int, date, int, str | None]]) -> Any:
    """The features of each row's enterprise as of its date (consent-scoped to its lender, if any)."""
    import pandas as pd  # lazy: pandas loads only when this runs

    from iotfin.risk.features.catalogue import CATALOGUE  # lazy: as the imports above
    from iotfin.risk.features.engine import compute_features  # lazy: DuckDB and pyarrow

    groups: dict[tuple[date, str | None], dict[int, int]] = {}
    for eid, as_of, bad, lender in rows:
        groups.setdefault((as_of, lender), {})[eid] = max(bad, groups.get((as_of, lender), {}).get(eid, 0))
    parts = []
    names = [f.name for f in CATALOGUE]
    for (as_of, lender), labels in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        ids = sorted(labels)
        if lender is None:
            table, _ = ws.features.unscoped(as_of, ids)
        else:
            table = compute_features(ws.features, as_of, lender, ids).drop_columns(["withheld"])
        table = table.select(["enterprise_id", *names])
        frame = table.to_pandas()
        frame["as_of"] = pd.Timestamp(as_of)
        frame["default"] = [labels[int(e)] for e in frame["enterprise_id"]]
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=["enterprise_id", *names, "as_of", "default"])
    return pd.concat(parts, ignore_index=True)


def train_enterprise(ws: Any, *, outcomes: Path | None = None, window_days: int = 365,
                     min_bads: int = MIN_BADS, today: date | None = None) -> dict[str, Any]:
    """Train the enterprise model from the platform's own history (see the module docstring); the new
    version is a candidate, not the champion."""
    from iotfin.risk.assess import save_revenue_per_kwh  # lazy: the risk engine brings pandas and LightGBM
    from iotfin.risk.features.catalogue import CATALOGUE  # lazy: as above
    from iotfin.risk.models.train import train_enterprise_model  # lazy: as above

    if window_days < 30:
        raise ValidationError("--window-days: at least 30 days")
    today = today or business_date(utc_now())
    if outcomes is not None:
        rows, source = _outcomes_file(outcomes), f"outcomes file {outcomes}"
    else:
        with ws.engine.connect() as conn:
            loans = book_for_rating(conn)
        rows, source = label_book(loans, today, window_days), f"the platform's book ({len(loans)} loans)"
    bads = sum(r[2] for r in rows)
    if bads < min_bads:
        raise ValidationError(f"{source}: {len(rows)} outcomes known, {bads} bad (90+ days past due or written off "
                              f"within {window_days} days); at least {min_bads} bad ones are needed to train — keep "
                              "rating with the bootstrap scorecard, or import outcomes with --outcomes")
    frame = training_frame(ws, rows)
    present = [f.name for f in CATALOGUE
               if len(frame) - int(frame[f.name].isna().sum()) >= MIN_PRESENT * len(frame)]
    dims = {f.name: f.dimension for f in CATALOGUE if f.name in present}
    labels = {f.name: {"zh": f.zh, "en": f.en} for f in CATALOGUE}
    date_col = "as_of" if frame["as_of"].nunique() >= 5 else None
    trained = train_enterprise_model(frame.drop(columns=["enterprise_id"]), "default", dims, ws.enterprise_model_dir,
                                     labels=labels, date_col=date_col, workspace=ws)
    save_revenue_per_kwh(ws.enterprise_model_dir, _revenue_per_kwh(frame))
    version = Path(trained["path"]).name
    return {"version": version, "model": trained["model"], "status": "candidate", "source": source,
            "rows": len(frame), "bads": bads, "window_days": window_days, "report": str(Path(trained["path"]) / "report.html"),
            "evaluation": trained["evaluation"], "selected": trained["selected"], "anchor": trained.get("anchor"),
            "next": f"iotfin risk promote {version} --by <name>  (makes it the champion the decisions use)"}


def _revenue_per_kwh(frame: Any) -> dict[str, float]:
    """Sales per kWh by sector ("" = all), the median over the training rows with both."""
    import pandas as pd  # lazy: pandas loads only when this runs

    sales = pd.to_numeric(frame["t_sales_90d"], errors="coerce").astype(float) / 90
    kwh = pd.to_numeric(frame["a_energy_kwh_30d"], errors="coerce").astype(float) / 30
    ok = (sales > 0) & (kwh > 0)
    if not ok.any():
        return {}
    ratio = sales[ok] / kwh[ok]
    return {"": float(ratio.median())} | {str(k): float(v) for k, v in ratio.groupby(frame["e_sector"][ok]).median().items()}


# --- re-rating ---------------------------------------------------------------------------------


def rerate_population(ws: Any, now: datetime | None = None) -> dict[str, list[int]]:
    """lender -> enterprises to re-rate: active loans (for the lender that booked them) and open
    credit-assessment consents (for their recipient)."""
    now = now or utc_now()
    pairs: set[tuple[str, int]] = set()
    with ws.engine.connect() as conn:
        for _id, eid, _start, status, _od, _wo, lender in book_for_rating(conn):
            if status == "active" and lender:
                pairs.add((lender, int(eid)))
        for eid, recipient in open_grant_pairs(conn, now, RERATE_PURPOSES):
            pairs.add((recipient, eid))
    out: dict[str, list[int]] = {}
    for lender, eid in sorted(pairs):
        out.setdefault(lender, []).append(eid)
    return out


def rerate(ws: Any, on: date | None = None) -> dict[str, Any]:
    """Rate the population again with the engine in force and store the ratings."""
    from iotfin.app.assessment import BootstrapAssessor  # lazy: the risk engine brings pandas and LightGBM
    from iotfin.risk.bootstrap import profile  # lazy: as above

    on = on or business_date(utc_now())
    started = utc_now()
    population = rerate_population(ws)
    assessor = ws.risk_assessor()
    stored = failed = 0
    grades: dict[str, int] = {}
    for lender, ids in population.items():
        if isinstance(assessor, BootstrapAssessor):
            profiles = []
            for eid in ids:
                try:
                    row, got = assessor.rate(eid, lender, on)
                except (NotFound, ValidationError) as exc:
                    failed += 1
                    log.warning("re-rating enterprise %s for %s: %s", eid, lender, exc)
                    continue
                profiles.append((eid, profile(assessor.model_id, row), sorted(got["withheld"])))
                grades[row["grade"]] = grades.get(row["grade"], 0) + 1
            stored += ws.ratings.record_profiles(assessor.model_id, lender, on, profiles, purpose="credit_assessment")
        else:
            stored += _rerate_with_model(ws, assessor.model, lender, ids, on, grades)
    model = assessor.model_id if isinstance(assessor, BootstrapAssessor) else assessor.model.model_id
    return {"as_of": on.isoformat(), "model": model, "lenders": len(population),
            "enterprises": sum(len(v) for v in population.values()), "ratings_stored": stored, "failed": failed,
            "grades": dict(sorted(grades.items())), "started_at": started.isoformat(timespec="seconds"),
            "finished_at": utc_now().isoformat(timespec="seconds")}


def _rerate_with_model(ws: Any, model: Any, lender: str, ids: list[int], on: date, grades: dict[str, int]) -> int:
    from iotfin.risk import rate  # lazy: the risk engine brings pandas and LightGBM
    from iotfin.risk.features.engine import compute_features  # lazy: DuckDB and pyarrow

    table = compute_features(ws.features, on, lender, ids)
    if table.num_rows == 0:
        return 0
    withheld = [list(w or ()) for w in table["withheld"].to_pylist()]
    scored = rate(model, table.drop_columns(["withheld"]).to_pandas(), keep=["enterprise_id"])
    for g in scored["grade"]:
        grades[str(g)] = grades.get(str(g), 0) + 1
    return ws.ratings.record_ratings(model, lender, on, scored,
                                     dict(zip(table["enterprise_id"].to_pylist(), withheld, strict=True)))


def next_run(now: datetime, at: str) -> datetime:
    """The next `at` (HH:MM, Asia/Shanghai) strictly after `now`, as an aware datetime."""
    hh, mm = (int(x) for x in at.split(":"))
    local = now.astimezone(BUSINESS_TZ)
    candidate = datetime.combine(local.date(), time(hh, mm), tzinfo=BUSINESS_TZ)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


class RerateScheduler:
    """Runs `rerate` every day at `rerate_at` (Asia/Shanghai) until `stop` is set; a failed run is
    logged and retried the next day. `last` holds the last run's summary (or error)."""

    def __init__(self, ws: Any, at: str):
        self.ws = ws
        self.at = at
        self.last: dict[str, Any] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = (next_run(utc_now(), self.at) - utc_now()).total_seconds()
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 1.0))
                return  # stopped
            except TimeoutError:
                pass
            try:
                self.last = await asyncio.to_thread(rerate, self.ws)
                log.info("re-rating: %s", self.last)
            except Exception as exc:  # noqa: BLE001 - a failed night must not stop the server
                self.last = {"status": "failed", "error": str(exc), "at": utc_now().isoformat(timespec="seconds")}
                log.exception("re-rating failed")
