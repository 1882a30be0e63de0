"""Consent use cases: grant, withdraw, reconfirm, list; check a read and log it; list the access log.

Grants are read from the system of record on every check (one indexed query), so a withdrawal by
any process takes effect on the next request; grants are anchored in the ledger (record type
`consent_grant`) when made and again at every change, so the log holds their whole history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from iotfin.consent import store
from iotfin.consent.model import (
    PURPOSES,
    REASONS,
    SCOPES,
    Access,
    Decision,
    Grant,
    GrantRequest,
    can_reconfirm,
    can_withdraw,
    check,
    validate_purpose,
    validate_recipient,
    validate_scope,
)
from iotfin.consent.ports import Events
from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.time import utc_now
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams

Anchor = Callable[[Sequence[str]], Any]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One (scope, purpose, data range) a recipient wants to read of an enterprise."""

    scope: str
    purpose: str
    start: date
    end: date


class ConsentService:
    def __init__(self, engine: Engine, anchor: Anchor | None = None, clock: Callable[[], datetime] = utc_now,
                 events: Events | None = None):
        self.engine = engine
        self.events = events  # webhooks consent.granted / consent.withdrawn (docs/api.md)
        self.anchor = anchor
        self.clock = clock
        self.log = store.AccessLogWriter(engine)

    # --- grants ---------------------------------------------------------------------------------

    def grant(self, request: GrantRequest, now: datetime | None = None) -> Grant:
        return self.grant_many([request], now)[0]

    def grant_many(self, requests: Sequence[GrantRequest], now: datetime | None = None) -> list[Grant]:
        """Record grants (all or none) and anchor them in the ledger in one batch."""
        now = now or self.clock()
        rows = [r.validate(now) for r in requests]
        with write_transaction(self.engine) as conn:
            wanted = {r["enterprise_id"] for r in rows}
            known = store.known_enterprises(conn, wanted)
            if wanted - known:
                raise NotFound(f"no enterprise {min(wanted - known)}")
            ids = store.insert_grants(conn, rows)
            for grant_id, r in zip(ids, rows, strict=True):
                self._emit(conn, "consent.granted", grant_id, r["enterprise_id"], r["recipient"], r["purpose"],
                           r["scopes"], expires_at=r["expires_at"].isoformat())
        self._anchor(ids)
        return [Grant(id=i, **{k: (frozenset(v) if k in ("scopes", "onward_recipients") else v) for k, v in r.items()})
                for i, r in zip(ids, rows, strict=True)]

    def _emit(self, conn: Connection, event_type: str, grant_id: int, enterprise_id: int, recipient: str,
              purpose: str, scopes: Iterable[str], **extra: Any) -> None:
        """A consent event to the recipient (a tenant, by its code) and the enterprise."""
        if self.events is not None:
            self.events(conn, event_type, {"grant_id": grant_id, "enterprise_id": enterprise_id, "recipient": recipient,
                                           "purpose": purpose, "scopes": sorted(scopes), **extra},
                        enterprise_id=enterprise_id)

    def _load(self, grant_id: int, enterprise_id: int | None) -> Grant:
        with self.engine.connect() as conn:
            return _owned(store.get_grant(conn, grant_id), grant_id, enterprise_id)

    def withdraw(self, grant_id: int, enterprise_id: int | None = None, now: datetime | None = None) -> Grant:
        """Withdraw a grant; every check from `now` on is refused. Withdrawing twice is an error."""
        now = now or self.clock()
        with write_transaction(self.engine) as conn:
            grant = _owned(store.get_grant(conn, grant_id, for_update=True), grant_id, enterprise_id)
            can_withdraw(grant, now)
            store.set_withdrawn(conn, grant_id, now)
            self._emit(conn, "consent.withdrawn", grant_id, grant.enterprise_id, grant.recipient, grant.purpose,
                       grant.scopes, withdrawn_at=now.isoformat())
        self._anchor([grant_id])
        return self._load(grant_id, None)

    def reconfirm(self, grant_id: int, enterprise_id: int | None = None, now: datetime | None = None) -> Grant:
        """The enterprise confirms the grant again; the next reconfirmation is due `reconfirm_days` later."""
        now = now or self.clock()
        with write_transaction(self.engine) as conn:
            grant = _owned(store.get_grant(conn, grant_id, for_update=True), grant_id, enterprise_id)
            can_reconfirm(grant, now)
            store.set_confirmed(conn, grant_id, now)
        self._anchor([grant_id])
        return self._load(grant_id, None)

    def get(self, grant_id: int) -> Grant:
        return self._load(grant_id, None)

    def grants(self, enterprise_id: int, recipient: str | None = None) -> list[Grant]:
        with self.engine.connect() as conn:
            return store.grants_for(conn, enterprise_id, recipient)

    def _anchor(self, ids: Sequence[int]) -> None:
        if self.anchor is not None and ids:
            self.anchor([str(i) for i in ids])

    # --- checks ---------------------------------------------------------------------------------

    def check(self, recipient: str, enterprise_id: int, scope: str, purpose: str, data_range: tuple[date, date],
              now: datetime | None = None, onward_to: str | None = None, detail: str | None = None,
              conn: Connection | None = None, log: bool = True) -> Decision:
        """Decide one read and log it (allowed or not). Given `conn`, the grants are read in that
        transaction and an allowed read's access row is written in it (a use case commits the read with
        what it writes, or neither); a refusal is logged through the batching writer whatever becomes
        of the transaction, as every other row is. With `log=False` nothing is logged: a pre-check,
        followed by a logged check."""
        now = now or self.clock()
        validate_recipient(recipient)
        if conn is None:
            with self.engine.connect() as reader:
                grants = store.grants_for(reader, enterprise_id, recipient)
        else:
            grants = store.grants_for(conn, enterprise_id, recipient)
        decision = check(grants, recipient, enterprise_id, scope, purpose, data_range, now, onward_to)
        if log:
            access = [Access(enterprise_id, recipient, scope, purpose, data_range[0], data_range[1], now,
                             decision.allowed, decision.reason, decision.grant_id, onward_to, detail)]
            if conn is None or not decision.allowed:
                self.log.append(access)
            else:
                store.insert_access(conn, access)
        return decision

    def check_many(self, recipient: str, enterprise_ids: Iterable[int],
                   reads: Sequence[ReadRequest] | Mapping[int, Sequence[ReadRequest]],
                   now: datetime | None = None, detail: str | None = None) -> dict[int, list[Decision]]:
        """Decide reads for many enterprises (the same reads for all, or a mapping enterprise ->
        reads) with one query for the grants; every decision is logged. Returns, per enterprise,
        the decisions in the order of its reads."""
        now = now or self.clock()
        validate_recipient(recipient)
        ids = list(enterprise_ids)
        plan = reads if isinstance(reads, Mapping) else {eid: reads for eid in ids}
        for eid in ids:
            for r in plan.get(eid, ()):
                validate_scope(r.scope)
                validate_purpose(r.purpose)
        by_enterprise: dict[int, list[Grant]] = {i: [] for i in ids}
        with self.engine.connect() as conn:
            grants = store.grants_of_recipient(conn, recipient, ids if len(ids) < 1000 else None)
        for g in grants:
            if g.enterprise_id in by_enterprise:
                by_enterprise[g.enterprise_id].append(g)
        out: dict[int, list[Decision]] = {}
        accesses: list[Access] = []
        for eid in ids:
            mine = plan.get(eid, ())
            decisions = [check(by_enterprise[eid], recipient, eid, r.scope, r.purpose, (r.start, r.end), now)
                         for r in mine]
            out[eid] = decisions
            accesses.extend(Access(eid, recipient, r.scope, r.purpose, r.start, r.end, now, d.allowed, d.reason,
                                   d.grant_id, None, detail) for r, d in zip(mine, decisions, strict=True))
        self.log.append(accesses)
        return out

    def access_log(self, enterprise_id: int, limit: int = 100, after_id: int = 0,
                   recipient: str | None = None) -> list[dict[str, Any]]:
        """`limit` rows of the enterprise's access log after the row `after_id`, oldest first."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be 1-1000")
        return self.access_log_page(enterprise_id, PageParams(limit, after_id or None), recipient)[0]

    def access_log_page(self, enterprise_id: int, page: PageParams,
                        recipient: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the enterprise's access log (oldest first) and the next cursor; reads still
        in the writer's batch are flushed first, so a read made a moment ago is listed."""
        self.log.flush()
        with self.engine.connect() as conn:
            rows, cursor = store.list_access(conn, enterprise_id, page, recipient)
        for row in rows:
            row["reason_zh"], row["reason_en"] = REASONS[row["reason"]]
        return rows, cursor

    def close(self) -> None:
        self.log.close()


def grant_json(grant: Grant, now: datetime) -> dict[str, Any]:
    return {
        "id": grant.id, "enterprise_id": grant.enterprise_id, "recipient": grant.recipient,
        "purpose": grant.purpose, "purpose_zh": PURPOSES[grant.purpose][0], "purpose_en": PURPOSES[grant.purpose][1],
        "scopes": sorted(grant.scopes),
        "scope_labels": {s: {"zh": SCOPES[s][0], "en": SCOPES[s][1]} for s in sorted(grant.scopes)},
        "window_start": grant.window_start, "window_end": grant.window_end,
        "granted_at": grant.granted_at, "expires_at": grant.expires_at, "confirmed_at": grant.confirmed_at,
        "reconfirm_days": grant.reconfirm_days, "reconfirm_due": grant.reconfirm_due(),
        "onward_recipients": sorted(grant.onward_recipients), "withdrawn_at": grant.withdrawn_at,
        "status": grant.status(now),
    }


def _owned(grant: Grant | None, grant_id: int, enterprise_id: int | None) -> Grant:
    """The grant, if it exists and (when an enterprise is named) is that enterprise's; else NotFound."""
    if grant is None or (enterprise_id is not None and grant.enterprise_id != enterprise_id):
        raise NotFound(f"no consent {grant_id}" + (f" of enterprise {enterprise_id}" if enterprise_id else ""))
    return grant
