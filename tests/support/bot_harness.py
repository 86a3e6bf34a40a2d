"""Run the real bot (``bot.app.build_application``) in-process against the emulator.

``running_bot`` builds the same services ``whisper-it bot`` builds, from real settings,
with one exception: the transcriber is the session's already-loaded whisper-base, so
each test does not pay for loading it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.bootstrap import Seams, Services, bootstrap
from bot.settings import Settings
from storage.models import Job, JobStatus, Transcription
from storage.unit_of_work import Database
from tests.support.telegram_emulator import BotApiEmulator, BotMessage, WaitTimeout

USER = 1001
OTHER_USER = 1002
ADMIN = 4242
GROUP = -100500
REPO_ROOT = Path(__file__).resolve().parents[2]
FINISHED_JOB_STATUSES = (JobStatus.DONE, JobStatus.FAILED)
# Status texts the worker shows before the final reply (bot/formatting.py).
STATUS_PREFIXES = ("🕐", "⬇️", "✍️")


@dataclass(frozen=True)
class JobView:
    """A job row, detached from its session."""

    id: int
    status: str
    error: str | None
    chat_id: int | None
    user_message_id: int | None
    transcription_id: int | None
    reply_message_ids: tuple[int, ...]
    attempts: int


@dataclass(frozen=True)
class TranscriptionView:
    """A transcription row, detached from its session."""

    id: int
    user_id: int | None
    source_kind: str
    source_ref: str | None
    text: str
    tags: tuple[str, ...]
    audio_sha256: str | None
    audio_duration: float | None
    reply_message_ids: tuple[int, ...]
    model_version: str | None = None


def _job_view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        status=job.status,
        error=job.error,
        chat_id=job.chat_id,
        user_message_id=job.user_message_id,
        transcription_id=job.transcription_id,
        reply_message_ids=tuple(job.reply_message_ids or ()),
        attempts=job.attempts,
    )


def _transcription_view(row: Transcription) -> TranscriptionView:
    return TranscriptionView(
        id=row.id,
        user_id=row.user_id,
        source_kind=row.source_kind,
        source_ref=row.source_ref,
        text=row.text,
        tags=tuple(row.tags or ()),
        audio_sha256=row.audio_sha256,
        audio_duration=row.audio_duration,
        reply_message_ids=tuple(row.reply_message_ids),
        model_version=row.model_version,
    )


def read_jobs(db: Database) -> list[JobView]:
    with db.unit_of_work(read_only=True) as uow:
        return [_job_view(job) for job in uow.session.scalars(select(Job).order_by(Job.id))]


def read_transcriptions(db: Database) -> list[TranscriptionView]:
    with db.unit_of_work(read_only=True) as uow:
        rows = uow.session.scalars(select(Transcription).order_by(Transcription.id))
        return [_transcription_view(row) for row in rows]


def transcription_by_reply(db: Database, chat_id: int, message_id: int) -> TranscriptionView | None:
    from storage import repository

    with db.unit_of_work(read_only=True) as uow:
        row = repository.find_transcription_by_reply(
            uow.session, chat_id=chat_id, message_id=message_id
        )
        return None if row is None else _transcription_view(row)


def is_status_text(text: str) -> bool:
    return text.startswith(STATUS_PREFIXES)


@dataclass
class RunningBot:
    emu: BotApiEmulator
    app: Application
    services: Services
    errors: list[BaseException] = field(default_factory=list)

    async def wait_for_jobs(self, total: int, *, done: int, timeout: float = 60.0) -> None:
        """Until ``total`` jobs exist and ``done`` of them are finished (done or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = read_jobs(self.services.db)
            finished = sum(job.status in (JobStatus.DONE, JobStatus.FAILED) for job in jobs)
            if len(jobs) >= total and finished >= done:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(jobs)} jobs, {finished} finished after {timeout} s")
            await asyncio.sleep(0.1)

    def texts(self, chat_id: int = USER) -> list[str]:
        return [m.content for m in self.emu.messages(chat_id)]

    async def wait_text(self, predicate, chat_id: int = USER, timeout: float = 60.0) -> str:
        """The first bot message in ``chat_id`` whose text satisfies ``predicate``."""

        def find() -> str | None:
            for text in self.texts(chat_id):
                if predicate(text):
                    return text
            return None

        return await self.emu.async_wait_for(find, timeout=timeout)

    async def wait_message(
        self, predicate: Callable[[BotMessage], bool], chat_id: int = USER, timeout: float = 60.0
    ) -> BotMessage:
        """The first bot message in ``chat_id`` (as it is now) that satisfies ``predicate``."""

        def find() -> BotMessage | None:
            return next((m for m in self.emu.messages(chat_id) if predicate(m)), None)

        return await self.emu.async_wait_for(find, timeout=timeout)

    def replies_to(self, message_id: int, chat_id: int = USER) -> list[BotMessage]:
        return [m for m in self.emu.messages(chat_id) if m.reply_to == message_id]

    def jobs(self) -> list[JobView]:
        return read_jobs(self.services.db)

    def transcriptions(self) -> list[TranscriptionView]:
        return read_transcriptions(self.services.db)

    def transcription_by_reply(
        self, message_id: int, chat_id: int = USER
    ) -> TranscriptionView | None:
        return transcription_by_reply(self.services.db, chat_id, message_id)

    async def wait_job(
        self, user_message_id: int, chat_id: int = USER, timeout: float = 60.0
    ) -> JobView:
        """The job for a user's message once it is finished (done or failed)."""

        def find() -> JobView | None:
            for job in self.jobs():
                if (
                    job.chat_id == chat_id
                    and job.user_message_id == user_message_id
                    and job.status in FINISHED_JOB_STATUSES
                ):
                    return job
            return None

        try:
            return await self.emu.async_wait_for(find, timeout=timeout)
        except WaitTimeout as exc:
            state = f"jobs: {self.jobs()}; bot messages: {self.texts(chat_id)}"
            raise WaitTimeout(f"{exc}; {state}") from None

    async def wait_reply(
        self, user_message_id: int, chat_id: int = USER, timeout: float = 60.0
    ) -> list[BotMessage]:
        """The bot's final messages answering a media/link message (its job finished)."""
        job = await self.wait_job(user_message_id, chat_id, timeout)
        if job.status == JobStatus.DONE:
            wanted = set(job.reply_message_ids)
            return [m for m in self.emu.messages(chat_id) if m.message_id in wanted]
        return self.replies_to(user_message_id, chat_id)


def bot_settings(data_dir: Path, emu: BotApiEmulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_token": emu.token,
        "telegram_api_url": emu.api_url,
        "telegram_file_url": emu.file_url,
        "data_dir": data_dir,
        "admin_ids": [ADMIN],
        "tagger": "keywords",
        # The production default. Greedy decoding is slower here, not faster: on espeak
        # speech its low log-probabilities trigger faster-whisper's temperature fallback.
        "beam_size": 5,
        # Tags always make it into the first reply, however busy the machine (the late-tags
        # path edits the reply afterwards, which would race with the tests' assertions).
        "tag_budget_seconds": 30.0,
        "offline": True,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(
    data_dir: Path, transcriber: Any, *, local_dir: Path | None = None, **overrides: Any
) -> AsyncIterator[RunningBot]:
    """``local_dir``: the emulator acts as a local Bot API server keeping files there."""
    with BotApiEmulator(local_dir=local_dir) as emu:
        settings = bot_settings(data_dir, emu, **overrides)
        seams = Seams()
        if transcriber is not None:
            # The session's loaded model, so that each test does not load it again.
            seams = Seams(
                load_model=lambda _spec: transcriber, model_spec=lambda: "packaged:whisper-base"
            )
        services = bootstrap(settings, seams=seams)
        app = build_application(settings, services)
        running = RunningBot(emu, app, services)

        async def collect(update: object, context: Any) -> None:
            running.errors.append(context.error)

        app.add_error_handler(collect)
        await app.initialize()
        # run_polling() calls these hooks; driving the application by hand, we do.
        assert app.post_init is not None and app.post_shutdown is not None
        await app.post_init(app)
        await app.start()
        assert app.updater is not None
        if settings.webhook_url:
            # What ``whisper-it bot`` does in webhook mode: the same options, secret included
            # (registered with the emulator's setWebhook, which then delivers with it).
            from bot.commands.run_bot import webhook_options

            await app.updater.start_webhook(**webhook_options(settings).run_kwargs())
        else:
            await app.updater.start_polling(poll_interval=0.0, timeout=1)
        try:
            yield running
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
            await app.post_shutdown(app)
        assert not running.errors, running.errors
        _ = Update  # keep the import: PTB types are part of this harness's contract


# --- the bot as a real process (``python -m bot bot``) ---------------------------------


def bot_process_env(
    emu: BotApiEmulator, data_dir: Path, model_cache: Path, **settings: str
) -> dict[str, str]:
    """Environment for ``python -m bot bot`` against the emulator (keys without the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_IT_")}
    values = {
        "TELEGRAM_TOKEN": emu.token,
        "TELEGRAM_API_URL": emu.api_url,
        "TELEGRAM_FILE_URL": emu.file_url,
        "DATA_DIR": str(data_dir),
        "MODEL_CACHE_DIR": str(model_cache),
        "ADMIN_IDS": str(ADMIN),
        "TAGGER": "keywords",
        "BEAM_SIZE": "5",
        "TAG_BUDGET_SECONDS": "30",
        "OFFLINE": "true",
        "CPU_THREADS": "2",
    }
    values.update(settings)
    env.update({f"WHISPER_IT_{key.upper()}": value for key, value in values.items()})
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def bot_process(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[subprocess.Popen]:
    """``python -m bot bot`` as a child process; killed (SIGKILL) if still running at exit.

    ``cwd`` should be an empty folder so no ``.env`` file is read.
    """
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "bot"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
