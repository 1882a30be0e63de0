"""Credit risk: the model training toolkit (WoE scorecard + LightGBM challenger), scoring with grades
and reason codes, the enterprise three-dimension model, and monitoring. See docs/risk.md.

    from iotfin.risk import train, load_model, score_frame, score_one, train_enterprise_model, rate, monitor
"""

from iotfin.risk.models.bundle import RiskModel, load_model
from iotfin.risk.models.train import TrainConfig, train, train_enterprise_model
from iotfin.risk.monitoring import monitor
from iotfin.risk.scoring import rate, score_frame, score_one

__all__ = ["RiskModel", "TrainConfig", "load_model", "monitor", "rate", "score_frame", "score_one", "train",
           "train_enterprise_model"]
