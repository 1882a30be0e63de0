from __future__ import annotations

from pathlib import Path

import pytest

from iotfin.risk import TrainConfig, load_model, train, train_enterprise_model
from tests.risk.synth import DIMENSIONS, LABELS, enterprises

FAST = TrainConfig(report=False)


@pytest.fixture(scope="session")
def synth_train():
    return enterprises(4000, seed=1)


@pytest.fixture(scope="session")
def scorecard_model(tmp_path_factory: pytest.TempPathFactory, synth_train):  # noqa: ANN201
    folder: Path = tmp_path_factory.mktemp("models") / "generic"
    summary = train(synth_train, "default", folder, date_col="as_of", exclude=["enterprise_id"], catalogue=LABELS,
                    config=TrainConfig(report=True))
    return summary, load_model(folder)


@pytest.fixture(scope="session")
def enterprise_model(tmp_path_factory: pytest.TempPathFactory, synth_train):  # noqa: ANN201
    folder: Path = tmp_path_factory.mktemp("models") / "enterprise"
    summary = train_enterprise_model(synth_train, "default", DIMENSIONS, folder, labels=LABELS, config=FAST)
    return summary, load_model(folder)
