"""The credit-application use case commits once or not at all.

A lender's application writes five things: the consent check's access-log row, the application, its
decision, the decision's ledger anchor and the lender's ownership of the application. A process
killed (SIGKILL, no clean-up) after all of them were written but before the commit leaves none of
them; a refusal inside the transaction leaves none either, and its own access-log row; the same run
without the crash leaves all five. On both backends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from iotfin.app.workspace import Workspace
from iotfin.consent.model import GrantRequest
from iotfin.consent.store import access_t, grants_t
from iotfin.decision.tables import CreditApplication, CreditDecision
from iotfin.identity.tables import RecordOwner, Tenant
from iotfin.ledger.tables import LedgerAnchor, LedgerLeaf
from tests.conftest import REPO_ROOT
from tests.decision.conftest import add_enterprises

LENDER = "bank-a"

# The child submits one application as the lender; with CRASH set, it is killed inside the use
# case's transaction right after the ownership row, the last of the five writes, before the commit.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from decimal import Decimal
    from iotfin.app.workspace import Workspace
    from iotfin.core.settings import Settings
    from iotfin.decision import service
    from iotfin.decision.applications import Application
    from tests.decision.conftest import assessment

    data_dir, url, tenant_id, crash = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    if crash:
        written = service.set_owner_in

        def set_owner_then_die(*args, **kwargs):
            written(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        service.set_owner_in = set_owner_then_die
    ws = Workspace(Settings(data_dir=data_dir, database_url=url))
    svc = ws.decisions(assess=assessment)
    applicant = service.Applicant(consent_of="bank-a", risk_lender="bank-a", owner_tenant_id=tenant_id)
    result = svc.submit(Application(1, "iot-working-capital", Decimal("200000"), 12), applicant)
    ws.close()
    print(result["application_id"])
""")


def _counts(ws: Workspace) -> dict[str, int]:
    ws.consent.log.flush()
    with ws.engine.connect() as conn:
        def n(table: object) -> int:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

        return {"access_log": n(access_t), "applications": n(CreditApplication), "decisions": n(CreditDecision),
                "anchors": n(LedgerAnchor), "leaves": n(LedgerLeaf), "owners": n(RecordOwner)}


def _prepare(ws: Workspace) -> int:
    add_enterprises(ws.engine, range(1, 3))
    with ws.engine.begin() as conn:
        tenant_id = conn.execute(insert(Tenant).values(code=LENDER, name="甲银行", name_en="Bank A", kind="bank")
                                 .returning(Tenant.id)).scalar_one()
    now = datetime.now(UTC)
    ws.consent.grant(GrantRequest(1, LENDER, "credit_assessment", ("credit_report",), date.today() - timedelta(days=400),
                                  date.today() + timedelta(days=30), now + timedelta(days=90)))
    return int(tenant_id)


def _submit(ws: Workspace, tenant_id: int, crash: bool) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", CHILD, str(ws.data_dir), ws.settings.resolved_database_url,
                           str(tenant_id), "1" if crash else "0"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO_ROOT)


def test_a_crash_before_the_commit_leaves_nothing_and_a_clean_run_leaves_everything(workspace: Workspace) -> None:
    tenant_id = _prepare(workspace)
    workspace.decision.ensure_default()
    before = _counts(workspace)

    crashed = _submit(workspace, tenant_id, crash=True)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert _counts(workspace) == before  # no access row, application, decision, anchor or owner

    done = _submit(workspace, tenant_id, crash=False)
    assert done.returncode == 0, done.stderr
    after = _counts(workspace)
    for kind in ("access_log", "applications", "decisions", "anchors", "leaves", "owners"):
        assert after[kind] == before[kind] + 1, (kind, before, after)
    application_id = int(done.stdout.split()[-1])
    with workspace.engine.connect() as conn:
        owner = conn.execute(select(RecordOwner.tenant_id).where(RecordOwner.kind == "application",
                                                                 RecordOwner.record_id == application_id)).scalar()
    assert owner == tenant_id


def test_consent_withdrawn_inside_the_transaction_rolls_everything_back(workspace: Workspace,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-check passes, the grant is withdrawn before the transaction's own check: the
    application is refused (403), nothing of it is stored, and the refused read is logged."""
    from decimal import Decimal

    from iotfin.core.errors import Forbidden
    from iotfin.decision.applications import Application
    from iotfin.decision.service import Applicant
    from tests.decision.conftest import assessment

    tenant_id = _prepare(workspace)
    svc = workspace.decisions(assess=assessment)
    svc.ensure_default()
    before = _counts(workspace)
    checks: list[bool] = []
    real = svc.consent
    assert real is not None

    def withdrawn_after_the_pre_check(lender: str, enterprise_id: int, **kw: object) -> str | None:
        checks.append(kw.get("conn") is not None)
        conn = kw.get("conn")
        if conn is not None:  # as if withdrawn just before this read (on the transaction's own connection:
            # SQLite's write lock, held here, keeps any other writer out)
            conn.execute(update(grants_t).where(grants_t.c.enterprise_id == enterprise_id)  # type: ignore[attr-defined]
                         .values(withdrawn_at=datetime.now(UTC)))
        return real(lender, enterprise_id, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(svc, "consent", withdrawn_after_the_pre_check)
    with pytest.raises(Forbidden, match="no consent from enterprise 1"):
        svc.submit(Application(1, "iot-working-capital", Decimal("200000"), 12),
                   Applicant(consent_of=LENDER, risk_lender=LENDER, owner_tenant_id=tenant_id))
    after = _counts(workspace)
    assert checks[:2] == [False, True]
    assert {k: after[k] for k in after if k != "access_log"} == {k: before[k] for k in before if k != "access_log"}
    assert after["access_log"] == before["access_log"] + 1  # the refusal, logged outside the rolled-back work
    with workspace.engine.connect() as conn:
        allowed = conn.execute(select(access_t.c.allowed).order_by(access_t.c.id.desc()).limit(1)).scalar()
    assert not allowed

