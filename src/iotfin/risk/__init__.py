"""Credit risk: features (entity, asset, transaction; `iotfin.risk.features`), the model training
toolkit (WoE scorecard + LightGBM challenger), scoring with grades and reason codes, the enterprise
three-dimension model, and monitoring. See docs/risk.md.

    from iotfin.risk import train, load_model, score_frame, score_one, train_enterprise_model, rate, monitor

The model names are imported on first use (PEP 562), so that `iotfin.risk.features` and the CLI do
not load optbinning, LightGBM and pandas until a model is actually trained or scored.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RiskModel": "iotfin.risk.models.bundle", "load_model": "iotfin.risk.models.bundle",
    "TrainConfig": "iotfin.risk.models.train", "train": "iotfin.risk.models.train",
    "train_enterprise_model": "iotfin.risk.models.train",
    "monitor": "iotfin.risk.monitoring",
    "rate": "iotfin.risk.scoring", "score_frame": "iotfin.risk.scoring", "score_one": "iotfin.risk.scoring",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'iotfin.risk' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
