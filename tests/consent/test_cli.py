"""`iotfin consent` as an enterprise and a lender use it, through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from tests.consent.conftest import add_enterprises


def _iotfin(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(tmp_path / "ws"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "iotfin", "consent", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_grant_check_withdraw_log(tmp_path: Path) -> None:
    ws = Workspace(Settings(data_dir=tmp_path / "ws"))  # the same database the commands open
    ws.initialise()
    add_enterprises(ws.engine, [5])
    ws.close()
    check = ("check", "--enterprise", "5", "--recipient", "bank-a", "--scope", "telemetry:gps",
             "--purpose", "post_loan_monitoring", "--data-start", "2026-10-01", "--data-end", "2026-10-31")

    granted = _iotfin(tmp_path, "grant", "--enterprise", "5", "--recipient", "bank-a", "--purpose",
                      "post_loan_monitoring", "--scope", "telemetry:gps", "--scope", "alerts",
                      "--window-start", "2026-09-01", "--expires", "2027-06-30T23:59:59+08:00", "--json")
    assert granted.returncode == 0, granted.stderr
    grant_id = json.loads(granted.stdout)["id"]
    assert _iotfin(tmp_path, *check).returncode == 0
    assert _iotfin(tmp_path, "withdraw", str(grant_id), "--enterprise", "5").returncode == 0
    refused = _iotfin(tmp_path, *check)
    assert refused.returncode == 77 and "withdrawn" in refused.stderr and "授权已撤回" in refused.stderr
    twice = _iotfin(tmp_path, "withdraw", str(grant_id), "--enterprise", "5")
    assert twice.returncode == 65 and "already withdrawn" in twice.stderr

    log = json.loads(_iotfin(tmp_path, "access-log", "--enterprise", "5", "--json").stdout)["items"]
    assert [(r["allowed"], r["reason"]) for r in log] == [(True, "granted"), (False, "withdrawn")]
    listed = _iotfin(tmp_path, "list", "--enterprise", "5")
    assert listed.returncode == 0 and "withdrawn" in listed.stdout

    too_long = _iotfin(tmp_path, "grant", "--enterprise", "5", "--recipient", "bank-a", "--purpose",
                       "credit_assessment", "--scope", "alerts", "--window-start", "2026-01-01",
                       "--expires", "2028-01-01T00:00:00+08:00")
    assert too_long.returncode == 65 and too_long.stderr.count("\n") == 1 and "12 months" in too_long.stderr
