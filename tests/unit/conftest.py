"""Fixtures the unit tier shares: a migrated database (a fresh SQLite file, or the opt-in
PostgreSQL one of tests/support/databases.py) and an audio store, both under tmp_path, and
``cli``: the whisper-it command line run in-process on a fresh data folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.cli import main as cli_main
from storage.audio_store import AudioStore
from storage.unit_of_work import Database
from tests.support.cli_commands import CliResult
from tests.support.databases import database_url


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(database_url(tmp_path))
    yield database
    database.close()


@pytest.fixture
def store(tmp_path: Path) -> AudioStore:
    return AudioStore(tmp_path / "audio")


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliResult]:
    """``cli("samples", "stats")``: its exit status (2 for a wrong command line), stdout and
    stderr, with no WHISPER_IT_ setting but a data folder under tmp_path."""
    for key in [key for key in os.environ if key.startswith("WHISPER_IT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WHISPER_IT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        try:
            code = cli_main(list(argv))
        except SystemExit as exc:  # argparse: a wrong command line
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
