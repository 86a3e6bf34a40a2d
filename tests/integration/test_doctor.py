"""``whisper-it doctor`` against real components: the packaged model, a real SQLite database
migrated by Alembic, the Bot API emulator for ``getMe``, the deno wheel, torch.

In-process (``bot.cli.main``) for speed; the model is assembled once per test session.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from bot.cli import main
from bot.commands import doctor as doctor_command
from bot.commands.doctor import CHECKS, EXIT_FAILED, EXIT_OK, MIN_FREE_BYTES
from model.media.js_runtime import find_js_runtime, runtime_version, yt_dlp_js_runtimes
from storage import migrations
from storage.engine import create_engine_for
from tests.support.telegram_emulator import BotApiEmulator

CHECK_NAMES = [check.name for check in CHECKS]
MODEL, DATABASE, TOKEN, JS, TAGGER, DISK, TRAINING, YTDLP, GENERAL = CHECK_NAMES
WRONG_TOKEN = "999:wrong-secret-XYZ"


@pytest.fixture
def settings_env(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh installation in tmp_path; returns its DATA_DIR."""
    for key in [key for key in os.environ if key.startswith("WHISPER_IT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env
    data_dir = tmp_path / "data"
    monkeypatch.setenv("WHISPER_IT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("WHISPER_IT_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("WHISPER_IT_OFFLINE", "true")
    monkeypatch.setenv("WHISPER_IT_TAGGER", "keywords")
    return data_dir


def database_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'whisper-it.sqlite3').resolve()}"


def doctor(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["doctor", "--json", *extra])
    report = json.loads(capsys.readouterr().out)
    return code, {check["name"]: check for check in report["checks"]} | {"ok": report["ok"]}


def test_a_ready_installation_passes_every_check(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    migrations.upgrade(database_url(settings_env))
    with BotApiEmulator() as emu:
        monkeypatch.setenv("WHISPER_IT_TELEGRAM_TOKEN", emu.token)
        monkeypatch.setenv("WHISPER_IT_TELEGRAM_API_URL", emu.api_url)
        code, checks = doctor(capsys)
        assert [method for method, _ in emu.calls] == ["getMe"]

    assert code == EXIT_OK and checks["ok"] is True
    # The disk may be short of room for training on a CI machine (a warning, not a failure).
    assert checks[DISK]["status"] in ("ok", "warn")
    # yt-dlp's age depends on the day the test runs (tests/integration/test_youtube_server.py).
    others = [name for name in CHECK_NAMES if name not in (DISK, YTDLP)]
    assert {name: checks[name]["status"] for name in others} == dict.fromkeys(others, "ok")
    assert checks[MODEL]["details"]["spec"] == "packaged:whisper-base"
    assert checks[MODEL]["details"]["model_name"] == "whisper-base"
    assert checks[DATABASE]["details"]["revision"] == migrations.head()
    assert checks[TOKEN]["details"]["username"] == emu.bot_username
    assert checks[JS]["details"]["runtime"] == "deno"
    assert checks[TAGGER]["details"]["tagger"] == "keywords"
    assert checks[TRAINING]["details"]["mode"] in ("cpu", "gpu")
    # The gate's general set: the one shipped with the package, unless an admin names one.
    assert checks[GENERAL]["details"]["source"] == "packaged"
    assert checks[GENERAL]["summary"].startswith("incluso nel pacchetto: 160 clip, 80 frasi")
    assert checks[DISK]["details"]["free_bytes"] > 0


def test_a_refused_token_fails_without_showing_it(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with BotApiEmulator() as emu:
        monkeypatch.setenv("WHISPER_IT_TELEGRAM_TOKEN", WRONG_TOKEN)
        monkeypatch.setenv("WHISPER_IT_TELEGRAM_API_URL", emu.api_url)
        code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == EXIT_FAILED
    token_line = next(line for line in out.splitlines() if TOKEN in line)
    assert token_line.startswith("ERRORE")
    assert "wrong-secret" not in out


def test_an_unreachable_bot_api_fails(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WHISPER_IT_TELEGRAM_TOKEN", WRONG_TOKEN)
    monkeypatch.setenv("WHISPER_IT_TELEGRAM_API_URL", f"http://127.0.0.1:{port}/bot")
    code, checks = doctor(capsys)
    assert code == EXIT_FAILED
    assert checks[TOKEN]["status"] == "fail"
    assert "wrong-secret" not in checks[TOKEN]["summary"]


def test_a_fresh_installation_is_ready_with_warnings(
    settings_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No token (the CLI works without one) and no database yet (the bot creates it)."""
    code, checks = doctor(capsys)
    assert code == EXIT_OK
    assert checks[TOKEN]["status"] == "warn"
    assert checks[DATABASE]["status"] == "warn"
    assert not (settings_env / "whisper-it.sqlite3").exists(), "doctor must not create it"


def test_a_model_that_does_not_load_fails(
    settings_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WHISPER_IT_BASE_MODEL", str(tmp_path / "no-such-model"))
    code, checks = doctor(capsys)
    assert code == EXIT_FAILED
    assert checks[MODEL]["status"] == "fail"
    assert checks[DISK]["status"] == "ok"  # the other checks still ran


def test_a_database_from_a_newer_version_fails(
    settings_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = database_url(settings_env)
    migrations.upgrade(url)
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    finally:
        engine.dispose()
    code, checks = doctor(capsys)
    assert code == EXIT_FAILED
    assert checks[DATABASE]["status"] == "fail"
    assert checks[DATABASE]["details"]["revision"] == "f00d"


def test_a_full_disk_fails(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = shutil.disk_usage(settings_env.parent)
    nearly_full = real._replace(free=MIN_FREE_BYTES - 1)
    monkeypatch.setattr(doctor_command.shutil, "disk_usage", lambda path: nearly_full)
    code, checks = doctor(capsys)
    assert code == EXIT_FAILED
    assert checks[DISK]["status"] == "fail"
    assert checks[DISK]["details"]["path"] == str(settings_env.resolve())


def test_yt_dlp_runs_the_packaged_javascript_runtime() -> None:
    """What real YouTube needs (NOTES §5): yt-dlp accepts the runtime and it runs."""
    import yt_dlp

    runtime = find_js_runtime()
    assert runtime is not None, "the deno wheel is a dependency: a runtime must be found"
    assert runtime_version(runtime).startswith(runtime.name)
    with yt_dlp.YoutubeDL({"js_runtimes": yt_dlp_js_runtimes(), "quiet": True}) as ydl:
        info = ydl._js_runtimes[runtime.name].info  # what yt-dlp itself detected
    assert info is not None and info.supported
    assert Path(info.path) == runtime.path
