"""Write a simulated economy to a folder: master data, trade, ground truth, and the telemetry stream.

Layout (all Parquet):

    manifest.json                      config, row counts, content digest
    tenants, enterprises, sites, relationships, devices, trade_documents,
    financing_requests, commodity_prices .parquet
    ground_truth/{defaults,incidents,health}.parquet
    telemetry/<device_type>/day=YYYY-MM-DD/part-NNNN.parquet   wide: device_id, ts, one column per metric

Telemetry pieces are written by a pool of worker processes; memory stays bounded by the piece size,
not by the fleet or the horizon.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from iotfin.core.errors import ValidationError
from iotfin.sim.config import SimConfig
from iotfin.sim.economy import build_economy
from iotfin.sim.reference import DEVICE_TYPES
from iotfin.sim.telemetry import State, pieces, save_state, write_piece

Progress = Callable[[str, int, int], None]
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def generate(cfg: SimConfig, out_dir: Path, progress: Progress | None = None, workers: int = 2) -> dict[str, Any]:
    """Generate the economy into out_dir (which must be empty or a previous simulator output)."""
    out_dir = Path(out_dir)
    _prepare(out_dir)
    started = time.perf_counter()
    report = progress or (lambda *_: None)
    report("simulate economy", 0, 1)
    eco = build_economy(cfg)
    digests: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name, table in eco.tables.items():
        digests[f"{name}.parquet"] = _write(table, out_dir / f"{name}.parquet")
        counts[name] = table.num_rows
    for name, table in eco.ground_truth.items():
        digests[f"ground_truth/{name}.parquet"] = _write(table, out_dir / "ground_truth" / f"{name}.parquet")
        counts[f"ground_truth.{name}"] = table.num_rows
    report("simulate economy", 1, 1)

    state_dir = out_dir / "_state"
    save_state(eco.state, eco.effects, state_dir)
    tasks = [(t, day, chunk) for day in range(cfg.days) for t, chunk in pieces(State(state_dir))]
    telemetry_rows: Counter[str] = Counter()
    for rel, rows, digest in _run(tasks, str(state_dir), str(out_dir), cfg, workers, report):
        digests[rel] = digest
        telemetry_rows[rel.split("/")[1]] += rows
    shutil.rmtree(state_dir)

    devices = eco.tables["devices"]["device_type"].to_pylist()
    incidents = eco.ground_truth["incidents"]["incident_type"].to_pylist()
    manifest = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_json(),
        "counts": counts | {"telemetry_rows": sum(telemetry_rows.values())},
        "devices_by_type": {t: c for t, c in sorted(Counter(devices).items())},
        "telemetry_rows_by_type": dict(sorted(telemetry_rows.items())),
        "incidents_by_type": dict(sorted(Counter(incidents).items())),
        **({"shocks": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                       for row in eco.ground_truth["shocks"].to_pylist()]} if cfg.shocks else {}),
        "content_digest": content_digest(digests),
        "generated_in_s": round(time.perf_counter() - started, 2),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def content_digest(file_digests: dict[str, str]) -> str:
    """One SHA-256 over every output file's path and SHA-256: equal digests mean identical output."""
    h = hashlib.sha256()
    for rel in sorted(file_digests):
        h.update(f"{rel}\0{file_digests[rel]}\n".encode())
    return h.hexdigest()


def _prepare(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST).exists() and not (out_dir / "_state").exists():
            raise ValidationError(f"--out: {out_dir} is not empty and is not a simulator output; choose another folder")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _write(table: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(tasks: list[tuple[int, int, int]], state_dir: str, out_dir: str, cfg: SimConfig, workers: int,
         report: Progress) -> list[tuple[str, int, str]]:
    """Run the pieces, in-process for one worker, else in a spawn pool with a bounded queue."""
    results: list[tuple[str, int, str]] = []
    total = len(tasks)
    report("simulate telemetry", 0, total)
    if workers <= 1:
        for i, (t, day, chunk) in enumerate(tasks, start=1):
            results.append(write_piece(state_dir, out_dir, cfg, t, day, chunk))
            report("simulate telemetry", i, total)
        return results
    # spawn, not fork: the parent holds DuckDB/Arrow thread pools that must not be forked mid-use.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: set[Future[tuple[str, int, str]]] = set()
        queue = iter(tasks)
        done = 0
        for task in queue:
            pending.add(pool.submit(write_piece, state_dir, out_dir, cfg, *task))
            if len(pending) >= 4 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    results.append(future.result())
                    done += 1
                    report("simulate telemetry", done, total)
        for future in pending:
            results.append(future.result())
            done += 1
            report("simulate telemetry", done, total)
    return results


class SimDataset:
    """Read access to a simulator output folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        manifest = self.root / MANIFEST
        if not manifest.exists():
            raise ValidationError(f"{self.root}: not a simulator output (no {MANIFEST}); run `iotfin sim generate --out {self.root}`")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())

    def table(self, name: str) -> Any:
        for path in (self.root / f"{name}.parquet", self.root / "ground_truth" / f"{name}.parquet"):
            if path.exists():
                return pq.read_table(path)
        raise ValidationError(f"{self.root}: no table named {name!r}")

    def telemetry_types(self) -> list[str]:
        base = self.root / "telemetry"
        return [t for t in DEVICE_TYPES if (base / t).is_dir()]

    def telemetry_days(self, device_type: str) -> list[Any]:
        base = self.root / "telemetry" / device_type
        if not base.is_dir():
            return []
        return sorted(date.fromisoformat(p.name.removeprefix("day=")) for p in base.iterdir() if p.name.startswith("day="))

    def telemetry(self, device_type: str, day: Any) -> Any:
        import pyarrow as pa  # lazy: pyarrow loads only when this runs

        folder = self.root / "telemetry" / device_type / f"day={day.isoformat()}"
        parts = sorted(folder.glob("part-*.parquet"))
        if not parts:
            raise ValidationError(f"{self.root}: no {device_type} telemetry for {day}")
        return pa.concat_tables([pq.read_table(p) for p in parts])

    def iter_telemetry(self) -> Any:
        """(device type, day, wide table) in day order, all types of a day together."""
        days = sorted({(d, t) for t in self.telemetry_types() for d in self.telemetry_days(t)},
                      key=lambda x: (x[0], DEVICE_TYPES.index(x[1])))
        for day, device_type in days:
            yield device_type, day, self.telemetry(device_type, day)
