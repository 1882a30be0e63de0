"""Same seed, same output: byte-identical files whatever the number of workers; other seeds differ."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from iotfin.sim import SimConfig, SimDataset, generate

from .conftest import SMALL


def _file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def test_same_seed_identical_output_across_worker_counts(small_sim: SimDataset, tmp_path: Path) -> None:
    again = generate(SMALL, tmp_path / "again", workers=1)
    assert again["content_digest"] == small_sim.manifest["content_digest"]
    assert _file_hashes(tmp_path / "again") == _file_hashes(small_sim.root)


def test_other_seed_other_output(small_sim: SimDataset, tmp_path: Path) -> None:
    other = generate(SimConfig(enterprises=SMALL.enterprises, days=SMALL.days, seed=SMALL.seed + 1), tmp_path / "o", workers=2)
    assert other["content_digest"] != small_sim.manifest["content_digest"]
    mine, theirs = _file_hashes(small_sim.root), _file_hashes(tmp_path / "o")
    assert mine["enterprises.parquet"] != theirs["enterprises.parquet"]


def test_manifest_counts_match_the_files(small_sim: SimDataset) -> None:
    counts = small_sim.manifest["counts"]
    for name in ("enterprises", "devices", "trade_documents", "financing_requests"):
        assert small_sim.table(name).num_rows == counts[name]
    rows = sum(small_sim.telemetry(t, d).num_rows for t in small_sim.telemetry_types() for d in small_sim.telemetry_days(t))
    assert rows == counts["telemetry_rows"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=300)


def test_cli_generate_json_and_refuses_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = _cli("sim", "generate", "--enterprises", "20", "--days", "5", "--seed", "3", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["counts"]["enterprises"] == 20 and data["counts"]["telemetry_rows"] > 0
    assert (out / "manifest.json").exists()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not yours")
    refused = _cli("sim", "generate", "--enterprises", "20", "--days", "5", "--out", str(foreign))
    assert refused.returncode == 65
    assert "not a simulator output" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert (foreign / "keep.txt").read_text() == "not yours"


@pytest.mark.parametrize("args", [["--enterprises", "2"], ["--days", "0"]])
def test_cli_rejects_bad_sizes(tmp_path: Path, args: list[str]) -> None:
    done = _cli("sim", "generate", "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 2  # usage error, before any work
    assert not (tmp_path / "x").exists()
