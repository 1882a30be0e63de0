"""What every `iotfin` command shares: output (tables or one JSON object), progress bars, the option
types, and the workspace a command works on.

The workspace is built by the composition root (`iotfin.app`), which registers its opener here at
start-up (`use_workspace`): commands sit below the composition root and never import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotfin.core.errors import ConfigError, ValidationError
from iotfin.core.jsonout import dumps
from iotfin.core.settings import Settings, load_settings

console = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Workspace folder (IOTFIN_DATA_DIR).")]

_opener: Callable[[Settings], Any] | None = None


def use_workspace(opener: Callable[[Settings], Any]) -> None:
    """Called once by the composition root: how a command gets its workspace from settings."""
    global _opener
    _opener = opener


def settings(data_dir: Path | None = None, database_url: str | None = None) -> Settings:
    return load_settings(data_dir=data_dir, database_url=database_url)


def workspace(data_dir: Path | None = None, schema: bool = False, database_url: str | None = None) -> Any:
    """The workspace (`iotfin.app.workspace.Workspace`: its services by context); with schema=True, refuse (exit 78) a database not migrated to the code's head."""
    if _opener is None:
        raise RuntimeError("no workspace opener: the command line must be started by iotfin.main")
    ws = _opener(settings(data_dir, database_url))
    if schema:
        from iotfin.db import migrate  # lazy: Alembic is only needed here

        current, head = migrate.current_revision(ws.engine), migrate.head_revision()
        if current != head:
            raise ConfigError(f"database is at schema revision {current or 'none'}, the code needs {head}: "
                              "run `iotfin db upgrade`")
    return ws


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """One JSON object on stdout with --json, else the human rendering."""
    if as_json:
        print(dumps(data))
    else:
        render(data)


@contextmanager
def progress(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by (stage, done, total) callbacks; silent when not a terminal or disabled."""
    bar = Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=not enabled, transient=False)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


def kv_table(title: str, data: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in data.items():
        table.add_row(str(key), value if isinstance(value, str) else dumps(value))
    return table


def show(title: str, data: Any, as_json: bool) -> None:
    """A record as a key/value table (or JSON)."""
    emit(data, as_json, lambda d: out.print(kv_table(title, d)))


def aware_time(text: str, name: str, example: str) -> datetime:
    """An ISO 8601 time with its UTC offset (`--name`); a naive time is refused, not guessed."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"--{name}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise ValidationError(f"--{name}: needs a UTC offset, e.g. {example}")
    return value
