"""Credit features: point-in-time, consent-scoped, defined once in the catalogue (see docs/features.md).

Names are imported on first use (PEP 562), so reading the catalogue does not load DuckDB and pyarrow.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"CATALOGUE": "catalogue", "Feature": "catalogue", "compute_features": "engine", "features_for": "engine",
            "load_commodity_prices": "engine", "training_set": "engine"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"iotfin.risk.features.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'iotfin.risk.features' has no attribute {name!r}")
