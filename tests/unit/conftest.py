"""Fixtures the unit tier shares: a migrated database (a fresh SQLite file, or the opt-in
PostgreSQL one of tests/support/databases.py) and an audio store, both under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.audio_store import AudioStore
from storage.unit_of_work import Database
from tests.support.databases import database_url


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(database_url(tmp_path))
    yield database
    database.close()


@pytest.fixture
def store(tmp_path: Path) -> AudioStore:
    return AudioStore(tmp_path / "audio")
