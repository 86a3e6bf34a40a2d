"""The database a storage test runs on: a fresh SQLite file, or an opt-in PostgreSQL one."""

from __future__ import annotations

import os
from pathlib import Path

from storage import migrations

POSTGRES_URL_VARIABLE = "WHISPER_IT_TEST_DATABASE_URL"


def database_url(tmp_path: Path) -> str:
    """A fresh SQLite file, or the emptied opt-in PostgreSQL database."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        return f"sqlite:///{tmp_path / 'whisper-it.sqlite3'}"
    migrations.downgrade(url, "base")
    return url
