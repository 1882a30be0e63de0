"""Real services for tests, started from installed binaries on free ports.

With IOTFIN_REQUIRE_SERVICES=1 (set in CI) a missing binary fails the run instead of skipping.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


def require_services() -> bool:
    return os.environ.get("IOTFIN_REQUIRE_SERVICES") == "1"


def missing_service(what: str) -> None:
    message = f"{what} is not installed (install it, or run .ci/run); IOTFIN_REQUIRE_SERVICES=1 makes this fatal"
    if require_services():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str) -> str:
        """The URL of a new, empty database named `<prefix>_<random>` (left for the server's teardown)."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url_for(name)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -c fsync=on "
                f"-c max_connections=200 -c shared_buffers=128MB")
        self._run("pg_ctl", "-D", str(self.datadir), "-o", opts, "-l", str(self.datadir / "server.log"),
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.datadir.parent, ignore_errors=True)  # the mkdtemp root: ~50 MB a session otherwise


def start_postgres() -> PostgresServer:
    bindir = _pg_bindir()
    if bindir is None:
        missing_service("PostgreSQL server (Debian package postgresql)")
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
            run_as = "postgres"
        except KeyError:
            run_as = "nobody"
    root = Path(tempfile.mkdtemp(prefix="iotfin-pg-"))
    datadir = root / "data"
    datadir.mkdir()
    if run_as:
        os.chmod(root, 0o755)
        shutil.chown(datadir, user=run_as)
    server = PostgresServer(bindir, datadir, free_port(), run_as)
    server.start()
    return server
