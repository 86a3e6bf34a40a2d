"""Engine and session factories. Called once per process at the composition root.

SQLite is set up for two processes sharing one file (the bot and the trainer):

- WAL journal, so readers never block the writer;
- a busy timeout, so a writer waits for the other's lock instead of failing at once;
- write transactions start with ``BEGIN IMMEDIATE``. With the default deferred BEGIN a
  transaction that reads and then writes can fail at once with "database is locked"
  when the other process wrote in between (SQLite cannot wait for a stale snapshot);
  taking the write lock up front makes it wait on the busy timeout instead;
- foreign keys enforced (SQLite ignores them unless asked, per connection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_BUSY_TIMEOUT_S = 30.0
# A PostgreSQL server that accepts TCP but does not answer (hung, or a proxy whose backend
# died) fails a connection after this long, not after libpq's minutes.
POSTGRES_CONNECT_TIMEOUT_S = 5
# What a SQLite write-ahead log is truncated to after a checkpoint.
SQLITE_WAL_SIZE_LIMIT_BYTES = 64 * 2**20
# Execution option read by the BEGIN hook: a read-only unit of work takes no write lock.
READ_ONLY_OPTION = "whisper_it_read_only"
# SQLite database names that are no file.
SQLITE_MEMORY = (None, "", ":memory:")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for in-memory SQLite, a ``file:`` URI (its path
    is SQLite's to parse) or another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in SQLITE_MEMORY:
        return None
    if parsed.query.get("uri"):
        return None
    return Path(str(parsed.database)).expanduser()


def create_engine_for(
    url: str,
    *,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    foreign_keys: bool = True,
    echo: bool = False,
) -> Engine:
    """An engine for ``url`` (SQLite file, in-memory SQLite, or PostgreSQL).

    ``foreign_keys=False`` is for migrations only: SQLite batch migrations recreate
    tables, and dropping a referenced table with enforcement on would cascade deletes.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        # Sessions move between threads (asyncio.to_thread); each is used by one at a time.
        connect_args={"check_same_thread": False},
    )
    _configure_sqlite(engine, busy_timeout_ms=int(busy_timeout_s * 1000), foreign_keys=foreign_keys)
    return engine


def _enable_wal(cursor: Any, *, timeout_s: float) -> None:
    """Switch to WAL (persistent in the file). SQLite does not apply the busy timeout to
    this switch, so two processes opening a fresh database at once must retry."""
    import sqlite3
    import time

    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int, foreign_keys: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            _enable_wal(cursor, timeout_s=busy_timeout_ms / 1000)
            # NORMAL is durable across application crashes in WAL mode and much faster.
            cursor.execute("PRAGMA synchronous = NORMAL")
            # A WAL that grew during a long read is cut back to this after checkpoints
            # (by default it keeps its largest size for as long as the database is open).
            cursor.execute(f"PRAGMA journal_size_limit = {SQLITE_WAL_SIZE_LIMIT_BYTES}")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: the bot formats replies from them.
    return sessionmaker(bind=engine, expire_on_commit=False)
