from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from iotfin.core.settings import Settings
from iotfin.workspace import Workspace
from tests.openapi_world import World, build_world


@pytest.fixture
def world(workspace: Workspace) -> World:
    return build_world(workspace)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per module and backend, for the read-mostly matrix tests (argon2 hashing is slow on purpose)."""
    tmp: Path = tmp_path_factory.mktemp("world")
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'iotfin.db'}"
    else:
        server = request.getfixturevalue("postgres")
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.url_for(name)
    ws = Workspace(Settings(data_dir=tmp / "ws", database_url=url))
    ws.initialise()
    try:
        yield build_world(ws)
    finally:
        ws.close()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
