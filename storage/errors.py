"""Typed errors of the storage layer (the audio store has its own in ``audio_store``)."""

from __future__ import annotations

from typing import Any


class StorageError(Exception):
    """Base class of storage errors."""


class NotFoundError(StorageError, LookupError):
    """A row that should exist does not (deleted by /forget, or a wrong id)."""


class InvalidValueError(StorageError, ValueError):
    """A value the schema would accept but the domain does not (unknown kind, empty text)."""


class InvalidStateError(StorageError):
    """An operation that does not fit the row's current status (finishing a done job)."""


def require(row: Any, what: str, key: object) -> Any:
    """``row``, or ``NotFoundError`` naming what was looked up."""
    if row is None:
        raise NotFoundError(f"{what} {key} does not exist")
    return row
