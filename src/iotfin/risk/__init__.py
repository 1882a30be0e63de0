"""Credit risk: the model training toolkit (WoE scorecard + LightGBM challenger), scoring with grades
and reason codes, the enterprise three-dimension model, and monitoring. See docs/risk.md.

    from iotfin.risk import train, load_model, score_frame, score_one, train_enterprise_model, rate, monitor

Names are imported on first use (PEP 562), so `iotfin --help` does not load pandas and friends.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RiskModel": "iotfin.risk.models.bundle", "load_model": "iotfin.risk.models.bundle",
    "TrainConfig": "iotfin.risk.models.train", "train": "iotfin.risk.models.train",
    "train_enterprise_model": "iotfin.risk.models.train", "monitor": "iotfin.risk.monitoring",
    "rate": "iotfin.risk.scoring", "score_frame": "iotfin.risk.scoring", "score_one": "iotfin.risk.scoring",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'iotfin.risk' has no attribute {name!r}")
