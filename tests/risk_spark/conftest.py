"""A real local[2] Spark (real JVM) over the small economy of tests/risk_features, shared by the session."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.risk_features.conftest import LAST_DAY, Economy, economy  # noqa: F401 - the shared economy fixture
from tests.services import missing_service

MASTER = "local[2]"


@pytest.fixture(scope="session")
def spark():  # noqa: ANN201
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing_service("PySpark (pip install -e '.[spark]')")
    if shutil.which("java") is None and not Path(os.environ.get("JAVA_HOME", "/nonexistent"), "bin/java").exists():
        missing_service("java (Debian openjdk-17-jre-headless)")
    from iotfin.risk.spark import spark_session

    session = spark_session(MASTER)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def model_dir(economy: Economy, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """An enterprise three-dimension model (scorecard + LightGBM challenger) over the catalogue's
    features. The economy is too small to default, so the label is drawn (seeded) from a known risk
    structure: the model is the instrument of the test, not its subject."""
    from iotfin.risk import TrainConfig, train_enterprise_model
    from iotfin.risk.features import CATALOGUE, training_set

    ws = economy.workspace()
    try:
        frame = training_set(ws.features, economy.ds, [LAST_DAY - timedelta(days=k) for k in (0, 5, 10, 15, 20)],
                             horizon_days=60).to_pandas()
    finally:
        ws.close()
    rng = np.random.default_rng(7)
    z = (-1.5 + 3.0 * (0.9 - frame["a_operating_rate_30d"].fillna(0.5))
         + 2.0 * frame["t_overdue_share_180d"].fillna(0.2) - 0.1 * frame["e_age_years"].fillna(5))
    frame["default"] = (rng.random(len(frame)) < 1 / (1 + np.exp(-z))).astype(int)
    folder = tmp_path_factory.mktemp("spark-model") / "enterprise"
    train_enterprise_model(frame.drop(columns=["enterprise_id"]), "default", {f.name: f.dimension for f in CATALOGUE},
                           folder, labels={f.name: {"zh": f.zh, "en": f.en} for f in CATALOGUE},
                           date_col="as_of", config=TrainConfig(report=False))
    return folder
