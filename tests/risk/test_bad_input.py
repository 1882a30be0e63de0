"""Issue 23: bad training data through `iotfin risk train` — one line naming the column (or the line),
exit code 65, and no model folder left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.risk.synth import enterprises
from tests.risk.test_cli import iotfin


def _refused(tmp_path: Path, csv: str, *needles: str, extra: tuple[str, ...] = ()) -> None:
    proc = iotfin("risk", "train", csv, "--target", "default", "--model", "out", "--exclude", "enterprise_id",
                  "--exclude", "as_of", "--no-anchor", *extra, cwd=tmp_path, ok=False)
    assert proc.returncode == 65, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return enterprises(400, seed=8)


@pytest.mark.parametrize("case", ["one_class", "constant", "all_missing", "text", "numbers_with_text", "ragged"])
def test_bad_training_data_is_refused_in_one_line(tmp_path: Path, base: pd.DataFrame, case: str) -> None:
    frame = base.copy()
    if case == "one_class":
        frame["default"] = 0
        frame.to_csv(tmp_path / "d.csv", index=False)
        _refused(tmp_path, "d.csv", "target 'default'", "exactly two classes")
    elif case == "constant":
        frame["region_code"] = 7
        frame.to_csv(tmp_path / "d.csv", index=False)
        _refused(tmp_path, "d.csv", "column 'region_code'", "constant")
    elif case == "all_missing":
        frame["meter_kwh"] = np.nan
        frame.to_csv(tmp_path / "d.csv", index=False)
        _refused(tmp_path, "d.csv", "column 'meter_kwh'", "all values missing")
    elif case == "text":
        frame["note"] = [f"visited on day {i}, owner friendly" for i in range(len(frame))]
        frame.to_csv(tmp_path / "d.csv", index=False)
        _refused(tmp_path, "d.csv", "column 'note'", "text or an identifier")
    elif case == "numbers_with_text":
        frame["dso_days"] = frame["dso_days"].astype(object)
        frame.loc[17, "dso_days"] = "n/a (ask)"
        frame.to_csv(tmp_path / "d.csv", index=False)
        _refused(tmp_path, "d.csv", "column 'dso_days'", "row 17", "n/a (ask)")
    else:
        frame.to_csv(tmp_path / "d.csv", index=False)
        lines = (tmp_path / "d.csv").read_text().splitlines()
        lines[9] += ",surplus"
        (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
        _refused(tmp_path, "d.csv", "d.csv", "line 10", "past the last column 'default'")


def test_unusable_columns_can_be_dropped_on_request(tmp_path: Path, base: pd.DataFrame) -> None:
    frame = base.copy()
    frame["region_code"] = 7
    frame.to_csv(tmp_path / "d.csv", index=False)
    proc = iotfin("risk", "train", "d.csv", "--target", "default", "--model", "out", "--exclude", "enterprise_id",
                  "--exclude", "as_of", "--no-anchor", "--drop-unusable", "--budget-s", "0", "--json", cwd=tmp_path)
    assert '"region_code"' in proc.stdout and (tmp_path / "out" / "LATEST").is_file()
