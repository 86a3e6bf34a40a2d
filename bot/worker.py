"""The durable job queue's runner: accepted work is recorded, then processed by a bounded
pool of workers, and resumed after a crash.

Flow of one job: download (Telegram file or YouTube link) -> decode + transcribe in a
worker thread -> hashtags within a time budget -> store audio, transcript and message ids
-> reply. Jobs live in the database (``storage.jobs``), so a restart loses nothing: jobs
that were running are put back in the queue at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import Bot, InputFile, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError

from bot import formatting, messages
from bot.services import TranscriptionService
from model.audio import AudioError, DecodedAudio
from model.engines import Transcription, fast_path_options
from model.youtube import DownloadLimits
from storage import jobs as job_queue
from storage import repository
from storage.audio_store import AudioStore
from storage.models import Job
from storage.unit_of_work import Database

log = logging.getLogger(__name__)

KIND_TELEGRAM_FILE = "telegram_file"
KIND_LINK = "link"
# Tags that have not arrived this long after the reply are dropped.
LATE_TAGS_TIMEOUT = 120.0
IDLE_POLL_SECONDS = 2.0
TELEGRAM_CAPTION_LIMIT = 1024


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    workers: int = 1
    max_queued_jobs: int = 100
    max_pending_per_user: int = 3
    status_edit_interval: float = 3.0
    tag_budget_seconds: float = 2.0
    max_message_chars: int = formatting.TELEGRAM_MESSAGE_LIMIT
    long_text_as_file_chars: int = 12_000
    max_audio_seconds: float = 1800.0
    max_file_bytes: int = 20 * 2**20
    training_max_seconds: float = 30.0
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    # Downloads from links may be bigger than Telegram's uploads.
    link_limits: DownloadLimits = field(
        default_factory=lambda: DownloadLimits(max_seconds=1800.0, max_bytes=72 * 2**20)
    )


@dataclass(frozen=True)
class Submitted:
    accepted: bool
    refusal: str | None = None
    job_id: int | None = None


class StatusMessage:
    """The message that shows a job's progress, edited at most every few seconds."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        message_id: int | None,
        interval: float,
        *,
        reply_to: int | None = None,
    ) -> None:
        self.bot, self.chat_id, self.message_id = bot, chat_id, message_id
        self.interval = interval
        self.reply_to = reply_to
        self._text: str | None = None
        self._last = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    async def show(self, text: str, *, force: bool = True) -> None:
        if text == self._text or (not force and not self.due()):
            return
        self._last = time.monotonic()
        self._text = text
        try:
            if self.message_id is None:
                # It becomes the transcript: it must reply to the user's message.
                reply = (
                    ReplyParameters(self.reply_to, allow_sending_without_reply=True)
                    if self.reply_to is not None
                    else None
                )
                sent = await self.bot.send_message(self.chat_id, text, reply_parameters=reply)
                self.message_id = sent.message_id
            else:
                await self.bot.edit_message_text(text, self.chat_id, self.message_id)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                log.warning("status message not updated: %s", exc)
        except TelegramError as exc:  # progress is best effort; the reply is what counts
            log.warning("status message not updated: %s", exc)

    async def delete(self) -> None:
        if self.message_id is None:
            return
        with contextlib.suppress(TelegramError):
            await self.bot.delete_message(self.chat_id, self.message_id)
        self.message_id = None


class JobRunner:
    def __init__(
        self,
        *,
        db: Database,
        store: AudioStore,
        transcription: TranscriptionService,
        options: WorkerOptions,
        url_hosts: frozenset[str] = frozenset(),
        report_error: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.transcription = transcription
        self.options = options
        self.url_hosts = url_hosts
        self.report_error = report_error
        # CPU-heavy work (decode, transcribe) never runs on the event loop.
        self.cpu = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="transcribe")
        # Tags have their own thread so they never queue behind a long transcription.
        self.tagging = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tags")
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._bot: Bot | None = None
        self._busy = 0
        # submit() calls between recording a job and recording its status message: a
        # worker that claims such a job waits for them, or it would send a second one.
        self._announcing = 0
        self._announced = asyncio.Event()
        self._announced.set()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, bot: Bot) -> None:
        self._bot = bot
        result = await asyncio.to_thread(self._requeue)
        if result.requeued:
            log.info("resuming %d interrupted job(s)", len(result.requeued))
        for number in range(self.options.workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"worker-{number}"))

    def _requeue(self) -> job_queue.RequeueResult:
        with self.db.unit_of_work() as uow:
            result = job_queue.requeue_running(uow.session)
            uow.commit()
        return result

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.cpu.shutdown(wait=False, cancel_futures=True)
        self.tagging.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> int:
        return self._busy

    # --- accepting work -------------------------------------------------------------------

    async def submit(
        self,
        *,
        kind: str,
        payload: dict[str, Any],
        user_id: int,
        chat_id: int,
        user_message_id: int,
        user_name: str | None = None,
    ) -> Submitted:
        """Record the job (durably) and show its place in the queue, or say why not."""
        self._announcing += 1
        self._announced.clear()
        try:
            job_id, refusal = await asyncio.to_thread(
                self._enqueue, kind, payload, user_id, chat_id, user_message_id, user_name
            )
            if refusal is not None:
                return Submitted(False, refusal)
            assert self._bot is not None and job_id is not None
            position, total = await asyncio.to_thread(self._position, job_id)
            try:
                status = await self._bot.send_message(
                    chat_id,
                    formatting.queued_text(position, total),
                    reply_parameters=ReplyParameters(
                        user_message_id, allow_sending_without_reply=True
                    ),
                )
                await asyncio.to_thread(self._set_status_message, job_id, status.message_id)
            except TelegramError as exc:  # the job still runs; it will send its own message
                log.warning("queued message not sent: %s", exc)
        finally:
            self._announcing -= 1
            if self._announcing == 0:
                self._announced.set()
        self._wake.set()
        return Submitted(True, job_id=job_id)

    def _enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        user_id: int,
        chat_id: int,
        user_message_id: int,
        user_name: str | None,
    ) -> tuple[int | None, str | None]:
        with self.db.unit_of_work() as uow:
            session = uow.session
            if job_queue.count_open_jobs(session) >= self.options.max_queued_jobs:
                return None, messages.QUEUE_FULL
            open_jobs = job_queue.count_open_jobs(session, user_id=user_id)
            if open_jobs >= self.options.max_pending_per_user:
                return None, messages.TOO_MANY_PENDING.format(count=open_jobs)
            repository.touch_user(session, user_id, name=user_name)
            job = job_queue.enqueue_job(
                session,
                kind=kind,
                payload=payload,
                user_id=user_id,
                chat_id=chat_id,
                user_message_id=user_message_id,
            )
            uow.commit()
            return job.id, None

    def _position(self, job_id: int) -> tuple[int | None, int]:
        with self.db.unit_of_work(read_only=True) as uow:
            position = job_queue.queue_position(uow.session, job_id)
            total = job_queue.count_pending_jobs(uow.session)
        return position, total + self._busy

    async def _status_message_id(self, job: Job) -> int | None:
        if job.status_message_id is not None:
            return job.status_message_id
        # Claimed while submit() may still be sending its queued message: wait for it.
        await self._announced.wait()
        return await asyncio.to_thread(self._read_status_message_id, job.id)

    def _read_status_message_id(self, job_id: int) -> int | None:
        with self.db.unit_of_work(read_only=True) as uow:
            stored = job_queue.get_job(uow.session, job_id)
            return None if stored is None else stored.status_message_id

    def _set_status_message(self, job_id: int, message_id: int) -> None:
        with self.db.unit_of_work() as uow:
            job_queue.set_job_messages(uow.session, job_id, status_message_id=message_id)
            uow.commit()

    # --- the workers ----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            try:
                job = await asyncio.to_thread(self._claim)
            except Exception:
                log.exception("cannot claim a job")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
                continue
            self._busy += 1
            try:
                await self._process(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one job stop the worker
                log.exception("job %s crashed", job.id)
            finally:
                self._busy -= 1

    def _claim(self) -> Job | None:
        # Between jobs: switch to a newly promoted model if there is one.
        try:
            self.transcription.models.refresh()
        except Exception:
            log.exception("cannot load the current model; keeping the one in use")
        with self.db.unit_of_work() as uow:
            job = job_queue.claim_next_job(uow.session)
            uow.commit()
        return job

    async def _process(self, job: Job) -> None:
        assert self._bot is not None
        bot = self._bot
        status = StatusMessage(
            bot,
            job.chat_id,
            await self._status_message_id(job),
            self.options.status_edit_interval,
            reply_to=job.user_message_id,
        )
        if job.transcription_id is not None:
            # Killed after storing the transcript but before replying: reply now.
            await self._resume_reply(job, status)
            return
        with contextlib.suppress(TelegramError):
            await bot.send_chat_action(job.chat_id, ChatAction.TYPING)
        try:
            work_dir = Path(tempfile.mkdtemp(prefix=f"job{job.id}-", dir=self._work_root()))
            try:
                source, meta = await self._fetch(job, status, work_dir)
                await status.show(formatting.transcribing_text())
                audio, transcription = await self._transcribe(source, status, meta)
            finally:
                shutil.rmtree(work_dir, ignore_errors=True)
            await self._deliver(job, status, audio, transcription, meta)
        except AudioError as exc:
            await self._fail(job, status, self._audio_message(exc.reason), exc.reason)
        except _LinkFailure as exc:
            await self._fail(job, status, exc.message, exc.reason)
        except BadRequest as exc:
            if "too big" in str(exc).lower():
                await self._fail(job, status, messages.TELEGRAM_FILE_TOO_BIG, "too_big")
            else:
                await self._crash(job, status, exc)
        except Exception as exc:
            await self._crash(job, status, exc)

    def _work_root(self) -> Path:
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        return self.options.work_dir

    def _audio_message(self, reason: str) -> str:
        return messages.audio_error(
            reason,
            max_seconds=self.options.max_audio_seconds,
            max_mb=self.options.max_file_bytes / 2**20,
        )

    async def _fetch(
        self, job: Job, status: StatusMessage, work_dir: Path
    ) -> tuple[bytes | Path, dict[str, Any]]:
        assert self._bot is not None
        payload = job.payload
        if job.kind == KIND_LINK:
            return await self._fetch_link(payload, status, work_dir)
        await status.show(formatting.downloading_text())
        file = await self._bot.get_file(payload["file_id"])
        data = bytes(await file.download_as_bytearray())
        return data, {"source_kind": payload.get("source_kind", "document")}

    async def _fetch_link(
        self, payload: dict[str, Any], status: StatusMessage, work_dir: Path
    ) -> tuple[Path, dict[str, Any]]:
        from model import youtube

        loop = asyncio.get_running_loop()
        link = youtube.parse_link(payload["url"], extra_hosts=self.url_hosts)
        limits = self.options.link_limits

        def on_progress(progress: youtube.DownloadProgress) -> None:
            if progress.fraction is not None and status.due():
                text = formatting.downloading_text(progress.fraction)
                asyncio.run_coroutine_threadsafe(status.show(text, force=False), loop)

        await status.show(formatting.downloading_text(0.0))
        try:
            media = await loop.run_in_executor(
                None,
                lambda: youtube.download_audio(link, work_dir, limits=limits, progress=on_progress),
            )
        except youtube.LinkError as exc:
            raise _LinkFailure(
                exc.reason,
                messages.link_error(exc.reason, max_seconds=self.options.max_audio_seconds),
            ) from exc
        meta = {
            "source_kind": "youtube",
            "source_ref": media.video_id or media.webpage_url,
            "title": media.title,
            "url": media.webpage_url,
        }
        return media.path, meta

    async def _transcribe(
        self, source: bytes | Path, status: StatusMessage, meta: dict[str, Any]
    ) -> tuple[DecodedAudio, Transcription]:
        loop = asyncio.get_running_loop()

        def on_progress(fraction: float) -> None:
            if status.due():
                text = formatting.transcribing_text(fraction)
                asyncio.run_coroutine_threadsafe(status.show(text, force=False), loop)

        max_bytes = self.options.link_limits.max_bytes if isinstance(source, Path) else None

        def work() -> tuple[DecodedAudio, Transcription]:
            audio = self.transcription.decode(source, max_bytes=max_bytes)
            options = fast_path_options(
                self.transcription.options, duration=audio.duration, batch_size=None
            )
            return audio, self.transcription.transcribe(
                audio, progress=on_progress, options=options
            )

        return await loop.run_in_executor(self.cpu, work)

    async def _hashtags(self, text: str) -> tuple[tuple[str, ...], asyncio.Future | None]:
        """Tags within the budget, or none now and a future for them later."""
        if self.transcription.tagger is None or not text.strip():
            return (), None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.tagging, self.transcription.hashtags, text)
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), self.options.tag_budget_seconds
            ), None
        except TimeoutError:
            return (), future

    async def _deliver(
        self,
        job: Job,
        status: StatusMessage,
        audio: DecodedAudio,
        transcription: Transcription,
        meta: dict[str, Any],
    ) -> None:
        hashtags, late = await self._hashtags(transcription.text)
        transcription_id = await asyncio.to_thread(
            self._store, job, audio, transcription, hashtags, meta
        )
        message_ids = await self._reply(job, status, transcription, hashtags, meta)
        await asyncio.to_thread(self._finish, job, transcription_id, message_ids)
        if late is not None:
            await self._add_late_tags(job, transcription, transcription_id, message_ids, late, meta)

    def _store(
        self,
        job: Job,
        audio: DecodedAudio,
        transcription: Transcription,
        hashtags: tuple[str, ...],
        meta: dict[str, Any],
    ) -> int:
        ref = self.store.put(audio.samples)
        with self.db.unit_of_work() as uow:
            row = repository.add_transcription(
                uow.session,
                source_kind=meta["source_kind"],
                source_ref=meta.get("source_ref") or job.payload.get("file_unique_id"),
                text=transcription.text,
                user_id=job.user_id,
                chat_id=job.chat_id,
                user_message_id=job.user_message_id,
                audio=ref,
                model_version=transcription.model,
                language=transcription.language,
                segments=[
                    {"start": s.start, "end": s.end, "text": s.text} for s in transcription.segments
                ],
                tags=list(hashtags),
                timings={"transcribe": transcription.elapsed, "audio": transcription.duration},
            )
            # The job remembers its transcript, so a crash before the reply resends it
            # instead of transcribing again.
            stored = uow.session.get(Job, job.id)
            assert stored is not None
            stored.transcription_id = row.id
            uow.commit()
            return row.id

    async def _reply(
        self,
        job: Job,
        status: StatusMessage,
        transcription: Transcription,
        hashtags: tuple[str, ...],
        meta: dict[str, Any],
    ) -> list[int]:
        assert self._bot is not None
        bot = self._bot
        title = meta.get("title")
        note = None
        if meta.get("source_kind") == "youtube" and title:
            note = f"🎬 {title}"
        reply = formatting.transcript_messages(
            transcription.text,
            hashtags,
            limit=self.options.max_message_chars,
            file_threshold=self.options.long_text_as_file_chars,
            note=note,
        )
        reply_to = ReplyParameters(job.user_message_id, allow_sending_without_reply=True)
        ids: list[int] = []
        if reply.as_file:
            await status.delete()
            sent = await bot.send_document(
                job.chat_id,
                InputFile(transcription.text.encode(), filename=_file_name(job, "txt")),
                caption=reply.messages[0][:TELEGRAM_CAPTION_LIMIT],
                reply_parameters=reply_to,
            )
            ids.append(sent.message_id)
        else:
            first, *rest = reply.messages
            if status.message_id is not None:
                try:
                    await bot.edit_message_text(first, job.chat_id, status.message_id)
                    ids.append(status.message_id)
                except TelegramError:
                    await status.delete()
            if not ids:
                sent = await bot.send_message(job.chat_id, first, reply_parameters=reply_to)
                ids.append(sent.message_id)
            for text in rest:
                sent = await bot.send_message(job.chat_id, text, reply_parameters=reply_to)
                ids.append(sent.message_id)
        if meta.get("source_kind") == "youtube" and transcription.segments:
            from model.subtitles import segments_to_srt

            sent = await bot.send_document(
                job.chat_id,
                InputFile(
                    segments_to_srt(transcription.segments).encode(),
                    filename=_file_name(job, "srt"),
                ),
                caption="🎞 Sottotitoli (.srt)",
                reply_parameters=reply_to,
            )
            ids.append(sent.message_id)
        return ids

    def _finish(self, job: Job, transcription_id: int, message_ids: list[int]) -> None:
        with self.db.unit_of_work() as uow:
            repository.add_reply_messages(
                uow.session, transcription_id, chat_id=job.chat_id, message_ids=message_ids
            )
            job_queue.set_job_messages(uow.session, job.id, reply_message_ids=message_ids)
            job_queue.mark_job_done(uow.session, job.id, transcription_id=transcription_id)
            uow.commit()

    async def _add_late_tags(
        self,
        job: Job,
        transcription: Transcription,
        transcription_id: int,
        message_ids: list[int],
        late: asyncio.Future,
        meta: dict[str, Any],
    ) -> None:
        """The reply went out without tags; add them to it once they arrive."""
        assert self._bot is not None
        try:
            hashtags = await asyncio.wait_for(late, LATE_TAGS_TIMEOUT)
        except Exception:
            log.warning("hashtags for job %s never arrived", job.id)
            return
        if not hashtags:
            return
        await asyncio.to_thread(self._save_tags, transcription_id, hashtags)
        reply = formatting.transcript_messages(
            transcription.text,
            hashtags,
            limit=self.options.max_message_chars,
            file_threshold=self.options.long_text_as_file_chars,
        )
        if reply.as_file or meta.get("source_kind") == "youtube":
            return  # documents keep their caption; subtitles come with their own message
        last_text, last_id = reply.messages[-1], message_ids[len(reply.messages) - 1 :]
        if not last_id:
            with contextlib.suppress(TelegramError):
                sent = await self._bot.send_message(job.chat_id, last_text)
                await asyncio.to_thread(self._finish_extra, transcription_id, job, sent.message_id)
            return
        with contextlib.suppress(TelegramError):
            await self._bot.edit_message_text(last_text, job.chat_id, last_id[0])

    def _save_tags(self, transcription_id: int, hashtags: tuple[str, ...]) -> None:
        with self.db.unit_of_work() as uow:
            row = repository.get_transcription(uow.session, transcription_id)
            if row is not None:
                row.tags = list(hashtags)
                uow.commit()

    def _finish_extra(self, transcription_id: int, job: Job, message_id: int) -> None:
        with self.db.unit_of_work() as uow:
            repository.add_reply_messages(
                uow.session, transcription_id, chat_id=job.chat_id, message_ids=[message_id]
            )
            uow.commit()

    async def _resume_reply(self, job: Job, status: StatusMessage) -> None:
        def load() -> tuple[str, tuple[str, ...], list[dict[str, Any]], str]:
            with self.db.unit_of_work(read_only=True) as uow:
                row = repository.get_transcription(uow.session, job.transcription_id)
                assert row is not None
                return row.text, tuple(row.tags), list(row.segments), row.source_kind

        text, tags, segments, source_kind = await asyncio.to_thread(load)
        from model.engines import Segment

        transcription = Transcription(
            text=text,
            segments=tuple(Segment(s["start"], s["end"], s["text"]) for s in segments),
            language=self.transcription.options.language,
            duration=segments[-1]["end"] if segments else 0.0,
            model="",
            engine="ct2",
            elapsed=0.0,
        )
        meta = {"source_kind": source_kind}
        message_ids = await self._reply(job, status, transcription, tags, meta)
        assert job.transcription_id is not None
        await asyncio.to_thread(self._finish, job, job.transcription_id, message_ids)

    async def _fail(self, job: Job, status: StatusMessage, text: str, reason: str) -> None:
        await status.show(f"⚠️ {text}")
        await asyncio.to_thread(self._mark_failed, job.id, reason)

    async def _crash(self, job: Job, status: StatusMessage, exc: BaseException) -> None:
        log.error("job %s failed", job.id, exc_info=exc)
        await status.show(messages.INTERNAL_ERROR)
        await asyncio.to_thread(self._mark_failed, job.id, f"{type(exc).__name__}: {exc}")
        if self.report_error is not None:
            with contextlib.suppress(Exception):
                await self.report_error(f"job {job.id} ({job.kind}): {type(exc).__name__}: {exc}")

    def _mark_failed(self, job_id: int, error: str) -> None:
        with self.db.unit_of_work() as uow:
            job_queue.mark_job_failed(uow.session, job_id, error=error[:2000])
            uow.commit()


class _LinkFailure(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


def _file_name(job: Job, extension: str) -> str:
    return f"trascrizione-{job.id}.{extension}"
