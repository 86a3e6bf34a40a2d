"""One transaction, owned by the caller: repositories flush, only the caller commits."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from storage.engine import READ_ONLY_OPTION, create_engine_for, make_session_factory


def lock_until_end(session: Session, key: int) -> None:
    """Run this transaction's remaining work one at a time with every other transaction
    that takes ``key``: on PostgreSQL an advisory lock held until commit or rollback; on
    SQLite nothing, as a write unit of work (``BEGIN IMMEDIATE``) already excludes every
    other writer. For check-then-insert steps that READ COMMITTED cannot protect (a count
    cannot lock the rows another transaction is about to insert)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


class UnitOfWork:
    """``with UnitOfWork(factory) as uow: repo(uow.session, ...); uow.commit()``.

    Leaving the block without ``commit()`` (or with an exception) rolls everything back.
    ``read_only=True`` takes no write lock on SQLite: use it for queries only.
    """

    def __init__(self, session_factory: sessionmaker[Session], *, read_only: bool = False) -> None:
        self._session_factory = session_factory
        self._read_only = read_only
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use it in a `with` block")
        return self._session

    def __enter__(self) -> Self:
        if self._read_only:
            # Every transaction of this session then carries the option the SQLite BEGIN
            # hook reads (a plain execution option would only reach the first one).
            bind = self._session_factory.kw["bind"]
            self._session = self._session_factory(
                bind=bind.execution_options(**{READ_ONLY_OPTION: True})
            )
        else:
            self._session = self._session_factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed; unlike rollback() it leaves the
        # objects already loaded readable (detached), which callers format replies from.
        self.session.close()
        self._session = None

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()


class SchemaNotAtHead(Exception):
    """The database's schema is not the newest revision, and the caller may not migrate."""

    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(f"schema at {current or 'base'}, the code's is {head}")
        self.current = current  # None: an empty database
        self.head = head


class Database:
    """The engine and session factory of one process, made once at its composition root."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory = make_session_factory(engine)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, require_head: bool = False) -> Database:
        """Connect to ``url``, first upgrading the schema to the latest revision if asked
        (the bot, the worker, the trainer and the commands that write). ``require_head``
        without ``migrate`` (the commands that read): raise ``SchemaNotAtHead`` instead of
        touching a schema at another revision (one an operator downgraded on purpose)."""
        if migrate:
            from storage.migrations import upgrade

            upgrade(url)
        elif require_head:
            from storage.migrations import current, head

            found, newest = current(url), head()
            if found != newest:
                raise SchemaNotAtHead(found, newest)
        return cls(create_engine_for(url))

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(self.session_factory, read_only=read_only)

    def close(self) -> None:
        self.engine.dispose()
