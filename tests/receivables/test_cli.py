"""`iotfin vouchers` as an operator uses it: issue, a refused term (exit 65), split, transfer, a second
transfer of the sent part (exit 75 naming the receiver), an acceptance by the wrong enterprise and by the receiver, evidence export, offline verification and a tampered bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from tests.receivables.world import build


def _iotfin(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {
        "IOTFIN_DATA_DIR": str(tmp_path / "ws"), "IOTFIN_SIMULATION": "true"}
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120, env=env)


def test_voucher_commands(tmp_path: Path) -> None:
    ws = Workspace(Settings(data_dir=tmp_path / "ws"))
    ws.initialise()
    world = build(ws)
    key = ws.ledger.verifier_key
    ws.close()
    docs = ",".join(str(d) for d in world.docs)
    base = ("vouchers", "issue", "--by", str(world.core), "--supplier", str(world.tier1), "--amount", "50000.00",
            "--documents", docs, "--on", "2026-03-02")
    refused = _iotfin(tmp_path, *base, "--matures", "2026-12-31")
    assert refused.returncode == 65 and "term beyond the limit" in refused.stderr, refused.stderr
    issued = _iotfin(tmp_path, *base, "--matures", "2026-05-31", "--json")
    assert issued.returncode == 0, issued.stderr
    voucher = json.loads(issued.stdout)
    part = voucher["parts"][0]["id"]
    split = _iotfin(tmp_path, "vouchers", "split", str(part), "--by", str(world.tier1), "--amounts", "20000",
                    "--on", "2026-03-03", "--json")
    assert split.returncode == 0, split.stderr
    first, rest = json.loads(split.stdout)["parts"]
    assert (first["amount"], rest["amount"]) == ("20000.00", "30000.00")
    moved = _iotfin(tmp_path, "vouchers", "transfer", str(first["id"]), "--by", str(world.tier1), "--to",
                    str(world.tier2a), "--on", "2026-03-03", "--json")
    assert moved.returncode == 0, moved.stderr
    again = _iotfin(tmp_path, "vouchers", "transfer", str(first["id"]), "--by", str(world.tier1), "--to",
                    str(world.tier2b), "--on", "2026-03-03")
    assert again.returncode == 75 and f"enterprise:{world.tier2a}" in again.stderr, again.stderr
    incoming = _iotfin(tmp_path, "vouchers", "holdings", "--enterprise", str(world.tier2a), "--incoming", "--json")
    assert [p["id"] for p in json.loads(incoming.stdout)["items"]] == [first["id"]]
    wrong = _iotfin(tmp_path, "vouchers", "accept", str(first["id"]), "--by", str(world.tier2b), "--on", "2026-03-03")
    assert wrong.returncode != 0 and "not to enterprise" in wrong.stderr, wrong.stderr
    accepted = _iotfin(tmp_path, "vouchers", "accept", str(first["id"]), "--by", str(world.tier2a), "--on", "2026-03-04",
                       "--json")
    assert accepted.returncode == 0 and json.loads(accepted.stdout)["holder_id"] == world.tier2a, accepted.stderr
    held = _iotfin(tmp_path, "vouchers", "holdings", "--enterprise", str(world.tier2a), "--json")
    assert [p["id"] for p in json.loads(held.stdout)["items"]] == [first["id"]]

    bundle = tmp_path / "title.json"
    exported = _iotfin(tmp_path, "vouchers", "evidence", str(voucher["id"]), "--out", str(bundle), "--json")
    assert exported.returncode == 0, exported.stderr
    ok = _iotfin(tmp_path, "vouchers", "verify", str(bundle), "--key", key, "--json")
    assert ok.returncode == 0, ok.stderr
    proved = json.loads(ok.stdout)
    assert proved["events"] == 4 and proved["total_fen"] == 5_000_000  # issue, split, send, transfer
    data = json.loads(bundle.read_text())
    data["events"][1]["record"]["body"]["detail"]["parts"][0]["end"] = 1_000_000
    bundle.write_text(json.dumps(data))
    bad = _iotfin(tmp_path, "vouchers", "verify", str(bundle), "--key", key)
    assert bad.returncode == 65 and "disclosed body" in bad.stderr, bad.stderr
