"""A throw-away PostgreSQL server for tests: Debian's ``postgresql`` binaries (installed by
``scripts/setup.sh --test``), a cluster in a temporary folder, loopback only, no fsync.

PostgreSQL refuses to run as root, so under root (CI, containers) the server runs as the
``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_GLOB = "/usr/lib/postgresql/*/bin"
DATABASE = "whisper_test"
SERVER_USER = "postgres"
START_TIMEOUT_SECONDS = 60


def pg_bin() -> Path | None:
    candidates = sorted(Path("/").glob(PG_GLOB.lstrip("/")), key=lambda p: p.parent.name)
    if candidates:
        return candidates[-1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield a SQLAlchemy URL of an empty database on it."""
    binaries = pg_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh --test installs it)")
    base = Path(tempfile.mkdtemp(prefix="whisper-it-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", SERVER_USER, "--"] if as_root else []
    if as_root:
        shutil.chown(base, SERVER_USER)
    data, log = base / "data", base / "server.log"
    port = _free_port()

    def run(*command: str) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", SERVER_USER,
            "-E", "UTF8", "--no-sync")  # fmt: skip
        options = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log),
            "-w", "-t", str(START_TIMEOUT_SECONDS), "start")  # fmt: skip
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user=SERVER_USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        yield f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        with contextlib.suppress(Exception):
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """An empty database ``name`` on the server of ``server_url``; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True
    ) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return url.set(database=name).render_as_string(hide_password=False)


_names = itertools.count()


def backend_url(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> str:
    """For a fixture parametrised ``["sqlite", "postgresql"]``: a fresh SQLite file, or a
    fresh database on the session's PostgreSQL server (the ``postgres_url`` fixture)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return fresh_database(request.getfixturevalue("postgres_url"), f"{prefix}_{next(_names)}")
