"""Anchoring, evidence bundles checked offline, audit, and witnessing, on a loaded workspace."""

from __future__ import annotations

import base64
import copy
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.demo.loader import load_financing_requests, load_master_data, load_telemetry
from iotfin.financing.model import receivable_key
from iotfin.ledger.checkpoint import SignerKey, verify_note
from iotfin.ledger.evidence import EvidenceInvalid, verify_bundle
from iotfin.ledger.service import request_cosignature
from iotfin.ledger.witness import format_add_checkpoint_request
from iotfin.sim import SimConfig, SimDataset, generate


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimDataset:
    out = tmp_path_factory.mktemp("sim") / "out"
    generate(SimConfig(enterprises=20, days=6, seed=11), out, workers=1)
    return SimDataset(out)


@pytest.fixture
def loaded(workspace: Workspace, sim: SimDataset) -> Workspace:
    load_master_data(workspace, sim)
    load_telemetry(workspace, sim)
    load_financing_requests(workspace, sim)
    workspace.ledger.checkpoint()
    return workspace


def _first_doc(ws: Workspace) -> str:
    with ws.engine.connect() as conn:
        return str(conn.execute(text("SELECT min(id) FROM trade_documents WHERE doc_type = 'invoice'")).scalar())


def test_trade_document_bundle_verifies_offline_and_tampering_fails(loaded: Workspace) -> None:
    vkey = loaded.ledger.verifier_key
    bundle = json.loads(json.dumps(loaded.ledger.prove("trade_document", _first_doc(loaded)), default=str))
    proved = verify_bundle(bundle, vkey)
    assert proved["record_type"] == "trade_document" and proved["checkpoint"]["size"] == loaded.ledger.store.size()
    payload = json.loads(base64.b64decode(bundle["leaf"]["payload"]))
    assert bundle["record"]["salt"] and set(payload) == {"v", "commitment"}  # anchored as a salted hash only

    def broken(change) -> dict:  # noqa: ANN001
        b = copy.deepcopy(bundle)
        change(b)
        return b

    cases = [
        broken(lambda b: b["record"]["body"].update(amount="1.00")),
        broken(lambda b: b["record"].update(salt=b["record"]["salt"][:-4] + "AAA=")),
        broken(lambda b: b["record"].update(id="999999")),
        broken(lambda b: b["leaf"].update(index=b["leaf"]["index"] + 1)),
        broken(lambda b: b["inclusion_proof"].reverse()),
        broken(lambda b: b.update(checkpoint=b["checkpoint"].replace("\n\n", "\n\n ", 1))),
        broken(lambda b: b.pop("inclusion_proof")),
    ]
    for case in cases:
        with pytest.raises(EvidenceInvalid):
            verify_bundle(case, vkey)
    with pytest.raises(EvidenceInvalid):
        verify_bundle(bundle, SignerKey.generate("someone-else").verifier().encode())


def _one_reading():  # noqa: ANN202
    import pyarrow as pa

    from iotfin.telemetry.model import READING_SCHEMA

    return pa.table({"device_id": [1], "key": ["energy_kwh"], "ts": [1_767_225_600_123], "value": [1.0]},
                    schema=READING_SCHEMA)


def test_reading_bundle(loaded: Workspace, sim: SimDataset) -> None:
    table = loaded.telemetry.series(3, "energy_kwh", 0, 2**62)
    if table.num_rows == 0:
        device = sim.table("devices")["device_id"][0].as_py()
        key, ts = next(iter(loaded.telemetry.latest(device).items()))
        ts = ts[0]
    else:
        device, key, ts = 3, "energy_kwh", table["ts"][5].as_py()
    bundle = json.loads(json.dumps(loaded.ledger.prove_reading(loaded.settings.resolved_telemetry_dir, device, key, ts)))
    proved = verify_bundle(bundle, loaded.ledger.verifier_key)
    assert proved["reading"]["ts"] == ts and proved["record_type"] == "telemetry_batch"
    forged = copy.deepcopy(bundle)
    forged["reading"]["value"] += 1
    forged["reading"]["series"]["values"] = [v + 1 if t == ts else v for t, v in
                                             zip(forged["reading"]["series"]["ts"], forged["reading"]["series"]["values"], strict=True)]
    with pytest.raises(EvidenceInvalid, match="series proof"):
        verify_bundle(forged, loaded.ledger.verifier_key)


def test_audit_finds_rows_changed_behind_the_ledgers_back(loaded: Workspace) -> None:
    root = loaded.settings.resolved_telemetry_dir
    report = loaded.ledger.audit(telemetry_root=root)
    assert report["ok"] and report["leaves"] == loaded.ledger.store.size()
    # A batch stored without its leaf (as after a crash between the two) is reported.
    loaded.ingest.anchor = None
    assert loaded.ingest.ingest(_one_reading(), transport="test").accepted == 1
    assert {"type": "telemetry_batch", "problem": "stored but not anchored"}.items() <= \
        loaded.ledger.audit(telemetry_root=root)["records"][0].items()
    doc = _first_doc(loaded)
    with loaded.engine.begin() as conn:
        conn.execute(text("UPDATE trade_documents SET amount = amount + 1000 WHERE id = :i"), {"i": int(doc)})
    report = loaded.ledger.audit()
    assert not report["ok"] and report["records"] == [
        {"type": "trade_document", "id": doc, "leaf_index": report["records"][0]["leaf_index"],
         "problem": "changed since anchored"}]
    with pytest.raises(EvidenceInvalid):  # the changed record no longer matches its anchor
        verify_bundle(json.loads(json.dumps(loaded.ledger.prove("trade_document", doc), default=str)),
                      loaded.ledger.verifier_key)
    with loaded.engine.begin() as conn:  # tampering with the log itself
        conn.execute(text("UPDATE ledger_leaves SET payload = :p WHERE idx = 3"), {"p": b'{"v":1,"commitment":"00"}'})
    assert any("does not match" in p for p in loaded.ledger.audit()["log"])


def test_liens_are_anchored_on_every_change(loaded: Workspace) -> None:
    key = receivable_key("370226123451", "01234567", "91350100M000100Y43", "91110000100000585X", "5000")
    lien = loaded.financing.finance(key, 1, "T-1", "4000")
    loaded.financing.release(lien.id, "repaid")
    with loaded.engine.connect() as conn:
        leaves = conn.execute(text("SELECT count(*) FROM ledger_anchors WHERE record_type = 'lien' AND record_id = :i"),
                              {"i": str(lien.id)}).scalar()
    assert leaves == 2
    bundle = json.loads(json.dumps(loaded.ledger.prove("lien", str(lien.id)), default=str))
    assert verify_bundle(bundle, loaded.ledger.verifier_key)["record_id"] == str(lien.id)
    assert bundle["record"]["body"]["status"] == "released"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_witness_endpoint_and_client(loaded: Workspace) -> None:
    app = create_app(loaded)
    client = TestClient(app)
    note = loaded.ledger.checkpoint()
    first = client.post("/add-checkpoint", content=format_add_checkpoint_request(0, [], note))
    assert first.status_code == 200
    witness_key = app.state.witness.verifiers()
    assert verify_note(note + first.text, witness_key).verified
    stale = client.post("/add-checkpoint", content=format_add_checkpoint_request(0, [], note))
    assert stale.status_code == 409 and stale.text.strip() == str(loaded.ledger.store.size())
    forged = note.replace("iotfin.local/ledger", "other.example/log", 1)
    assert client.post("/add-checkpoint", content=format_add_checkpoint_request(0, [], forged)).status_code == 404
    assert client.post("/add-checkpoint", content=b"garbage").status_code == 400

    # The client side, over real HTTP: the log grew, so the witness needs a consistency proof.
    loaded.ledger.anchor("model_fingerprint", [("m-1", {"sha256": "ab" * 32})])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        lines = request_cosignature(loaded.ledger, f"http://127.0.0.1:{port}")
        assert verify_note(loaded.ledger.checkpoint() + "".join(lines), witness_key).verified
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_cli_prove_verify_audit(loaded: Workspace, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    if not loaded.settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("the CLI path is the same on both backends; run it once")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")} | {
        "IOTFIN_DATA_DIR": str(loaded.data_dir), "IOTFIN_DATABASE_URL": loaded.settings.resolved_database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120, env=env)

    out = tmp_path / "bundle.json"
    assert run("ledger", "prove", f"trade_document:{_first_doc(loaded)}", "--out", str(out)).returncode == 0
    vkey = run("ledger", "key").stdout.strip()
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")}  # verify needs no workspace
    ok = subprocess.run([sys.executable, "-m", "iotfin", "ledger", "verify", str(out), "--key", vkey, "--json"],
                        capture_output=True, text=True, timeout=60, env=clean_env | {"IOTFIN_DATA_DIR": str(tmp_path / "none")})
    assert ok.returncode == 0 and json.loads(ok.stdout)["valid"]
    out.write_text(out.read_text().replace('"doc_type": "invoice"', '"doc_type": "payment"'))
    bad = run("ledger", "verify", str(out), "--key", vkey)
    assert bad.returncode == 65 and "anchored payload" in bad.stderr
    assert run("ledger", "audit", "--json").returncode == 0
