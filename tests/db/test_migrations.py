"""Migrations apply, reverse and match the models on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from iotfin.app.schema import metadata
from iotfin.db import migrate
from iotfin.db.engine import make_engine

CORE_TABLES = {"tenants", "enterprises", "sites", "supply_chains", "chain_members", "relationships",
               "trade_documents", "device_profiles", "devices"}


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    assert migrate.upgrade(engine) == migrate.head_revision()
    assert CORE_TABLES <= set(inspect(engine).get_table_names())
    assert migrate.downgrade(engine, "base") is None
    assert not CORE_TABLES & set(inspect(engine).get_table_names())
    assert migrate.upgrade(engine) == migrate.head_revision()
    engine.dispose()


def test_migrations_match_models(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    engine.dispose()


def test_cli_db_upgrade_on_url(db_url: str, tmp_path) -> None:  # noqa: ANN001
    result = subprocess.run(
        [sys.executable, "-m", "iotfin", "db", "upgrade", "--url", db_url, "--data-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f'"revision":"{migrate.head_revision()}"' in result.stdout
    again = subprocess.run(
        [sys.executable, "-m", "iotfin", "db", "current", "--url", db_url, "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0, again.stderr
    head = migrate.head_revision()
    assert f'"current":"{head}","head":"{head}"' in again.stdout


def test_bad_database_url_is_one_clear_line(tmp_path) -> None:  # noqa: ANN001
    result = subprocess.run(
        [sys.executable, "-m", "iotfin", "db", "upgrade", "--url", "mysql://x/y", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iotfin: error: IOTFIN_DATABASE_URL")
