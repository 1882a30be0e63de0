"""The demo's workspace: a folder (and, on PostgreSQL, a database) rebuilt on every run."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import inspect, text

from iotfin.app.workspace import Workspace
from iotfin.core.errors import ConfigError
from iotfin.core.settings import Settings
from iotfin.db.engine import make_engine

MARKER = ".iotfin-demo-workspace"
# A PostgreSQL database the demo built carries this table; the demo wipes only such a database.
PG_MARKER_TABLE = "iotfin_demo_marker"


def fresh_workspace(path: Path, database_url: str | None = None) -> Workspace:
    """Recreate the demo workspace. Refuses to delete a non-empty folder, or a non-empty PostgreSQL
    database, it did not create. Without `database_url` the demo runs on the embedded default (SQLite
    in the folder), whatever IOTFIN_DATABASE_URL says; the CLI passes the URL it was given."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise ConfigError(f"--workspace: {path} is not empty and is not a demo workspace; choose another folder")
        shutil.rmtree(path)
    if database_url is not None and database_url.startswith("postgresql"):
        _fresh_postgres(database_url)
    elif database_url is not None and not database_url.startswith("sqlite"):
        raise ConfigError(f"--database-url: must be a sqlite:/// or postgresql+psycopg:// URL (got {database_url!r})")
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("created by `iotfin demo`; deleted and rebuilt on every run\n")
    url = database_url or f"sqlite:///{(path / 'iotfin.db').resolve()}"
    settings = Settings(data_dir=path, database_url=url, telemetry_dir=path / "telemetry")
    return Workspace(settings)


def _fresh_postgres(url: str) -> None:
    """Empty the demo's PostgreSQL database: only if it is empty already or the demo made it."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            tables = set(inspect(conn).get_table_names())
            if tables and PG_MARKER_TABLE not in tables:
                raise ConfigError("--database-url: the database is not empty and was not created by `iotfin demo`; "
                                  "give the demo an empty database of its own")
            if tables:  # a previous demo run: drop everything it made, in one transaction
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            conn.execute(text(f"CREATE TABLE {PG_MARKER_TABLE} (note text NOT NULL)"))
            conn.execute(text(f"INSERT INTO {PG_MARKER_TABLE} VALUES ('created by iotfin demo; rebuilt on every run')"))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any connection failure: one clear line
        raise ConfigError(f"--database-url: cannot prepare the demo database: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
