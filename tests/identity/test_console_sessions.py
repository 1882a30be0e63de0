"""Console sessions on both backends: sign-in, idle timeout, absolute lifetime, deactivation,
sign-out, and the failed sign-in throttle shared by every server process (it lives in the database)."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from iotfin.app.workspace import Workspace
from iotfin.core.errors import TooManyRequests, Unauthorized
from iotfin.identity.sessions import ConsoleSessions
from iotfin.identity.tables import ConsoleSession, ConsoleUser

PASSWORD = "console-pass-1234"


@pytest.fixture
def sessions(workspace: Workspace) -> ConsoleSessions:
    workspace.identity.create_user("ops", PASSWORD, ["platform_admin"])
    return ConsoleSessions(workspace.engine, workspace.identity, idle=timedelta(minutes=30),
                           lifetime=timedelta(hours=12), max_failures=3, failure_window=timedelta(minutes=15))


def test_sign_in_resume_and_sign_out(sessions: ConsoleSessions) -> None:
    secret, session = sessions.sign_in("ops", PASSWORD, "127.0.0.1")
    resumed = sessions.resume(secret)
    assert resumed is not None and resumed.id == session.id and resumed.principal.platform
    assert resumed.csrf_token == session.csrf_token and len(session.csrf_token) >= 40
    with sessions.engine.connect() as conn:
        stored = conn.execute(select(ConsoleSession.secret_sha256)).scalar_one()
    assert stored == hashlib.sha256(secret.encode()).hexdigest() and secret not in stored  # only the digest
    sessions.sign_out(secret)
    assert sessions.resume(secret) is None
    assert sessions.resume("") is None and sessions.resume("x" * 500) is None and sessions.resume(None) is None


def test_idle_timeout_and_lifetime_end_the_session(sessions: ConsoleSessions) -> None:
    secret, session = sessions.sign_in("ops", PASSWORD, None)
    with sessions.engine.begin() as conn:  # idle for 31 minutes
        last = conn.execute(select(ConsoleSession.last_seen_at)).scalar_one()
        conn.execute(update(ConsoleSession).values(last_seen_at=last - timedelta(minutes=31)))
    assert sessions.resume(secret) is None
    with sessions.engine.connect() as conn:
        assert conn.execute(select(ConsoleSession.ended_reason)).scalar_one() == "idle"
    secret, _ = sessions.sign_in("ops", PASSWORD, None)
    with sessions.engine.begin() as conn:  # active all along, but signed in 13 hours ago
        conn.execute(update(ConsoleSession).where(ConsoleSession.ended_at.is_(None))
                     .values(created_at=last - timedelta(hours=13)))
    assert sessions.resume(secret) is None


def test_a_deactivated_user_loses_the_session_at_once(sessions: ConsoleSessions) -> None:
    secret, _ = sessions.sign_in("ops", PASSWORD, None)
    with sessions.engine.begin() as conn:
        conn.execute(update(ConsoleUser).where(ConsoleUser.username == "ops").values(active=False))
    assert sessions.resume(secret) is None


def test_failed_sign_ins_are_throttled_per_username(sessions: ConsoleSessions, workspace: Workspace) -> None:
    workspace.identity.create_user("other", PASSWORD, ["platform_admin"])
    for _ in range(3):
        with pytest.raises(Unauthorized):
            sessions.sign_in("ops", "wrong-password-99", "10.0.0.1")
    started = time.perf_counter()
    with pytest.raises(TooManyRequests):  # refused before the (0.1 s) password check
        sessions.sign_in("ops", PASSWORD, "10.0.0.1")
    assert time.perf_counter() - started < 0.05
    sessions.sign_in("other", PASSWORD, "10.0.0.1")  # another user is not locked out
    # a success clears the count: the window does not keep punishing a user who got it right
    fresh = ConsoleSessions(sessions.engine, sessions.identity, idle=sessions.idle, lifetime=sessions.lifetime,
                            max_failures=3, failure_window=timedelta(seconds=0))
    fresh.sign_in("ops", PASSWORD, None)
    sessions.sign_in("ops", PASSWORD, None)
