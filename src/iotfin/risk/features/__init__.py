"""Credit features: point-in-time, consent-scoped, defined once in the catalogue (see docs/features.md)."""

from iotfin.risk.features.catalogue import CATALOGUE, Feature
from iotfin.risk.features.engine import compute_features, features_for, load_commodity_prices, training_set

__all__ = ["CATALOGUE", "Feature", "compute_features", "features_for", "load_commodity_prices", "training_set"]
