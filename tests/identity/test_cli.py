"""`iotfin clients create` / `iotfin users create` / key rotation, as real subprocesses, then the
credentials they print used against the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.identity.tables import Tenant


def _cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotfin", *args, "--data-dir", str(data_dir), "--json"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_clients_and_users_from_the_cli(tmp_path: Path) -> None:
    data_dir = tmp_path / "ws"
    ws = Workspace(Settings(data_dir=data_dir))
    ws.initialise()
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant), [{"code": "bank-a", "name": "甲", "name_en": "A", "kind": "bank"}])

    made = _cli(data_dir, "clients", "create", "--tenant", "bank-a", "--scopes", "financing:read,complaints:read")
    assert made.returncode == 0, made.stderr
    cred = json.loads(made.stdout)
    assert cred["scopes"] == ["complaints:read", "financing:read"] and cred["client_secret"].startswith("ics_")

    bad = _cli(data_dir, "clients", "create", "--tenant", "bank-a", "--scopes", "everything")
    assert bad.returncode == 65 and bad.stderr.count("\n") == 1 and "unknown scope" in bad.stderr

    user = _cli(data_dir, "users", "create", "li.officer", "--roles", "risk_officer", "--tenant", "bank-a",
                env={"IOTFIN_NEW_USER_PASSWORD": "a long enough passphrase"})
    assert user.returncode == 0, user.stderr
    assert json.loads(user.stdout)["roles"] == ["risk_officer"]
    assert "passphrase" not in user.stdout

    http = TestClient(create_app(ws, background=False))
    token = http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                            "client_secret": cred["client_secret"]}).json()["access_token"]
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["tenant"] == "bank-a"
    login = http.post("/oauth/token", data={"grant_type": "password", "username": "li.officer",
                                            "password": "a long enough passphrase"})
    assert login.status_code == 200

    rotated = _cli(data_dir, "clients", "rotate-signing-key")
    assert rotated.returncode == 0, rotated.stderr
    keys = json.loads(rotated.stdout)
    assert len(keys["keys"]) == 2
    # the running server signs with the new key and still accepts the old token
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    new = http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cred["client_id"],
                                          "client_secret": cred["client_secret"]}).json()["access_token"]
    import jwt
    assert jwt.get_unverified_header(new)["kid"] == keys["active"]
    ws.close()
