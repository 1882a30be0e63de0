"""A wrong setting stops the CLI at start with one line naming it, and exit code 78."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _iotfin(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")}
    return subprocess.run([sys.executable, "-m", "iotfin", *args], capture_output=True, text=True, timeout=120,
                          env=clean | env, cwd=cwd)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"IOTFIN_HTTP_PORT": "70000"}, "IOTFIN_HTTP_PORT"),
        ({"IOTFIN_LOG_LEVEL": "LOUD"}, "IOTFIN_LOG_LEVEL"),
        ({"IOTFIN_DATABASE_URL": "mysql://x@y/z"}, "IOTFIN_DATABASE_URL"),
        ({"IOTFIN_CONFIG": "/nonexistent/iotfin.toml"}, "IOTFIN_CONFIG"),
    ],
)
def test_bad_setting_is_one_line_naming_it(tmp_path: Path, env: dict[str, str], named: str) -> None:
    done = _iotfin(env, "db", "upgrade", "--json", cwd=tmp_path)
    assert done.returncode == 78, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert not (tmp_path / ".iotfin").exists()  # nothing was created on a bad start


def test_config_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "iotfin.toml").write_text('[iotfin]\ndata_dir = "from-file"\n')
    done = _iotfin({}, "db", "upgrade", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "from-file" / "iotfin.db").exists()
    done = _iotfin({"IOTFIN_DATA_DIR": str(tmp_path / "from-env")}, "db", "upgrade", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "from-env" / "iotfin.db").exists()  # environment beats the file
