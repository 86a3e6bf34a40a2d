"""Real Alembic migrations on real SQLite files: up, down, and no drift from the models."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import alembic.command as command
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from storage import migrations
from storage.engine import SQLITE_WAL_SIZE_LIMIT_BYTES, create_engine_for
from storage.models import Base
from storage.unit_of_work import Database
from tests.support.databases import database_url

TABLES = {
    "users",
    "transcriptions",
    "reply_messages",
    "corrections",
    "jobs",
    "training_runs",
    "model_versions",
    "evaluations",
    "installation_secrets",
    "chat_settings",
    "vocabulary_words",
}


# Opt-in: run the repository tests against a PostgreSQL database (emptied each test), e.g.
# WHISPER_IT_TEST_DATABASE_URL=postgresql+psycopg://user@127.0.0.1:5432/whisper_test


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'whisper-it.sqlite3'}"


def _tables(url: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_head_then_downgrade_base(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    assert migrations.current(url) is None
    migrations.upgrade(url)
    assert migrations.current(url) == migrations.head()
    assert _tables(url) == TABLES
    migrations.upgrade(url)  # idempotent: the bot and the trainer both upgrade at start
    migrations.downgrade(url, "base")
    assert migrations.current(url) is None
    assert _tables(url) == set()
    migrations.upgrade(url)
    assert _tables(url) == TABLES


def test_another_applications_database_is_not_migrated(tmp_path: Path) -> None:
    """A database with tables and no revision of ours (a mistyped URL): our tables are not
    mixed into its schema, even where no name clashes."""
    import sqlite3

    path = tmp_path / "other-app.sqlite3"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    url = f"sqlite:///{path}"
    with pytest.raises(migrations.ForeignDatabaseError, match="invoices"):
        migrations.upgrade(url)
    assert _tables(url) == {"invoices"}


def test_models_match_migrations(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    migrations.upgrade(url)
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_sqlite_connections_are_set_up_for_two_processes(tmp_path: Path) -> None:
    engine = create_engine_for(_url(tmp_path))
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() >= 10_000
            # Months of running: the log is cut back after checkpoints (default: never).
            limit = pragma("PRAGMA journal_size_limit").scalar()
            assert limit == SQLITE_WAL_SIZE_LIMIT_BYTES
    finally:
        engine.dispose()


def test_postgresql_schema_renders_offline() -> None:
    """The same migration produces PostgreSQL DDL (checked without a server)."""
    config = migrations.alembic_config("postgresql+psycopg://user:p%40ss@localhost/whisper")
    output = io.StringIO()
    config.output_buffer = output
    with redirect_stdout(output):
        command.upgrade(config, "head", sql=True)
    sql = output.getvalue()
    assert "CREATE TABLE transcriptions" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert "ON DELETE CASCADE" in sql


def test_database_open_migrates(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    database = Database.open(url)
    try:
        assert migrations.current(url) == migrations.head()
    finally:
        database.close()


def test_missing_script_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "SCRIPT_LOCATIONS", (tmp_path / "nowhere",))
    with pytest.raises(migrations.MigrationError):
        migrations.upgrade(_url(tmp_path))
