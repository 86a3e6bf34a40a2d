"""What happens to claimed jobs: the pipeline in a worker thread (several short notes in
one model call), hashtags within a time budget, storing, Telegram delivery, and the one
place that decides how a failure ends a job (``bot.job_endings`` says it to the user and
the admins).

One job: (Telegram file: download to memory) -> pipeline (decode, transcribe; links are
fetched there too) -> hashtags within the budget -> store -> reply -> finish. Hashtags
that miss the budget are added later by their own task, so they never hold back the
next job. A job stored but not answered (its worker died) is answered from the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from telegram.error import TelegramError

from bot import formatting, messages
from bot.delivery import Delivery, Reply
from bot.job_cancels import JobCancels
from bot.job_endings import JobEndings, chat_refusal, download_refusal
from bot.job_payloads import JobPayload, LinkJob, TelegramFileJob
from bot.ops.log_format import log_context
from bot.ops.metrics import OUTCOME_DISCARDED, OUTCOME_DONE, OUTCOME_REJECTED, Metrics
from bot.output_formats import FILE_OUTPUTS, shown_text
from bot.pipeline import (
    Cancelled,
    InputRejected,
    MediaBytes,
    MediaLink,
    PipelineResult,
    Stage,
    TranscriptionPipeline,
    check_cancel,
)
from bot.repeats import Repeats
from bot.status_message import StatusMessage
from bot.tag_budget import TagBudget
from bot.work_queue import ClaimedJob, Discarded, WorkQueue
from model.asr.hotwords import vocabulary_key
from storage.chat_settings import DEFAULT_PREFERENCES, ChatPreferences
from storage.models import SOURCE_YOUTUBE

log = logging.getLogger(__name__)

# LinkError's reason when YouTube asks to "confirm you're not a bot".
BLOCKED_REASON = "blocked"


class JobProcessor:
    def __init__(
        self,
        *,
        queue: WorkQueue,
        pipeline: TranscriptionPipeline,
        repeats: Repeats,
        delivery: Delivery,
        cpu: ThreadPoolExecutor,
        tag_budget_seconds: float,
        report_error: Callable[[str], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.queue = queue
        self.metrics = metrics or Metrics()
        self.pipeline = pipeline
        self.repeats = repeats
        self.delivery = delivery
        self.cpu = cpu
        self.tags = TagBudget(pipeline, queue, delivery, budget_seconds=tag_budget_seconds)
        # Cancelled, refused or crashed: the user's message and the admins' alert.
        self.endings = JobEndings(queue, self.metrics, report_error)
        self.finished: set[int] = set()  # ids concluded while their batch still runs
        # Set when a job's sender presses "Annulla", /forget deletes it, or shutdown comes.
        self.cancels = JobCancels(queue)
        # The /impostazioni of each claimed job's chat, read when it is claimed.
        self.preferences: dict[int, ChatPreferences] = {}

    async def close(self) -> None:
        self.cancels.set_all()  # shutdown: running downloads stop now
        await self.tags.close()

    async def _status(self, job: ClaimedJob) -> StatusMessage:
        # (A job is claimable only once its queued message, if any, was recorded.)
        message_id = job.status_message_id

        async def remember(new_id: int) -> None:
            await asyncio.to_thread(self.queue.set_status_message, job.id, new_id)

        return self.delivery.status(
            job.chat_id,
            message_id,
            reply_to=job.user_message_id,
            on_created=remember,
            job_id=job.id,
            thread_id=job.payload.thread_id,
        )

    def _prefs(self, job: ClaimedJob) -> ChatPreferences:
        return self.preferences.get(job.id, DEFAULT_PREFERENCES)

    async def process(self, jobs: list[ClaimedJob]) -> None:
        """Answer claimed jobs: one alone, several short notes together."""
        for job in jobs:
            self.preferences[job.id] = await asyncio.to_thread(self.queue.preferences, job.chat_id)
        try:
            await self._process_all(jobs)
        finally:
            for job in jobs:
                self.preferences.pop(job.id, None)

    async def _process_all(self, jobs: list[ClaimedJob]) -> None:
        fresh = []
        for job in jobs:
            if self.cancels.is_set(job.id):
                await self.endings.stopped(job, await self._status(job))
                continue
            if job.transcription_id is None and not self._prefs(job).needs_timings:
                job = await self._reuse(job)
            if job.transcription_id is None:
                fresh.append(job)
                continue
            # Its worker died after storing the transcript but before replying: reply now.
            with log_context(job_id=job.id, user_id=job.user_id):
                status = await self._status(job)
                try:
                    await self._resume_reply(job, status)
                except Exception as exc:
                    await self.endings.crash(job, status, exc)
                else:
                    self.metrics.job_concluded(OUTCOME_DONE)
                self.finished.add(job.id)
        # Timed outputs (subtitles, timestamps) need the path that gives timings, and a
        # sender's hotwords are theirs alone (one model call decodes with one prompt).
        alone = [job for job in fresh if self._prefs(job).needs_timings or job.payload.hotwords]
        together = [job for job in fresh if job not in alone]
        if len(together) == 1:
            alone.insert(0, together.pop())
        if together:
            self.metrics.batch_size.observe(len(together))
            await self._process_together(together)
        for job in alone:
            self.metrics.batch_size.observe(1)
            await self._process(job)

    async def _reuse(self, job: ClaimedJob) -> ClaimedJob:
        """A Telegram file the serving model already transcribed (the same file forwarded
        again) is tied to its stored transcript and answered from it, without download."""
        payload = job.payload
        if not isinstance(payload, TelegramFileJob):
            return job
        try:
            model = await asyncio.to_thread(self.pipeline.models.get)
            reused = await asyncio.to_thread(
                self.repeats.reuse,
                job,
                model.model_name,
                payload.file_unique_id,
                owner=self.queue.owner,
                vocabulary=vocabulary_key(payload.hotwords),
            )
        except Exception:  # a shortcut only: the normal path answers it
            log.exception("cannot look up a repeat of job %s", job.id)
            return job
        return job if reused is None else replace(job, transcription_id=reused)

    async def _reachable(self, job: ClaimedJob) -> bool:
        """Show "typing"; False, the job ended, if its chat cannot be answered at all
        (the bot was removed or muted): nothing is downloaded or transcribed for it."""
        refusal = await chat_refusal(self.delivery, job.chat_id, thread_id=job.payload.thread_id)
        if refusal is None:
            return True
        with log_context(job_id=job.id, user_id=job.user_id):
            await self.endings.unreachable(job, refusal)
        self.finished.add(job.id)
        return False

    async def _process(self, job: ClaimedJob) -> None:
        if not await self._reachable(job):
            return
        with log_context(job_id=job.id, user_id=job.user_id):
            status = await self._status(job)
            try:
                outcome: PipelineResult | Exception = await self._run_pipeline(job, status)
            except Exception as exc:
                outcome = exc
            await self._conclude(job, status, outcome)

    async def _process_together(self, jobs: list[ClaimedJob]) -> None:
        """Short voice notes: download them all, decode them in one model call, then
        answer each in the order they were sent."""
        jobs = [job for job in jobs if await self._reachable(job)]
        if not jobs:
            return
        statuses = [await self._status(job) for job in jobs]
        for status in statuses:
            await status.show(formatting.transcribing_text())
        downloads = await asyncio.gather(
            *(self._download(job.payload) for job in jobs), return_exceptions=True
        )
        sources = [d for d in downloads if not isinstance(d, BaseException)]
        loop = asyncio.get_running_loop()
        try:
            results = iter(
                await loop.run_in_executor(
                    self.cpu, lambda: self.pipeline.run_batch(sources, recall=self.repeats.recall)
                )
            )
        except Exception as exc:  # the model call itself failed: every job reports it
            results = iter([exc] * len(sources))
        for job, status, download in zip(jobs, statuses, downloads, strict=True):
            if isinstance(download, BaseException) and not isinstance(download, Exception):
                raise download  # cancellation
            outcome = download if isinstance(download, Exception) else next(results)
            with log_context(job_id=job.id, user_id=job.user_id):
                await self._conclude(job, status, outcome)

    async def _download(self, payload: JobPayload) -> MediaBytes:
        assert isinstance(payload, TelegramFileJob)
        try:
            data = await self.delivery.download(payload.file_id)
        except TelegramError as exc:  # the user hears why (InputRejected), no alert
            raise download_refusal(exc) from exc
        return MediaBytes(data, payload.source_kind, payload.file_unique_id)

    async def _conclude(
        self, job: ClaimedJob, status: StatusMessage, outcome: PipelineResult | Exception
    ) -> None:
        """Deliver a result, or say what went wrong: one place maps failures to messages."""
        if await self._forgotten(job, outcome):
            await status.delete()  # /forget stopped it: nothing of the user's remains
            self.metrics.job_concluded(OUTCOME_DISCARDED)
        elif isinstance(outcome, Cancelled) or self.cancels.is_set(job.id):
            await self.endings.stopped(job, status)
            self.metrics.job_concluded(OUTCOME_DISCARDED)
        elif isinstance(outcome, InputRejected):  # (a failed download from Telegram too)
            await self.endings.fail(job, status, outcome.message, outcome.reason)
            self.metrics.job_concluded(OUTCOME_REJECTED)
            if outcome.reason == BLOCKED_REASON:
                await self.endings.alert_blocked()
        elif isinstance(outcome, Exception):
            await self.endings.crash(job, status, outcome)
        else:
            try:
                delivered = await self._deliver(job, status, outcome)
            except Exception as exc:
                await self.endings.crash(job, status, exc)
            else:
                self.metrics.job_concluded(OUTCOME_DONE if delivered else OUTCOME_DISCARDED)
        self.finished.add(job.id)

    async def _forgotten(self, job: ClaimedJob, outcome: PipelineResult | Exception) -> bool:
        """Stopped because /forget deleted the job (its row is gone), not by "Annulla"."""
        stopped = isinstance(outcome, Cancelled) or self.cancels.is_set(job.id)
        stopped |= isinstance(outcome, InputRejected) and outcome.reason == "cancelled"
        return stopped and not await asyncio.to_thread(self.queue.exists, job.id)

    async def _run_pipeline(self, job: ClaimedJob, status: StatusMessage) -> PipelineResult:
        loop = asyncio.get_running_loop()
        payload = job.payload
        payload_is_file = isinstance(payload, TelegramFileJob)
        await status.show(formatting.downloading_text(None if payload_is_file else 0.0))
        cancel = self.cancels.event(job.id)
        timed = self._prefs(job).needs_timings
        key = vocabulary_key(payload.hotwords)  # a repeat is reused only with the same words
        if isinstance(payload, TelegramFileJob):
            source: MediaBytes | MediaLink = await self._download(payload)
            check_cancel(cancel)
            await status.show(formatting.transcribing_text())
        else:
            assert isinstance(payload, LinkJob)
            source = MediaLink(payload.url)
        shown = [Stage.TRANSCRIBE if payload_is_file else Stage.DOWNLOAD]

        def on_progress(stage: Stage, fraction: float | None) -> None:
            # Called in the worker thread: hop to the event loop, at most every few seconds
            # (a new stage is always shown).
            new_stage = stage is not shown[0]
            if not new_stage and not status.due():
                return
            shown[0] = stage
            if stage is Stage.DOWNLOAD:
                text = formatting.downloading_text(fraction)
            else:
                text = formatting.transcribing_text(fraction)
            asyncio.run_coroutine_threadsafe(status.progress(text, force=new_stage), loop)

        watcher = None
        if isinstance(source, MediaLink):  # only a download can be stopped halfway
            watcher = asyncio.create_task(self.cancels.when_forgotten(job.id))
        try:
            return await loop.run_in_executor(
                self.cpu,
                lambda: self.pipeline.run(
                    source,
                    progress=on_progress,
                    with_tags=False,
                    timestamps=timed,
                    # (A stored short note has no timings to reuse.)
                    recall=None if timed else partial(self.repeats.recall, vocabulary=key),
                    cancel=cancel,
                    hotwords=payload.hotwords,
                ),
            )
        except asyncio.CancelledError:
            cancel.set()  # the worker stops (shutdown): so does the download in its thread
            raise
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _deliver(
        self, job: ClaimedJob, status: StatusMessage, result: PipelineResult
    ) -> bool:
        """Store and send the transcript; False if it was discarded instead."""
        transcription = result.transcription
        if not result.reused:
            self.metrics.transcribed(
                elapsed=transcription.elapsed,
                audio_seconds=transcription.duration,
                model=transcription.model,
            )
        prefs = self._prefs(job)
        hashtags, late = await self._hashtags(prefs, result.hashtags, transcription.text)
        if prefs.hashtags:  # stored with the transcript (a repeat's, if it had none)
            result = _with_tags(result, hashtags)
        transcription_id = await asyncio.to_thread(self.queue.save_result, job, result)
        if isinstance(transcription_id, Discarded):
            if late is not None:
                late.cancel()
            if transcription_id is Discarded.FORGOTTEN:
                await status.delete()  # the user asked for nothing of theirs to remain
            elif transcription_id is Discarded.CANCELLED:  # (already marked cancelled)
                status.end_controls()
                await status.show(messages.JOB_CANCELLED)
            return False  # (TAKEN_OVER: the status message is the new owner's now)
        reply = Reply(
            job_id=job.id,
            chat_id=job.chat_id,
            reply_to=job.user_message_id,
            text=shown_text(result.transcription.text, result.transcription.segments, prefs),
            hashtags=hashtags,
            segments=result.transcription.segments,
            title=result.link.title if result.link else None,
            subtitles=result.link is not None and prefs.output not in FILE_OUTPUTS,
            output=prefs.output,
            transcription_id=transcription_id,
            audio_seconds=transcription.duration,
            thread_id=job.payload.thread_id,
        )
        message_ids = await self.delivery.reply(reply, status)
        await asyncio.to_thread(self.queue.finish, job, transcription_id, message_ids)
        log.info(
            "job %s answered: %.1f s of audio in %.2f s",
            job.id,
            transcription.duration,
            transcription.elapsed,
        )
        if late is not None:
            self.tags.add_later(reply, transcription_id, message_ids, late)
        return True

    async def _hashtags(
        self, prefs: ChatPreferences, stored: tuple[str, ...], text: str
    ) -> tuple[tuple[str, ...], asyncio.Future[tuple[str, ...]] | None]:
        """The reply's hashtags: none if the chat turned them off, else those stored with
        the transcript (a repeat's), or, when it has none (made with hashtags off, or its
        tags never came), new ones within the budget (and a future for late ones)."""
        if not prefs.hashtags:
            return (), None
        if stored:
            return stored, None
        return await self.tags.within_budget(text)

    async def _resume_reply(self, job: ClaimedJob, status: StatusMessage) -> None:
        assert job.transcription_id is not None
        stored = await asyncio.to_thread(self.queue.stored_transcript, job.transcription_id)
        if stored is None:  # forgotten between the crash and now
            await asyncio.to_thread(self.queue.fail, job, "transcript deleted")
            return
        prefs = self._prefs(job)
        segments = stored.segments
        hashtags, late = await self._hashtags(prefs, stored.hashtags, stored.text)
        if hashtags and not stored.hashtags:  # made now: kept with the transcript
            await asyncio.to_thread(self.queue.save_tags, job.transcription_id, hashtags)
        reply = Reply(
            job_id=job.id,
            chat_id=job.chat_id,
            reply_to=job.user_message_id,
            text=shown_text(stored.text, segments, prefs),
            hashtags=hashtags,
            segments=segments,
            subtitles=stored.source_kind == SOURCE_YOUTUBE and prefs.output not in FILE_OUTPUTS,
            output=prefs.output,
            transcription_id=job.transcription_id,
            audio_seconds=stored.audio_seconds,
            thread_id=job.payload.thread_id,
        )
        message_ids = await self.delivery.reply(reply, status)
        await asyncio.to_thread(self.queue.finish, job, job.transcription_id, message_ids)
        if late is not None:
            self.tags.add_later(reply, job.transcription_id, message_ids, late)


def _with_tags(result: PipelineResult, hashtags: tuple[str, ...]) -> PipelineResult:
    return replace(result, hashtags=hashtags)
