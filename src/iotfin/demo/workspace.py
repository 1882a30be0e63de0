"""The demo's workspace: a folder rebuilt on every run, always on the embedded default."""

from __future__ import annotations

import shutil
from pathlib import Path

from iotfin.app.workspace import Workspace
from iotfin.core.errors import ConfigError
from iotfin.core.settings import Settings

MARKER = ".iotfin-demo-workspace"


def fresh_workspace(path: Path) -> Workspace:
    """Recreate the demo workspace. Refuses to delete a non-empty folder it did not create."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise ConfigError(f"--workspace: {path} is not empty and is not a demo workspace; choose another folder")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("created by `iotfin demo`; deleted and rebuilt on every run\n")
    # The demo always runs on the embedded default, whatever IOTFIN_DATABASE_URL says.
    settings = Settings(data_dir=path, database_url=f"sqlite:///{(path / 'iotfin.db').resolve()}",
                        telemetry_dir=path / "telemetry")
    return Workspace(settings)
