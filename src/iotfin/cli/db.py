"""`iotfin db …`: migrations of the system of record."""

from __future__ import annotations

from typing import Annotated

import typer

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt

db_app = typer.Typer(help="System of record: migrations.", no_args_is_help=True)



@db_app.command("upgrade")
def db_upgrade(
    revision: str = "head",
    url: Annotated[str | None, typer.Option(help="Database URL (default IOTFIN_DATABASE_URL or SQLite).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply migrations (SQLite or PostgreSQL) and seed the standard device profiles."""
    ws = kit.workspace(data_dir, database_url=url)
    if revision == "head":
        current = ws.initialise()
    else:
        from iotfin.db import migrate  # lazy: the command line starts without it

        current = migrate.upgrade(ws.engine, revision)
    safe_url = ws.engine.url.render_as_string(hide_password=True)
    kit.emit({"revision": current, "database": safe_url}, as_json,
          lambda d: kit.out.print(f"database {d['database']} at revision {d['revision']}"))


@db_app.command("current")
def db_current(url: Annotated[str | None, typer.Option()] = None, data_dir: DataDirOpt = None,
               as_json: JsonOpt = False) -> None:
    """Show the applied and the latest migration."""
    from iotfin.db import migrate  # lazy: the command line starts without it
    from iotfin.db.engine import make_engine  # lazy: the command line starts without it

    engine = make_engine(kit.settings(data_dir, url).resolved_database_url)
    data = {"current": migrate.current_revision(engine), "head": migrate.head_revision()}
    kit.emit(data, as_json, lambda d: kit.out.print(f"current {d['current']} / head {d['head']}"))
