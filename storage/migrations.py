"""Schema migrations with Alembic, configured in code (no ``alembic.ini`` needed).

The bot and the trainer call ``upgrade(url)`` at start; ``whisper-it db ...`` exposes
the same functions. The revision scripts are written in the repository's top-level
``alembic/`` folder; an installed distribution carries them as ``storage/_alembic``
(setup.py maps the folder there), and that copy is the one an installed package runs.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

# By dotted path: linters take ``from alembic import ...`` for a first-party import
# because of the repository's own alembic/ folder.
import alembic.command as command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import storage
from storage.engine import create_engine_for, sqlite_file

_PACKAGE_DIR = Path(storage.__file__).resolve().parent
# In order: inside an installed distribution (a wheel), then the source checkout (an
# editable install or a plain checkout, where storage/ sits beside the authoring folder).
# The installed copy comes first: beside an installed ``storage`` in site-packages,
# ``../alembic`` is the Alembic library itself.
SCRIPT_LOCATIONS = (_PACKAGE_DIR / "_alembic", _PACKAGE_DIR.parent / "alembic")
ENV_SCRIPT = "env.py"
VERSIONS_FOLDER = "versions"
# Config.attributes key env.py reads the database URL from.
URL_ATTRIBUTE = "database_url"


class MigrationError(Exception):
    """The migration scripts cannot be found or the database cannot be migrated."""


def script_location() -> Path:
    """The folder holding ``env.py`` and the revision scripts this installation runs."""
    for location in SCRIPT_LOCATIONS:
        if (location / ENV_SCRIPT).is_file() and (location / VERSIONS_FOLDER).is_dir():
            return location
    searched = ", ".join(str(location) for location in SCRIPT_LOCATIONS)
    raise MigrationError(f"no Alembic migration scripts (looked in {searched})")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # Through attributes, not the main options: those are ConfigParser values, where a
    # '%' in a password would be read as interpolation.
    config.attributes[URL_ATTRIBUTE] = database_url
    return config


class ForeignDatabaseError(MigrationError):
    """The database has tables but no whisper-it revision: another application's."""

    def __init__(self, tables: list[str]) -> None:
        super().__init__(f"it has tables but no whisper-it revision: {', '.join(tables)}")
        self.tables = tables  # the first few


def upgrade(database_url: str, revision: str = "head") -> None:
    with _one_migration_at_a_time(database_url):
        _refuse_foreign(database_url)
        command.upgrade(alembic_config(database_url), revision)


def _refuse_foreign(database_url: str) -> None:
    """A database with tables and no revision of ours belongs to someone else: creating our
    tables among theirs (a mistyped URL pointing at another application's database) would
    mix two schemas, so it is refused whatever their names."""
    from sqlalchemy import inspect

    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            if MigrationContext.configure(connection).get_current_revision() is not None:
                return
            # (alembic_version stays, empty, after a downgrade to base: that is ours.)
            tables = sorted(set(inspect(connection).get_table_names()) - {"alembic_version"})
    finally:
        engine.dispose()
    if tables:
        raise ForeignDatabaseError(tables[:5] + (["..."] if len(tables) > 5 else []))


def downgrade(database_url: str, revision: str = "-1") -> None:
    with _one_migration_at_a_time(database_url):
        command.downgrade(alembic_config(database_url), revision)


@contextlib.contextmanager
def _one_migration_at_a_time(database_url: str) -> Iterator[None]:
    """SQLite: an exclusive lock on a file beside the database for the whole migration.
    Alembic runs SQLite's (non-transactional) DDL one revision per transaction, from the
    revision it read at the start, so a second process starting at once re-ran a revision
    the first had just applied ("table ... already exists"). PostgreSQL: env.py's advisory
    lock holds the whole migration."""
    path = sqlite_file(database_url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f"{path.name}.migrating").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def current(database_url: str) -> str | None:
    """The database's revision (None for an empty database)."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    """The newest revision the code knows."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revision = script.get_current_head()
    if revision is None:
        raise MigrationError("no migration scripts")
    return revision


def make_revision(database_url: str, message: str, *, autogenerate: bool = True) -> None:
    """Developer helper: write a new revision script, autogenerated against ``database_url``
    (which must be at head): ``python -c 'from storage.migrations import make_revision; ...'``.
    """
    command.revision(alembic_config(database_url), message=message, autogenerate=autogenerate)
