"""A trained model as it lives on disk: a versioned directory of plain files (JSON, LightGBM text),
never pickles, each file's SHA-256 in the manifest and the set of them fingerprinted.

    DIR/LATEST            "v0003"
    DIR/v0003/manifest.json     kind, inputs, champion, metrics, training-data SHA-256, artefact hashes
    DIR/v0003/scorecard.json    WoE tables + coefficients (and the three dimensions, for enterprise models)
    DIR/v0003/challenger.txt    LightGBM model (generic models)
    DIR/v0003/catalogue.json    feature -> {en, zh, dimension}
    DIR/v0003/baseline.json     training-sample distributions for monitoring
    DIR/v0003/report.html       validation report
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iotfin.core.errors import NotFound, ValidationError
from iotfin.risk.models.challenger import Challenger
from iotfin.risk.woe import Scaling, WoeLinear

FORMAT = "iotfin-risk-model/1"
DIMENSIONS = ("entity", "asset", "transaction")
DIMENSION_LABELS = {"entity": ("entity credit", "主体信用"), "asset": ("asset credit", "资产信用"),
                    "transaction": ("transaction credit", "交易信用")}


@dataclass(slots=True)
class RiskModel:
    path: Path
    manifest: dict[str, Any]
    linear: WoeLinear  # the scorecard; for enterprise models, with each feature's coefficient in its dimension
    scaling: Scaling
    catalogue: dict[str, dict[str, str]]
    baseline: dict[str, Any]
    challenger: Challenger | None = None
    # enterprise models: dimension -> {"intercept": float, "weight": float}; combined ln odds = bias + Σ w·lp_d
    dimensions: dict[str, dict[str, float]] = field(default_factory=dict)
    bias: float = 0.0
    feature_dimension: dict[str, str] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # scoring tables, built once

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def champion(self) -> str:
        return self.manifest["champion"]

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        return list(self.manifest["inputs"]["numeric"]), list(self.manifest["inputs"]["categorical"])

    def label(self, feature: str) -> dict[str, str]:
        entry = self.catalogue.get(feature, {})
        return {"en": entry.get("en") or feature, "zh": entry.get("zh") or entry.get("en") or feature}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artefacts_fingerprint(hashes: dict[str, str]) -> str:
    """SHA-256 over 'name sha256\\n' lines in name order (what `sha256sum` would list)."""
    lines = "".join(f"{name} {hashes[name]}\n" for name in sorted(hashes))
    return hashlib.sha256(lines.encode()).hexdigest()


def write_version(model_dir: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Write a new version directory atomically (temp dir + rename) and point LATEST at it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    if (model_dir / "manifest.json").exists():
        raise ValidationError(f"{model_dir} is itself a model version; give its parent folder as --model")
    tmp = model_dir / f".tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    hashes = {}
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
    except BaseException:  # a full disk or an interrupt: leave no half-written version behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    versions = sorted(int(p.name[1:]) for p in model_dir.glob("v[0-9][0-9][0-9][0-9]") if p.is_dir())
    number = (versions[-1] if versions else 0) + 1
    while True:
        name = f"v{number:04d}"
        manifest = manifest | {"version": name, "artefacts": hashes, "model_sha256": artefacts_fingerprint(hashes),
                               "model_id": f"{model_dir.resolve().name}@{name}-{artefacts_fingerprint(hashes)[:12]}"}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        try:
            os.rename(tmp, model_dir / name)
            break
        except OSError:  # another trainer took this number
            number += 1
    latest = model_dir / ".LATEST.tmp"
    latest.write_text(name + "\n")
    os.replace(latest, model_dir / "LATEST")
    return model_dir / name, manifest


def resolve(path: Path) -> Path:
    path = Path(path)
    if (path / "manifest.json").is_file():
        return path
    if (path / "LATEST").is_file():
        return path / (path / "LATEST").read_text().strip()
    raise NotFound(f"no model at {path} (expected a model folder with LATEST, or a version folder)")


def load_model(path: Path | str, verify: bool = True) -> RiskModel:
    """Load a model folder (its LATEST version) or one version folder; with verify, refuse altered files."""
    vdir = resolve(Path(path))
    manifest = json.loads((vdir / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValidationError(f"{vdir}: not an iotfin risk model ({manifest.get('format')!r})")
    if verify:
        for name, digest in manifest["artefacts"].items():
            if not (vdir / name).is_file() or sha256_file(vdir / name) != digest:
                raise ValidationError(f"{vdir / name}: missing or altered since training (SHA-256 mismatch)")
    card = json.loads((vdir / "scorecard.json").read_text())
    model = RiskModel(vdir, manifest, WoeLinear.from_json(card["linear"]), Scaling(**card["scaling"]),
                      json.loads((vdir / "catalogue.json").read_text()), json.loads((vdir / "baseline.json").read_text()))
    if "challenger" in manifest:
        model.challenger = Challenger.load(manifest["challenger"], (vdir / "challenger.txt").read_text())
    if card.get("dimensions"):
        model.dimensions = card["dimensions"]
        model.bias = float(card["bias"])
        model.feature_dimension = card["feature_dimension"]
    return model


def combined_linear(linear: WoeLinear, dimensions: dict[str, dict[str, float]], bias: float,
                    feature_dimension: dict[str, str]) -> WoeLinear:
    """The enterprise model as one WoE-linear model: each coefficient × its dimension's weight, and
    the intercepts folded into one (ln odds = bias + Σ_d w_d · (intercept_d + Σ_j∈d coef_j · WoE_j))."""
    weights = np.array([dimensions[feature_dimension[n]]["weight"] for n in linear.names])
    intercept = bias + sum(d["weight"] * d["intercept"] for d in dimensions.values())
    return WoeLinear(linear.features, linear.coef * weights, intercept)


def enterprise_effective(model: RiskModel) -> WoeLinear:
    return combined_linear(model.linear, model.dimensions, model.bias, model.feature_dimension)
