from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from tests.services import PostgresServer, start_postgres

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (`make test`: -n auto --dist loadgroup), a test module runs on one worker, so its
    module-scoped fixtures are built once; the console's modules share one group, as they share one
    seeded server (a session fixture, built once per worker)."""
    console = REPO_ROOT / "tests" / "console"
    for item in items:
        path = Path(str(item.fspath))
        group = "console" if path.is_relative_to(console) else str(path.relative_to(REPO_ROOT))
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'iotfin.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.url_for(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def workspace(db_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """An initialised workspace on each backend."""
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=db_url))
    ws.initialise()
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """An initialised SQLite workspace, for tests whose subject does not depend on the backend (long
    day-by-day lending runs, decisioning's service logic); their SQL runs on both backends elsewhere."""
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=f"sqlite:///{tmp_path / 'iotfin.db'}"))
    ws.initialise()
    try:
        yield ws
    finally:
        ws.close()
