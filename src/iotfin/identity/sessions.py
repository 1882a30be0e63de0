"""Console sessions: sign-in with a password, the session behind a cookie, idle timeout, absolute
lifetime, sign-out, and throttling of failed sign-ins.

Server-side on purpose (not a signed cookie holding the user): sign-out and the idle timeout must end
a session even if its cookie is replayed, and every server process must see the same sessions, so
they live in the system of record. The cookie carries a random secret; only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from iotfin.core.errors import TooManyRequests, Unauthorized
from iotfin.core.time import utc_now
from iotfin.identity import store
from iotfin.identity.model import Principal
from iotfin.identity.service import IdentityService

#: A session's last-seen time is written at most this often: a page view is a read, not a write,
#: unless the idle clock would otherwise drift by more than this.
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class ConsoleSession:
    """A live console session: who is signed in, as what they are now, and the form token."""

    id: int
    username: str
    principal: Principal
    csrf_token: str
    created_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ConsoleSessions:
    def __init__(self, engine: Engine, identity: IdentityService, idle: timedelta, lifetime: timedelta,
                 max_failures: int, failure_window: timedelta):
        self.engine = engine
        self.identity = identity
        self.idle = idle
        self.lifetime = lifetime
        self.max_failures = max_failures
        self.failure_window = failure_window

    def sign_in(self, username: str, password: str, address: str | None) -> tuple[str, ConsoleSession]:
        """A new session for a correct password: (cookie secret, session). 401 for a wrong one, 429
        after `max_failures` failures for this username within the window (the attempt is not even
        checked then, so guessing gains nothing)."""
        now = utc_now()
        username = username.strip()
        with self.engine.connect() as conn:
            failures = store.sign_in_failures_since(conn, username, now - self.failure_window)
        if failures >= self.max_failures:
            raise TooManyRequests(f"too many failed sign-ins for {username!r}; try again later",
                                  retry_after=self.failure_window.total_seconds())
        try:
            principal = self.identity.authenticate_user(username, password)
        except Unauthorized:
            with self.engine.begin() as conn:
                store.record_sign_in_failure(conn, username[:100], (address or "")[:64] or None, now)
            raise
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            store.clear_sign_in_failures(conn, username)
            store.insert_session(conn, secret_sha256=_digest(secret), username=username, csrf_token=csrf,
                                 address=(address or "")[:64] or None, created_at=now, last_seen_at=now)
            row = store.open_session(conn, _digest(secret))
        assert row is not None
        return secret, ConsoleSession(row.id, username, principal, csrf, now)

    def resume(self, secret: str | None) -> ConsoleSession | None:
        """The live session behind a cookie secret, as the user is now; None (and the session ended)
        when it is unknown, signed out, idle too long, past its lifetime, or its user deactivated."""
        if not secret or len(secret) > 200:
            return None
        now = utc_now()
        with self.engine.connect() as conn:
            row = store.open_session(conn, _digest(secret))
        if row is None:
            return None
        reason = ("idle" if now - row.last_seen_at > self.idle else
                  "expired" if now - row.created_at > self.lifetime else None)
        principal = None
        if reason is None:
            try:
                principal = self.identity.user_principal(row.username)
            except Unauthorized:
                reason = "deactivated"
        if reason is not None or principal is None:
            with self.engine.begin() as conn:
                store.end_session(conn, row.id, now, reason or "deactivated")
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            with self.engine.begin() as conn:
                store.touch_session(conn, row.id, now)
        return ConsoleSession(row.id, row.username, principal, row.csrf_token, row.created_at)

    def sign_out(self, secret: str | None) -> None:
        if not secret or len(secret) > 200:
            return
        with self.engine.begin() as conn:
            row = store.open_session(conn, _digest(secret))
            if row is not None:
                store.end_session(conn, row.id, utc_now(), "signed_out")
