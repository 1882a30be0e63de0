"""The risk engine as the credit decision's assessment port: risk's ratings and features, mapped to
decisioning's `RiskAssessment`. Here, at the composition root, because neither context may import the
other: risk knows nothing of the decision's input, decisioning nothing of features or models.

`to_assessment` turns one rating (a row of `rate`) and the features it was computed from into the
decision's `RiskAssessment`. The demo's batch rating and the online path below both call it, so a
decision reads the same fields whichever way the enterprise was rated.

`OnlineAssessor(features, model_dir)` rates one enterprise for one lender on request: `features_for`
(point in time, only what the enterprise granted that lender — every read checked and written to
the access log), then `rate` with the enterprise model. The decision API uses it when the workspace
holds a trained enterprise model, so no caller can supply its own grade.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotfin.core.time import business_date, utc_now
from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.reasons import Reason
from iotfin.risk.assess import consent_ok, known, load_revenue_per_kwh

if TYPE_CHECKING:  # DuckDB and pyarrow: loaded when an assessor is built, not with this module
    from iotfin.risk.features.engine import FeatureEngine


def _decimal(value: Any) -> Decimal:
    value = known(value)
    return Decimal("0") if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def sub_score(pd_dim: float) -> Decimal:
    """A dimension's sub-score on the decision's 0..100 scale: 100 × (1 − the dimension's PD)."""
    return Decimal(str(round(100.0 * (1.0 - float(pd_dim)), 1)))


def to_assessment(enterprise_id: int, row: Mapping[str, Any], feats: Mapping[str, Any], consent_ok: bool,
                  as_of: datetime, revenue_per_kwh: Mapping[str, float], model: str | None = None) -> RiskAssessment:
    """The decision's input from a rating row (`pd`, `grade`, `<dim>_pd`, `reason_i[_zh|_en]`) and
    the enterprise's features as the lender may see them (withheld ones are None); `model` (the
    model id, or "bootstrap-v<N>") is kept among the assessment's features."""
    reasons = tuple(Reason(code=str(row[f"reason_{i}"]), zh=str(row[f"reason_{i}_zh"]), en=str(row[f"reason_{i}_en"]))
                    for i in range(1, 4) if known(row.get(f"reason_{i}")))  # NaN: no reason
    coverage = known(feats.get("a_device_coverage_7d"))
    energy_30d = known(feats.get("a_energy_kwh_30d"))
    per_kwh = revenue_per_kwh.get(str(feats.get("e_sector")), revenue_per_kwh.get("", 0.0))
    capacity = 0.0 if energy_30d is None else float(energy_30d) / 30 * 365 * per_kwh
    return RiskAssessment(
        enterprise_id=enterprise_id, grade=str(row["grade"]), pd=Decimal(str(round(float(row["pd"]), 6))),
        # a dimension the model has no feature in (too little data when it was trained): the combined PD
        sub_scores={dim: sub_score(row.get(f"{dim}_pd", row["pd"])) for dim in ("entity", "asset", "transaction")},
        features={"device_coverage": 0.0 if coverage is None else float(coverage),
                  # days with device data in the last year, as far as this lender may see (withheld: 0)
                  "history_days": int(known(feats.get("a_telemetry_days_365d")) or 0),
                  "litigation_count": int(known(feats.get("e_litigation_count")) or 0),
                  "blacklisted": False} | ({"model": model} if model else {}),
        reasons=reasons, consent_ok=consent_ok, as_of=as_of,
        # IoT-verified collateral: weighed stock and counted livestock, each after its haircut
        collateral_value=_decimal(feats.get("a_collateral_value")) + _decimal(feats.get("a_livestock_value")),
        trade_volume_12m=_decimal(feats.get("t_sales_90d")) * 4,  # the last quarter, annualised
        capacity_revenue_12m=_decimal(capacity),
    )


class OnlineAssessor:
    """`assessor(enterprise_id, lender)` → RiskAssessment as of today's business date (or `on`).
    The model is loaded (and its files verified) once."""

    def __init__(self, features: FeatureEngine, model_dir: Path, clock: Callable[[], datetime] = utc_now,
                 version_dir: Path | None = None):
        from iotfin.risk import load_model  # lazy: the risk engine brings pandas and LightGBM

        self.features = features
        self.model = load_model(version_dir or model_dir)  # the champion's folder, or LATEST
        self.revenue_per_kwh = load_revenue_per_kwh(model_dir)
        self.clock = clock

    def __call__(self, enterprise_id: int, lender: str, on: date | None = None) -> RiskAssessment:
        from iotfin.risk.features.engine import (
            features_for,  # lazy: the risk engine brings pandas and LightGBM
        )
        from iotfin.risk.scoring import score_row  # lazy: the risk engine brings pandas and LightGBM

        on = on or business_date(self.clock())
        got = features_for(self.features, enterprise_id, on, lender)  # NotFound: not in the snapshot of `on`
        row = score_row(self.model, got["features"])
        return to_assessment(enterprise_id, row, got["features"], consent_ok(got["withheld"]),
                             datetime.combine(on, time(23, 59, 59), tzinfo=UTC), self.revenue_per_kwh,
                             model=self.model.model_id)


class BootstrapAssessor:
    """The risk engine before a trained model is champion: the active bootstrap scorecard
    (`iotfin.risk.bootstrap`) over the same online feature snapshot, within the lender's consent,
    mapped to the same `RiskAssessment` (model id "bootstrap-v<N>")."""

    def __init__(self, features: FeatureEngine, version: int, card: Any, clock: Callable[[], datetime] = utc_now):
        self.features = features
        self.version = version
        self.card = card
        self.clock = clock

    @property
    def model_id(self) -> str:
        from iotfin.risk.bootstrap import model_id  # lazy: as the module's other risk imports

        return model_id(self.version)

    def rate(self, enterprise_id: int, lender: str, on: date | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the flat rating row, the features as `features_for` gives them) of one enterprise."""
        from iotfin.risk.bootstrap import score  # lazy: as the module's other risk imports
        from iotfin.risk.features.engine import features_for  # lazy: DuckDB and pyarrow

        on = on or business_date(self.clock())
        got = features_for(self.features, enterprise_id, on, lender)  # NotFound: not in the snapshot of `on`
        return score(self.card, got["features"]), got

    def __call__(self, enterprise_id: int, lender: str, on: date | None = None) -> RiskAssessment:
        on = on or business_date(self.clock())
        row, got = self.rate(enterprise_id, lender, on)
        return to_assessment(enterprise_id, row, got["features"], consent_ok(got["withheld"]),
                             datetime.combine(on, time(23, 59, 59), tzinfo=UTC), self.card.revenue_per_kwh,
                             model=self.model_id)
