"""`iotfin financing` as an operator uses it: place, refused second financing (exit 75), release."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ASSET = json.dumps({"kind": "vehicle", "vin": "1M8GDM9AXKP042788"})


def _iotfin(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {"IOTFIN_DATA_DIR": str(tmp_path / "ws")}
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120, env=env)


def test_place_refuse_release(tmp_path: Path) -> None:
    refused_early = _iotfin(tmp_path, "financing", "status", "--asset", ASSET)
    assert refused_early.returncode == 78 and "iotfin db upgrade" in refused_early.stderr
    assert _iotfin(tmp_path, "db", "upgrade").returncode == 0
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'ws' / 'iotfin.db'}")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (code, name, name_en, kind, created_at) VALUES "
                          "('bank-a', 'A', 'A', 'bank', '2026-01-01 00:00:00'), "
                          "('bank-b', 'B', 'B', 'bank', '2026-01-01 00:00:00')"))
    engine.dispose()

    placed = _iotfin(tmp_path, "financing", "place", "--asset", ASSET, "--tenant", "bank-a", "--ref", "AUTO-1",
                     "--amount", "180000", "--registration-no", "ZD-9", "--registered-at", "2026-03-01T09:00:00+08:00",
                     "--json")
    assert placed.returncode == 0, placed.stderr
    lien = json.loads(placed.stdout)
    assert lien["amount"] == "180000.00" and lien["registration_no"] == "ZD-9"

    spaced = json.dumps({"kind": "vehicle", "vin": "1m8 gdm9a xkp 042788"})
    second = _iotfin(tmp_path, "financing", "place", "--asset", spaced, "--tenant", "bank-b", "--ref", "X",
                     "--amount", "1000")
    assert second.returncode == 75
    assert len(second.stderr.strip().splitlines()) == 1 and f"lien {lien['id']}" in second.stderr

    naive = _iotfin(tmp_path, "financing", "place", "--asset", ASSET, "--tenant", "bank-b", "--ref", "X",
                    "--amount", "1", "--notice-at", "2026-03-01T09:00:00")
    assert naive.returncode == 65 and "--notice-at" in naive.stderr

    released = _iotfin(tmp_path, "financing", "release", str(lien["id"]), "--reason", "loan repaid", "--json")
    assert released.returncode == 0 and json.loads(released.stdout)["status"] == "released"
    status = json.loads(_iotfin(tmp_path, "financing", "status", "--asset", ASSET, "--json").stdout)
    assert [a["outcome"] for a in status["attempts"]] == ["placed", "refused"] and status["active_lien"] is None
