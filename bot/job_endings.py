"""How a job ends when no transcript is delivered: cancelled by its sender, refused with a
clear reason (nothing for the admins), its chat unreachable (the bot was removed or muted:
nobody to tell; a group upgraded to a supergroup: the job follows it), or crashed (an
apology, and the admins alerted). A job whose workers kept dying under it ends as a crash
too, told by the process whose requeue failed it. Also what a failed download from
Telegram means to the user."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable, Collection

from telegram.constants import ChatAction
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError

from bot import chat_changes, formatting, messages
from bot.delivery import Delivery
from bot.job_payloads import UnknownJobError, from_record
from bot.ops.log_format import log_context
from bot.ops.metrics import OUTCOME_DISCARDED, OUTCOME_FAILED, Metrics
from bot.ops.throttled_alert import ThrottledAlert
from bot.pipeline import InputRejected
from bot.status_message import StatusMessage
from bot.work_queue import ClaimedJob, WorkQueue
from storage.job_recovery import INTERRUPTED_ERROR
from storage.models import Job
from storage.unit_of_work import Database

log = logging.getLogger(__name__)

TOO_BIG_REASON = "too_big"
DOWNLOAD_FAILED_REASON = "download_failed"
# What Telegram says (lower case) when the bot may no longer write in a chat, or in the
# request's forum topic (closed or deleted meanwhile).
NO_RIGHTS_TEXTS = (
    "not enough rights",
    "have no rights to send",
    "chat_write_forbidden",
    "chat_restricted",
    "chat not found",
    "message thread not found",
    "topic_closed",
    "topic_deleted",
)


class JobInterrupted(Exception):
    """Its workers stopped mid-job (killed, a machine gone) until it ran out of attempts."""


def unreachable_chat(exc: BaseException) -> bool:
    """The chat cannot be answered at all: the bot was removed (Forbidden), muted or the
    chat is gone (BadRequest), or the group became a supergroup (ChatMigrated)."""
    if isinstance(exc, Forbidden | ChatMigrated):
        return True
    return isinstance(exc, BadRequest) and any(t in str(exc).lower() for t in NO_RIGHTS_TEXTS)


async def chat_refusal(
    delivery: Delivery, chat_id: int, *, thread_id: int | None = None
) -> TelegramError | None:
    """Show "typing" in the chat (in its forum topic ``thread_id``); Telegram's refusal when
    the chat cannot be answered at all (then nothing need be downloaded or transcribed for
    it), else None."""
    try:
        await delivery.bot.send_chat_action(chat_id, ChatAction.TYPING, message_thread_id=thread_id)
    except TelegramError as exc:  # "typing" itself is best effort
        return exc if unreachable_chat(exc) else None
    return None


def download_refusal(exc: TelegramError) -> InputRejected:
    """The user's file could not be fetched from Telegram (over its download limit, a
    timeout, a network error): not a bug of ours, so a clear message and no alert."""
    if isinstance(exc, BadRequest) and "too big" in str(exc).lower():
        return InputRejected(TOO_BIG_REASON, messages.TELEGRAM_FILE_TOO_BIG)
    log.warning("download from Telegram failed: %s", exc)
    return InputRejected(DOWNLOAD_FAILED_REASON, messages.DOWNLOAD_FAILED)


class JobEndings:
    def __init__(
        self,
        queue: WorkQueue,
        metrics: Metrics,
        report_error: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        self.queue = queue
        self.metrics = metrics
        self.report_error = report_error
        self.blocked_alert = ThrottledAlert()

    async def stopped(self, job: ClaimedJob, status: StatusMessage) -> None:
        """Its sender cancelled it: nothing stored, nothing sent but "Annullata"."""
        log.info("job %s cancelled by its sender", job.id)
        status.end_controls()
        await status.show(messages.JOB_CANCELLED)
        await asyncio.to_thread(self.queue.cancelled, job)

    async def fail(self, job: ClaimedJob, status: StatusMessage, text: str, reason: str) -> None:
        status.end_controls()
        await status.show(f"⚠️ {formatting.escape(text)}")
        await asyncio.to_thread(self.queue.fail, job, reason)

    async def alert_blocked(self) -> None:
        """YouTube refuses this server: the admins hear it once an hour, with what to do."""
        log.warning("YouTube asks this server to confirm it is not a bot")
        if self.report_error is not None and self.blocked_alert.due():
            with contextlib.suppress(Exception):
                await self.report_error(messages.YOUTUBE_BLOCKED_ALERT)

    async def unreachable(self, job: ClaimedJob, exc: BaseException) -> None:
        """Its chat cannot be answered: no apology (it could not be sent), no alert (not a
        bug). A group upgraded to a supergroup takes the job along, to be answered there."""
        if isinstance(exc, ChatMigrated):
            await asyncio.to_thread(
                chat_changes.requeue_moved_job,
                self.queue.db,
                job.chat_id,
                exc.new_chat_id,
                job_id=job.id,
                owner=self.queue.owner,
                attempt=job.attempt,
            )
            return
        log.warning("job %s ended: chat %s unreachable (%s)", job.id, job.chat_id, exc)
        self.metrics.job_concluded(OUTCOME_DISCARDED)
        await asyncio.to_thread(self.queue.fail, job, chat_changes.unreachable_error(str(exc)))

    async def crash(self, job: ClaimedJob, status: StatusMessage, exc: BaseException) -> None:
        if unreachable_chat(exc):
            await self.unreachable(job, exc)
            return
        log.error("job %s failed", job.id, exc_info=exc)
        self.metrics.job_concluded(OUTCOME_FAILED)
        status.end_controls()
        # (Once delivery began, this goes out as a new message: the transcript stays.)
        await status.show(messages.INTERNAL_ERROR)
        error = f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(self.queue.fail, job, error)
        if self.report_error is not None:
            # Exception texts can hold anything (file names, '<'): escape them, or
            # Telegram refuses the alert's HTML and the admins hear nothing.
            kind = type(job.payload).KIND
            with contextlib.suppress(Exception):
                await self.report_error(f"job {job.id} ({kind}): {html.escape(error)}")

    async def interrupted(self, delivery: Delivery, job_ids: Collection[int]) -> None:
        """Jobs the queue failed because their workers kept dying (``INTERRUPTED_ERROR``),
        in this process's requeue: it alone got their ids, so it alone ends them, as a
        crash (the apology in their status message, the metric, the log, the alert)."""
        for job in await asyncio.to_thread(_interrupted_jobs, self.queue.db, job_ids):
            if job is None:
                self.metrics.job_concluded(OUTCOME_FAILED)
                continue
            # A status message that already holds (part of) the transcript stays as it is.
            message_id = job.status_message_id if job.transcription_id is None else None
            status = delivery.status(
                job.chat_id,
                message_id,
                reply_to=job.user_message_id,
                thread_id=job.payload.thread_id,
            )
            with log_context(job_id=job.id, user_id=job.user_id):
                await self.crash(job, status, JobInterrupted(INTERRUPTED_ERROR))


def _interrupted_jobs(db: Database, job_ids: Collection[int]) -> list[ClaimedJob | None]:
    """The failed jobs to answer, as their workers saw them; None for one with nobody to
    answer (no chat, or a kind this version cannot read), logged here."""
    found: list[ClaimedJob | None] = []
    with db.unit_of_work(read_only=True) as uow:
        for job_id in job_ids:
            row = uow.session.get(Job, job_id)
            if row is None:  # forgotten meanwhile (/forget)
                continue
            try:
                payload = from_record(row.kind, dict(row.payload))
            except UnknownJobError:
                payload = None
            chat, user, message = row.chat_id, row.user_id, row.user_message_id
            if payload is None or chat is None or user is None or message is None:
                log.error("job %s failed: %s (nobody to tell)", job_id, INTERRUPTED_ERROR)
                found.append(None)
                continue
            found.append(
                ClaimedJob(
                    id=row.id,
                    payload=payload,
                    user_id=user,
                    chat_id=chat,
                    user_message_id=message,
                    status_message_id=row.status_message_id,
                    transcription_id=row.transcription_id,
                    attempt=row.attempts,
                )
            )
    return found
