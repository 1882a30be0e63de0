"""The risk input contract: what the risk engine says about an enterprise (grade, PD, sub-scores,
features, reasons, consent) plus the inputs the limits need (IoT-verified collateral value, trade
volume, electricity-derived capacity)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.core.money import to_money
from iotfin.decision.reasons import Reason
from iotfin.decision.values import ONE, ZERO, plain, to_int, to_rate

GRADES: tuple[str, ...] = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C")
SUB_SCORES: tuple[str, ...] = ("entity", "asset", "transaction")


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """What the risk engine says about one enterprise, as of a time (the decision's risk input).

    `features` carries what the admission rules read; the keys the default strategy uses are
    `device_coverage` (share of the enterprise's expected devices reporting, 0..1), `history_days`
    (days of trusted device data), `litigation_count` and `blacklisted`. Sub-scores are 0..100.
    `collateral_value` is the IoT-verified value of pledged assets (stock weighed by load cells,
    sealed warehouse receipts, tracked vehicles); `trade_volume_12m` the verified trade volume of the
    last 12 months; `capacity_revenue_12m` the revenue the enterprise's electricity use supports.
    """

    enterprise_id: int
    grade: str
    pd: Decimal
    sub_scores: Mapping[str, Decimal]
    features: Mapping[str, Any]
    reasons: tuple[Reason, ...]
    consent_ok: bool
    as_of: datetime
    collateral_value: Decimal = ZERO
    trade_volume_12m: Decimal = ZERO
    capacity_revenue_12m: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.grade not in GRADES:
            raise ValidationError(f"assessment.grade: {self.grade!r} is not one of {', '.join(GRADES)}")
        if not ZERO <= self.pd <= ONE:
            raise ValidationError(f"assessment.pd: must be between 0 and 1, got {self.pd}")
        missing = [k for k in SUB_SCORES if k not in self.sub_scores]
        if missing:
            raise ValidationError(f"assessment.sub_scores: missing {', '.join(missing)}")
        if self.as_of.tzinfo is None:
            raise ValidationError("assessment.as_of: must be timezone-aware")
        for name in ("collateral_value", "trade_volume_12m", "capacity_revenue_12m"):
            if getattr(self, name) < 0:
                raise ValidationError(f"assessment.{name}: must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {"enterprise_id": self.enterprise_id, "grade": self.grade, "pd": str(self.pd),
                "sub_scores": {k: str(v) for k, v in self.sub_scores.items()},
                "features": plain(dict(self.features)), "reasons": [r.to_json() for r in self.reasons],
                "consent_ok": self.consent_ok, "as_of": self.as_of.isoformat(),
                "collateral_value": str(self.collateral_value), "trade_volume_12m": str(self.trade_volume_12m),
                "capacity_revenue_12m": str(self.capacity_revenue_12m)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RiskAssessment:
        if not isinstance(data, Mapping):
            raise ValidationError("assessment: must be an object")
        try:
            as_of = data["as_of"]
            as_of = as_of if isinstance(as_of, datetime) else datetime.fromisoformat(str(as_of).replace("Z", "+00:00"))
            return cls(
                enterprise_id=to_int(data["enterprise_id"], "assessment.enterprise_id"),
                grade=str(data["grade"]),
                pd=to_rate(data["pd"], "assessment.pd"),
                sub_scores={str(k): to_rate(v, f"assessment.sub_scores.{k}") for k, v in dict(data["sub_scores"]).items()},
                features={str(k): _feature(v) for k, v in dict(data.get("features") or {}).items()},
                reasons=tuple(Reason.from_json(r) for r in data.get("reasons") or ()),
                consent_ok=bool(data["consent_ok"]),
                as_of=as_of,
                collateral_value=to_money(data.get("collateral_value", "0")),
                trade_volume_12m=to_money(data.get("trade_volume_12m", "0")),
                capacity_revenue_12m=to_money(data.get("capacity_revenue_12m", "0")),
            )
        except KeyError as exc:
            raise ValidationError(f"assessment: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"assessment: {exc}") from None


_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _feature(value: Any) -> Any:
    """Features travel as JSON; decimal strings ("0.95") come back as Decimals, as they left."""
    if isinstance(value, str) and _NUMBER.match(value):
        return Decimal(value)
    return value
