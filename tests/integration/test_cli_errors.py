"""Bad input never makes the CLI print a traceback: one line on stderr, exit status 1.

Every case runs ``whisper-it`` as a real process (``python -m bot``) from an unrelated
folder: paths too long for the file system, NUL bytes, folders given as files, files that
cannot be read, TSVs that are not UTF-8, audio whose samples are not numbers, settings that
are not valid. ``--verbose`` keeps the traceback, so real bugs stay visible. And a one-shot
command prints what was asked: library logs stay off stdout, and below WARNING unless
``--verbose``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bot.cli import MAX_QUOTED_CHARS, VERBOSE_HINT, describe_input_error, is_input_error

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 120
LONG_NAME = "a" * 10_000  # over any file system's NAME_MAX and PATH_MAX
NAN_SECONDS = 2
SAMPLE_RATE = 16_000
DATABASE_FILE = "whisper-it.sqlite3"
# The Italian line for a damaged file, after the database's (bounded) name.
DAMAGED = "il file è danneggiato o non è un database SQLite"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(tmp_path: Path, model_cache: Path):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    base_env = {
        key: value for key, value in os.environ.items() if not key.startswith("WHISPER_IT_")
    }
    base_env |= {
        "PYTHONPATH": str(REPO_ROOT),
        "WHISPER_IT_DATA_DIR": str(tmp_path / "data"),
        "WHISPER_IT_MODEL_CACHE_DIR": str(model_cache),
        "WHISPER_IT_OFFLINE": "true",
        "WHISPER_IT_TAGGER": "off",
    }

    def run(*argv: str, env: dict[str, str] | None = None) -> Result:
        completed = subprocess.run(
            [sys.executable, "-m", "bot", *argv],
            cwd=workdir,
            env=base_env | (env or {}),
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run


def assert_one_line(result: Result) -> str:
    assert "Traceback" not in result.err, result.err
    assert result.code == 1, result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("whisper-it: "), lines
    return lines[0]


@pytest.fixture
def nan_wav(tmp_path: Path) -> Path:
    path = tmp_path / "nan.wav"
    samples = np.full(NAN_SECONDS * SAMPLE_RATE, np.nan, dtype=np.float32)
    soundfile.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
    return path


def write_tsv(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- transcribe


def test_a_path_too_long_is_one_line(run) -> None:
    line = assert_one_line(run("transcribe", LONG_NAME))
    # The message quotes a bounded part of the path, not all 10,000 characters.
    assert len(line) < len(LONG_NAME)


def test_a_folder_given_as_a_file_is_one_line(run, tmp_path: Path) -> None:
    assert_one_line(run("transcribe", str(tmp_path)))


def test_a_path_through_a_file_is_one_line(run, nan_wav: Path) -> None:
    assert_one_line(run("transcribe", str(nan_wav / "inside.wav")))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_one_line(run, nan_wav: Path) -> None:
    nan_wav.chmod(0)
    assert_one_line(run("transcribe", str(nan_wav)))


@pytest.mark.slow  # loads the model before the audio is refused
def test_nan_audio_is_one_line(run, nan_wav: Path) -> None:
    assert_one_line(run("transcribe", str(nan_wav)))


# --------------------------------------------------------------------------- TSV input


@pytest.mark.parametrize("command", [("samples", "import"), ("evaluate",)])
def test_a_tsv_that_is_not_utf8_is_one_line(run, tmp_path: Path, command) -> None:
    tsv = tmp_path / "latin1.tsv"
    tsv.write_bytes("clip.wav\tperché è così\n".encode("latin-1"))
    assert_one_line(run(*command, str(tsv)))


@pytest.mark.parametrize("command", [("samples", "import"), ("evaluate",)])
def test_a_tsv_that_is_a_folder_is_one_line(run, tmp_path: Path, command) -> None:
    assert_one_line(run(*command, str(tmp_path)))


@pytest.mark.parametrize(
    "audio", ["clip\x00.wav", LONG_NAME + ".wav"], ids=["nul-byte", "name-too-long"]
)
def test_a_bad_path_inside_a_tsv_is_one_line(run, tmp_path: Path, audio: str) -> None:
    tsv = write_tsv(tmp_path / "bad.tsv", [f"{audio}\tciao a tutti"])
    assert_one_line(run("samples", "import", str(tsv)))


def test_nan_audio_in_samples_import_is_a_refused_row(run, tmp_path: Path, nan_wav: Path) -> None:
    """Import reports row by row (the others are still imported): the NaN row is refused."""
    tsv = write_tsv(tmp_path / "nan.tsv", [f"{nan_wav.name}\tciao a tutti"])
    result = run("samples", "import", str(tsv))
    assert "Traceback" not in result.err
    assert result.code == 1
    report = json.loads(result.out)
    assert (report["added"], report["failed"]) == (0, 1)
    assert [error["path"] for error in report["errors"]] == [nan_wav.name]


# --------------------------------------------------------------------------- settings


def test_a_data_dir_too_long_is_one_line(run) -> None:
    result = run("db", "upgrade", env={"WHISPER_IT_DATA_DIR": f"/tmp/{LONG_NAME}"})
    line = assert_one_line(result)
    assert "nome di file troppo lungo" in line


def test_an_invalid_setting_is_one_line_naming_its_variable(run) -> None:
    bad = {
        "WHISPER_IT_BEAM_SIZE": "cinque",
        "WHISPER_IT_MESSAGES_PER_MINUTE": "0",
        "WHISPER_IT_TELEGRAM_TOKEN": "123:segreto",
    }
    line = assert_one_line(run("db", "current", env=bad))
    assert line.startswith("whisper-it: configurazione non valida: WHISPER_IT_")
    assert "WHISPER_IT_BEAM_SIZE: Input should be a valid integer" in line
    assert "WHISPER_IT_MESSAGES_PER_MINUTE: Input should be greater than or equal to 1" in line
    assert "segreto" not in line  # never a value: it may be a secret


def test_verbose_keeps_the_traceback(run) -> None:
    """A real bug must stay diagnosable: --verbose lets the exception through."""
    result = run("--verbose", "db", "upgrade", env={"WHISPER_IT_DATA_DIR": f"/tmp/{LONG_NAME}"})
    assert result.code != 0
    assert "Traceback" in result.err
    assert "OSError" in result.err


# --------------------------------------------------------------------------- the wording


def test_input_errors_are_described_in_italian_and_bounded() -> None:
    too_long = OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), LONG_NAME)
    text = describe_input_error(too_long)
    assert "nome di file troppo lungo" in text
    assert len(text) < 2 * MAX_QUOTED_CHARS
    not_utf8 = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    assert "non è testo UTF-8" in describe_input_error(not_utf8)
    assert "carattere nullo" in describe_input_error(ValueError("embedded null byte"))
    assert "\n" not in describe_input_error(ValueError("due\nrighe"))


def test_bugs_are_not_taken_for_bad_input() -> None:
    import av.error

    # FFmpeg's errors are input errors even where they are not OSError/ValueError.
    demux_failure = av.error.ExitError(errno.EINVAL, "Immediate exit requested", "x.ogg")
    assert is_input_error(demux_failure)
    assert "danneggiato" in describe_input_error(demux_failure)
    assert is_input_error(OSError(errno.EACCES, "Permission denied", "x.wav"))
    for bug in (KeyError("x"), AttributeError("x"), RuntimeError("x"), TypeError("x")):
        assert not is_input_error(bug)


# --------------------------------------------------------------------------- the database

PASSWORD = "s3greto-non-mostrare"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("bogus://x", "sconosciuto"),
        ("postgresql+nosuchdriver://u:" + PASSWORD + "@localhost/x", "sconosciuto"),
        ("::::", "non è un URL"),
        # Port 1 on the loopback: refused at once.
        ("postgresql+psycopg://u:" + PASSWORD + "@127.0.0.1:1/x", "non raggiungibile"),
    ],
    ids=["no-such-dialect", "no-such-driver", "not-a-url", "refused"],
)
@pytest.mark.parametrize("command", ["current", "upgrade"])
def test_a_database_that_cannot_be_opened_is_one_line(
    run, url: str, reason: str, command: str
) -> None:
    if "psycopg" in url:
        pytest.importorskip("psycopg")
    result = run("db", command, env={"WHISPER_IT_DATABASE_URL": url})
    line = assert_one_line(result)
    assert reason in line
    assert PASSWORD not in result.out + result.err


@pytest.mark.parametrize("argv", [("upgrade", "nonsense"), ("downgrade", "zzz")])
def test_an_unknown_revision_is_one_line(run, argv: tuple[str, str]) -> None:
    assert run("db", "upgrade").code == 0
    line = assert_one_line(run("db", *argv))
    assert repr(argv[1]) in line


def _read_only_commands(tmp_path: Path) -> list[tuple[str, ...]]:
    """The commands that only read or make a small edit: they never create nor migrate."""
    return [
        ("samples", "stats"),
        ("samples", "contributors"),
        ("samples", "quarantine"),
        ("samples", "export", str(tmp_path / "out")),
        ("samples", "remove-user", "123"),
        ("models",),
        ("rollback",),
    ]


def test_reading_a_database_that_does_not_exist_creates_nothing(run, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    url = f"sqlite:///{missing / 'x.db'}"
    current = run("db", "current", env={"WHISPER_IT_DATABASE_URL": url})
    assert "non esiste" in assert_one_line(current)
    typo = {"WHISPER_IT_DATA_DIR": str(missing)}
    for argv in _read_only_commands(tmp_path):
        assert "non esiste" in assert_one_line(run(*argv, env=typo)), argv
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "out").exists()


def _foreign_database(path: Path) -> None:
    """Another application's SQLite database: valid, with a ``users`` table of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        connection.commit()


def test_a_file_that_is_no_database_is_one_line(run, tmp_path: Path) -> None:
    """Random bytes where the database should be: every command that opens it, the bot
    too, says so in one line (SQLite's "file is not a database" was a traceback)."""
    database = tmp_path / "data" / DATABASE_FILE
    database.parent.mkdir()
    database.write_bytes(random.Random(5).randbytes(5000))
    tsv = write_tsv(tmp_path / "set.tsv", ["c0.wav\tciao"])
    for argv in (
        ("db", "current"),
        ("db", "upgrade"),
        ("samples", "stats"),
        ("samples", "import", str(tsv)),
        ("models",),
        ("rollback",),
        ("bot",),
    ):
        result = run(*argv, env={"WHISPER_IT_TELEGRAM_TOKEN": "123:abc", "WHISPER_IT_WORKERS": "0"})
        line = result.err.splitlines()[-1] if result.err else ""
        assert "Traceback" not in result.err and result.code == 1, (argv, result.err)
        assert line.startswith("whisper-it: database "), (argv, line)
        assert line.endswith(f"{DAMAGED} {VERBOSE_HINT}"), (argv, line)


def test_another_applications_database_is_one_line(run, tmp_path: Path) -> None:
    _foreign_database(tmp_path / "data" / DATABASE_FILE)
    line = assert_one_line(run("db", "upgrade"))
    assert "un'altra applicazione" in line and "(users)" in line
    # A report does not migrate it either: it asks for the upgrade that explains the problem.
    assert "`whisper-it db upgrade`" in assert_one_line(run("samples", "stats"))


def test_commands_that_read_never_migrate(run, tmp_path: Path) -> None:
    """After a ``db downgrade`` the operator asked for, a report must not silently upgrade
    the schema again: it stops and says how. The commands that write still migrate."""
    assert run("db", "upgrade").code == 0
    downgraded = run("db", "downgrade", "-1")
    assert downgraded.code == 0, downgraded.err
    current = downgraded.out.splitlines()[0]
    for argv in _read_only_commands(tmp_path):
        line = assert_one_line(run(*argv))
        assert "esegui `whisper-it db upgrade`" in line, (argv, line)
        assert run("db", "current").out.splitlines()[0] == current, argv
    assert not (tmp_path / "out").exists()
    # samples import writes (and may be a new installation's first command): it migrates.
    assert run("samples", "import", str(tmp_path / "none.tsv")).code == 1
    head = run("db", "current").out.splitlines()
    assert head[0] == head[1].replace("head:", "current:")
    assert run("models").code == 0


@pytest.mark.parametrize("command", ["bot", "worker"])
def test_an_unreachable_bot_api_is_one_line_without_the_token(run, command: str) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api_url = f"http://127.0.0.1:{port}/bot"
    token = "123456:segreto-del-token"
    env = {
        "WHISPER_IT_TELEGRAM_TOKEN": token,
        "WHISPER_IT_TELEGRAM_API_URL": api_url,
        "WHISPER_IT_LOG_LEVEL": "WARNING",  # PTB logs its traceback at ERROR
    }
    result = run(command, env=env)
    line = assert_one_line(result)
    assert line.startswith(
        f"whisper-it: impossibile raggiungere la Bot API di Telegram a {api_url} "
    )
    assert token not in result.out + result.err and "segreto" not in result.out + result.err


# --------------------------------------------------------------------------- clean output


LOG_LINE_MARKERS = (" INFO ", " DEBUG ", "alembic.runtime")


def test_one_shot_commands_print_only_what_was_asked(run) -> None:
    """Alembic logs each migration at INFO: a one-shot command keeps that out of sight."""
    upgraded = run("db", "upgrade")
    assert upgraded.code == 0, upgraded.err
    head = upgraded.out.splitlines()[-1].removeprefix("head: ")
    assert upgraded.out.splitlines() == [f"current: {head}", f"head: {head}"]
    assert not any(marker in upgraded.err for marker in LOG_LINE_MARKERS), upgraded.err

    listed = run("models")
    assert listed.code == 0, listed.err
    for stream in (listed.out, listed.err):
        assert not any(marker in stream for marker in LOG_LINE_MARKERS), stream


def test_verbose_sends_library_logs_to_stderr_only(run) -> None:
    result = run("--verbose", "db", "upgrade")
    assert result.code == 0, result.err
    assert "alembic.runtime.migration" in result.err  # "Running upgrade ..." at INFO
    assert not any(marker in result.out for marker in LOG_LINE_MARKERS), result.out
