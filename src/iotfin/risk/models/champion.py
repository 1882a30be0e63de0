"""Which trained model version is the champion the decision service rates with.

Training writes a new version (`write_version` moves LATEST) and never makes it champion. Promotion
is an explicit step: `promote` verifies the version's files against its manifest, anchors a
`model_promotion` record in the ledger (who, when, which fingerprint, why), appends it to
`promotions.jsonl` beside the versions, and then points `CHAMPION` at the version (atomically).
Until a version is promoted the platform rates with the bootstrap scorecard.

    DIR/CHAMPION            "v0002"
    DIR/promotions.jsonl    one JSON object per promotion, oldest first
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.time import utc_now
from iotfin.risk.models.bundle import load_model

CHAMPION = "CHAMPION"
PROMOTIONS = "promotions.jsonl"

Anchor = Callable[[str, dict[str, Any]], int]
"""Anchor a record (id, body) in the ledger; returns its leaf index."""


def champion_dir(model_dir: Path) -> Path | None:
    """The champion's version folder, or None when no version was promoted."""
    path = Path(model_dir) / CHAMPION
    if not path.is_file():
        return None
    vdir = Path(model_dir) / path.read_text().strip()
    return vdir if (vdir / "manifest.json").is_file() else None


def promotions(model_dir: Path) -> list[dict[str, Any]]:
    path = Path(model_dir) / PROMOTIONS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def versions(model_dir: Path) -> list[dict[str, Any]]:
    """Every trained version with its status: champion, former champion, or candidate (never promoted)."""
    model_dir = Path(model_dir)
    champ = champion_dir(model_dir)
    promoted = {p["version"] for p in promotions(model_dir)}
    out = []
    for vdir in sorted(p for p in model_dir.glob("v[0-9][0-9][0-9][0-9]") if p.is_dir()):
        manifest = json.loads((vdir / "manifest.json").read_text())
        judge = "oot" if "oot" in manifest.get("evaluation", {}) else "test"
        chosen = manifest.get("champion", "scorecard")
        metrics = manifest.get("evaluation", {}).get(judge, {}).get(chosen, {})
        status = ("champion" if champ is not None and vdir.name == champ.name else
                  "former champion" if vdir.name in promoted else "candidate")
        out.append({"version": vdir.name, "model": manifest.get("model_id"), "kind": manifest.get("kind"),
                    "created_at": manifest.get("created_at"), "rows": manifest.get("training_data", {}).get("rows"),
                    "auc": metrics.get("auc"), "ks": metrics.get("ks"), "sample": judge, "status": status,
                    "report": str(vdir / "report.html") if (vdir / "report.html").is_file() else None})
    return out


def promote(model_dir: Path, version: str, *, by: str, note: str | None = None, anchor: Anchor | None = None,
            clock: Callable[[], datetime] = utc_now) -> dict[str, Any]:
    """Make `version` (e.g. "v0003", or a model id "enterprise@v0003-…") the champion: verified,
    anchored, logged, then pointed at."""
    if not by.strip():
        raise ValidationError("--by: a promotion needs the name of who promotes")
    model_dir = Path(model_dir)
    name = version.split("@", 1)[1].split("-", 1)[0] if "@" in version else version
    vdir = model_dir / name
    if not (vdir / "manifest.json").is_file():
        raise NotFound(f"no model version {version!r} in {model_dir}")
    model = load_model(vdir)  # refuses altered files (SHA-256 against the manifest)
    if not model.dimensions:
        raise ValidationError(f"{model.model_id} is not an enterprise three-dimension model")
    previous = champion_dir(model_dir)
    record = {"version": name, "model": model.model_id, "model_sha256": model.manifest["model_sha256"],
              "promoted_by": by, "note": note, "promoted_at": clock().isoformat(timespec="seconds"),
              "previous": previous.name if previous is not None else None}
    if anchor is not None:
        record["leaf_index"] = anchor(f"{model.model_id}#{len(promotions(model_dir)) + 1}", dict(record))
    with (model_dir / PROMOTIONS).open("a") as fh:
        fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    tmp = model_dir / ".CHAMPION.tmp"
    tmp.write_text(name + "\n")
    os.replace(tmp, model_dir / CHAMPION)
    return record
