"""Alembic environment. The database URL comes from ``storage.migrations.alembic_config``
(Config attributes) or, for the ``alembic`` command line, ``sqlalchemy.url``."""

from __future__ import annotations

import alembic.context as context

from storage.engine import create_engine_for, is_sqlite
from storage.migrations import URL_ATTRIBUTE
from storage.models import Base, UTCDateTime

# Arbitrary, fixed: the key of the PostgreSQL advisory lock held while migrating.
_MIGRATION_LOCK = 7_317_001
config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get(URL_ATTRIBUTE) or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: use storage.migrations or set sqlalchemy.url")
    return url


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Scripts must not import the models: render the stored type, not the decorator.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=is_sqlite(url),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _database_url()
    # Foreign keys off: SQLite batch operations recreate tables, and dropping a referenced
    # table with enforcement on would cascade deletes into its children.
    engine = create_engine_for(url, foreign_keys=False)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=is_sqlite(url),
                compare_type=True,
                render_item=_render_item,
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # The bot and the trainer both upgrade at start: one waits for the
                    # other. (On SQLite the BEGIN IMMEDIATE of the engine does this.)
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
