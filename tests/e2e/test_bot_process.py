"""``whisper-it bot`` as a real process: token errors, SIGKILL mid-job and resume, webhooks."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot import messages
from bot.commands.run_bot import (
    NO_TOKEN,
    REVOKED_TOKEN,
    WEAK_WEBHOOK_SECRET,
    WEBHOOK_SECRET_RE,
    webhook_options,
)
from bot.settings import Settings
from storage.models import JobStatus
from storage.unit_of_work import Database
from tests.support.bot_harness import (
    ADMIN,
    USER,
    bot_process,
    bot_process_env,
    is_status_text,
    read_jobs,
    read_transcriptions,
)
from tests.support.hostile_inputs import FORGED_UPDATE_ID, command_update, post_update
from tests.support.ops_support import wait_ready
from tests.support.speech import ITALIAN_SENTENCES, synthesize
from tests.support.telegram_emulator import BotApiEmulator

START_TIMEOUT = 90.0  # process start + migrations + model load, on a busy 2-core machine
WRONG_TOKEN = "987654:WRONG-secret-token-value"
SHORT_SENTENCE = "La pizza margherita è nata a Napoli."
FORGER_CHAT = 666  # the attacker's own chat, where forged /stats output would land
WRONG_SECRETS = (None, "", "webhook-secret-124", "x" * 256)
# A revoked token: the polling loop's next answer is a 401, then the process winds down.
REVOKED_EXIT_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_cli(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "bot"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """An empty working folder: no ``.env`` is read."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def long_voice_note(speech_dir: Path) -> bytes:
    """~20 s of speech: long enough to kill the bot while it transcribes."""
    text = " ".join(ITALIAN_SENTENCES)
    return synthesize(text, speech_dir / "bot_process_long.ogg").read_bytes()


@pytest.fixture(scope="module")
def short_voice_note(speech_dir: Path) -> bytes:
    return synthesize(SHORT_SENTENCE, speech_dir / "bot_process_short.ogg").read_bytes()


def test_missing_token_exits_with_the_botfather_hint(tmp_path: Path, cwd: Path) -> None:
    with BotApiEmulator() as emu:
        env = bot_process_env(emu, tmp_path / "data", tmp_path / "cache")
        del env["WHISPER_IT_TELEGRAM_TOKEN"]
        result = _run_cli(env, cwd)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"whisper-it: {NO_TOKEN}"
    assert "@BotFather" in result.stderr and "Traceback" not in result.stderr
    assert not emu.calls  # nothing was sent anywhere


def test_wrong_token_is_a_clear_message_that_never_shows_the_token(
    tmp_path: Path, cwd: Path
) -> None:
    with BotApiEmulator() as emu:
        env = bot_process_env(emu, tmp_path / "data", tmp_path / "cache")
        env["WHISPER_IT_TELEGRAM_TOKEN"] = WRONG_TOKEN
        env["WHISPER_IT_LOG_LEVEL"] = "DEBUG"  # even the most verbose log hides it
        result = _run_cli(env, cwd)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Telegram rifiuta il token del bot" in result.stderr and "@BotFather" in result.stderr
    assert "Traceback" not in output
    assert WRONG_TOKEN not in output and WRONG_TOKEN.split(":")[1] not in output


def test_sigkill_while_transcribing_then_restart_answers_the_job_once(
    tmp_path: Path, cwd: Path, model_cache: Path, ct2_transcriber, long_voice_note: bytes
) -> None:
    data_dir = tmp_path / "data"
    log_path = tmp_path / "bot.log"
    with BotApiEmulator() as emu:
        # The restarted process takes its predecessor's job back at start (same lease name);
        # a short lease would also let it go back to the queue soon otherwise.
        env = bot_process_env(emu, data_dir, model_cache, lease_seconds="3")
        with bot_process(env, cwd, log_path) as process:
            emu.wait_for(lambda: emu.calls_to("deleteWebhook"), timeout=START_TIMEOUT)
            sent = emu.send_voice(user_id=USER, data=long_voice_note, duration=20)
            status = emu.wait_for(
                lambda: next(
                    (m for m in emu.messages(USER) if m.content.startswith("✍️ Trascrivo")),
                    None,
                ),
                timeout=60,
            )
            # The update is confirmed (next getUpdates with a higher offset): only the
            # job in the database can bring it back.
            emu.wait_for(lambda: emu.pending_update_count == 0, timeout=10)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        db = Database.open(f"sqlite:///{data_dir / 'whisper-it.sqlite3'}")
        try:
            (job,) = read_jobs(db)
            assert job.status == "running" and read_transcriptions(db) == []
            assert is_status_text(emu.messages(USER)[-1].content)

            with bot_process(env, cwd, log_path) as process:
                replies = emu.wait_for(
                    lambda: [m for m in emu.messages(USER) if not is_status_text(m.content)],
                    timeout=START_TIMEOUT,
                )
                emu.wait_for(lambda: read_jobs(db)[0].status == JobStatus.DONE, timeout=30)
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0
            (job,) = read_jobs(db)
            (stored,) = read_transcriptions(db)
        finally:
            db.close()
    # Answered once, in the status message shown before the kill, as a reply to the note.
    (answer,) = emu.messages(USER, include_deleted=True)
    assert replies == [answer] or replies[0].message_id == answer.message_id
    assert answer.message_id == status.message_id and answer.reply_to == sent["message_id"]
    assert "#" in answer.content and len(stored.text) > 100, answer.content
    assert job.attempts == 2 and job.reply_message_ids == (answer.message_id,)
    assert stored.reply_message_ids == (answer.message_id,)
    assert len(emu.calls_to("getFile")) == 2  # downloaded again after the restart
    log = log_path.read_text()
    # The restarted process has the killed one's lease name: it takes the job back at once.
    assert "1 job(s) back in the queue at once" in log
    assert emu.token not in log and "Traceback" not in log


def _forged_calls(emu: BotApiEmulator) -> list[tuple[str, dict]]:
    return [
        (method, params) for method, params in emu.calls if params.get("chat_id") == FORGER_CHAT
    ]


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    """PTB may call setWebhook a moment before its server accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _assert_forgeries_refused(emu: BotApiEmulator, hook: str, right_secret: str) -> None:
    """An admin's /stats and /retrain, POSTed without the right secret: 403, nothing runs."""
    _wait_listening(urlsplit(hook).port or 80)
    for number, text in enumerate(("/stats", "/retrain", "/rollback")):
        forged = command_update(
            user_id=ADMIN, chat_id=FORGER_CHAT, text=text, update_id=FORGED_UPDATE_ID + number
        )
        for wrong in WRONG_SECRETS:
            assert wrong != right_secret
            assert post_update(hook, forged, wrong) == 403, (text, wrong)


def _assert_right_secret_is_handled(emu: BotApiEmulator, hook: str, secret: str) -> None:
    emu.open_chat(user_id=USER)
    update = command_update(
        user_id=USER, chat_id=USER, text="/privacy", update_id=FORGED_UPDATE_ID + 100
    )
    assert post_update(hook, update, secret) == 200
    emu.wait_for(lambda: any("Privacy" in m.content for m in emu.messages(USER)))


def test_webhook_mode(
    tmp_path: Path, cwd: Path, model_cache: Path, ct2_transcriber, short_voice_note: bytes
) -> None:
    port = _free_port()
    secret = "webhook-secret-123"
    log_path = tmp_path / "bot.log"
    hook = f"http://127.0.0.1:{port}/hook"
    with BotApiEmulator() as emu:
        env = bot_process_env(
            emu,
            tmp_path / "data",
            model_cache,
            WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
            WEBHOOK_LISTEN="127.0.0.1",
            WEBHOOK_PORT=str(port),
            WEBHOOK_PATH="hook",
            WEBHOOK_SECRET=secret,
        )
        with bot_process(env, cwd, log_path) as process:
            (webhook,) = emu.wait_for(lambda: emu.calls_to("setWebhook"), timeout=START_TIMEOUT)
            assert webhook["url"] == f"http://127.0.0.1:{port}/hook"
            assert webhook["secret_token"] == secret
            _assert_forgeries_refused(emu, hook, secret)
            emu.send_text(user_id=USER, text="/start")
            emu.wait_for(lambda: any(m.content.startswith("Ciao!") for m in emu.messages(USER)))
            sent = emu.send_voice(user_id=USER, data=short_voice_note, duration=3)
            reply = emu.wait_for(
                lambda: next(
                    (
                        m
                        for m in emu.messages(USER)
                        if m.reply_to == sent["message_id"] and "#" in m.content
                    ),
                    None,
                ),
                timeout=60,
            )
            _assert_right_secret_is_handled(emu, hook, secret)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        assert _forged_calls(emu) == []  # no handler ran for a forged update
        assert "pizza" in reply.content.lower(), reply.content
        assert not emu.calls_to("getUpdates")  # every update came through the webhook
        assert emu.webhook_failures == []
        first = emu.messages(USER)[0]
        assert first.raw_text == messages.START
    log = log_path.read_text()
    assert emu.token not in log and secret not in log and "Traceback" not in log


def test_webhook_without_a_secret_generates_and_registers_one(
    tmp_path: Path, cwd: Path, model_cache: Path, ct2_transcriber
) -> None:
    """Issue 10: with no WEBHOOK_SECRET, forged updates from anyone were handled."""
    port, ops_port = _free_port(), _free_port()
    log_path = tmp_path / "bot.log"
    hook = f"http://127.0.0.1:{port}/hook"
    with BotApiEmulator() as emu:
        env = bot_process_env(
            emu,
            tmp_path / "data",
            model_cache,
            WEBHOOK_URL=hook,
            WEBHOOK_LISTEN="127.0.0.1",
            WEBHOOK_PORT=str(port),
            WEBHOOK_PATH="hook",
            HTTP_PORT=str(ops_port),
        )
        with bot_process(env, cwd, log_path) as process:
            (webhook,) = emu.wait_for(lambda: emu.calls_to("setWebhook"), timeout=START_TIMEOUT)
            # Ready means updates flow: here, the webhook listener runs (nothing polls).
            assert wait_ready(ops_port, process, log_path)["status"] == "ok"
            secret = webhook["secret_token"]
            assert WEBHOOK_SECRET_RE.fullmatch(secret) and len(secret) >= 43
            _assert_forgeries_refused(emu, hook, secret)
            _assert_right_secret_is_handled(emu, hook, secret)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        assert _forged_calls(emu) == []
    log = log_path.read_text()
    assert "generated one for this run" in log
    assert secret not in log and emu.token not in log and "Traceback" not in log


def test_a_token_revoked_while_polling_ends_the_process_with_one_clear_line(
    tmp_path: Path, cwd: Path
) -> None:
    """A 401 to getUpdates after startup ended PTB's polling loop silently while the probes
    stayed green: now the process stops, exits 1 and says why."""
    port = _free_port()
    log_path = tmp_path / "bot.log"
    with BotApiEmulator() as emu:
        env = bot_process_env(
            emu, tmp_path / "data", tmp_path / "cache", WORKERS="0", HTTP_PORT=str(port)
        )
        with bot_process(env, cwd, log_path) as process:
            wait_ready(port, process, log_path)
            emu.fail_next("getUpdates", error_code=401, description="Unauthorized")
            assert process.wait(timeout=REVOKED_EXIT_TIMEOUT) == 1, log_path.read_text()[-3000:]
    log = log_path.read_text()
    assert log.count(REVOKED_TOKEN) == 1, log[-3000:]
    assert "Traceback" not in log and emu.token not in log


def test_the_webhook_server_listens_on_loopback_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PTB's webhook server buffers up to 100 MB of a body before it checks the secret: it
    belongs behind the HTTPS proxy (which limits bodies), not on every interface."""
    monkeypatch.delenv("WHISPER_IT_WEBHOOK_LISTEN", raising=False)
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path, webhook_url="https://bot.example/telegram", _env_file=None
    )
    assert webhook_options(settings).listen == "127.0.0.1"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_generated_webhook_secret_never_reaches_a_debug_log(
    tmp_path: Path, cwd: Path, log_format: str
) -> None:
    """PTB logs setWebhook's parameters at DEBUG: the generated secret must be redacted."""
    port = _free_port()
    log_path = tmp_path / "bot.log"
    with BotApiEmulator() as emu:
        env = bot_process_env(
            emu,
            tmp_path / "data",
            tmp_path / "cache",
            WORKERS="0",  # a front: no model to load
            WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
            WEBHOOK_LISTEN="127.0.0.1",
            WEBHOOK_PORT=str(port),
            LOG_LEVEL="DEBUG",
            LOG_FORMAT=log_format,
        )
        with bot_process(env, cwd, log_path) as process:
            (webhook,) = emu.wait_for(lambda: emu.calls_to("setWebhook"), timeout=START_TIMEOUT)
            _wait_listening(port)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log_path.read_text()[-3000:]
    log = log_path.read_text()
    assert "Calling Bot API endpoint `setWebhook`" in log  # the DEBUG line was written
    assert webhook["secret_token"] not in log and emu.token not in log


@pytest.mark.parametrize("secret", ["short", "has spaces in it, sixteen+", "ü" * 20])
def test_weak_webhook_secret_refuses_to_start(tmp_path: Path, cwd: Path, secret: str) -> None:
    with BotApiEmulator() as emu:
        env = bot_process_env(
            emu,
            tmp_path / "data",
            tmp_path / "cache",
            WEBHOOK_URL="http://127.0.0.1:9/hook",
            WEBHOOK_SECRET=secret,
        )
        result = _run_cli(env, cwd)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"whisper-it: {WEAK_WEBHOOK_SECRET}"
    assert secret not in result.stderr + result.stdout
    assert not emu.calls  # refused before contacting Telegram or loading the model
