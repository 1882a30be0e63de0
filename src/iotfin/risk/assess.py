"""What risk keeps beside a rating for the credit decision: the sales-per-kWh table the training step
writes next to the model, whether a lender may assess an enterprise at all given what was withheld,
and whether a model has been trained. Mapping a rating to the decision's `RiskAssessment` is the
composition root's (`iotfin.app.assessment`): risk does not know the decision's input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from iotfin.risk.features.catalogue import CATALOGUE

# Sales per kWh by sector, the median of the training history ("" = all sectors), written beside
# the model by the training step: what an enterprise's electricity use supports in revenue.
REVENUE_PER_KWH_FILE = "revenue_per_kwh.json"


def known(value: Any) -> Any:
    """A feature's value, or None where it is missing (NULL, or NaN once in pandas)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def save_revenue_per_kwh(model_dir: Path, table: Mapping[str, float]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / REVENUE_PER_KWH_FILE).write_text(json.dumps(dict(table), sort_keys=True))


def load_revenue_per_kwh(model_dir: Path) -> dict[str, float]:
    path = model_dir / REVENUE_PER_KWH_FILE
    return {str(k): float(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


# Features that read no telemetry are read for every enterprise, whatever devices it has.
_READ_FOR_EVERY_ENTERPRISE = frozenset(f.name for f in CATALOGUE if not any(s.startswith("telemetry") for s in f.scopes))


def consent_ok(withheld: Iterable[str]) -> bool:
    """Whether the lender may assess the enterprise at all: at least one of the features read for
    every enterprise (registry, tax, credit report, trade documents) was not withheld. No grant —
    or a grant of device telemetry alone — withholds them all, which the strategy declines."""
    return bool(_READ_FOR_EVERY_ENTERPRISE - set(withheld))


def has_model(model_dir: Path) -> bool:
    return (model_dir / "LATEST").is_file()
