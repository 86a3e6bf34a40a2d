"""How a job ends when no transcript is delivered: cancelled by its sender, refused with a
clear reason (nothing for the admins), its chat unreachable (the bot was removed or muted:
nobody to tell; a group upgraded to a supergroup: the job follows it), or crashed (an
apology, and the admins alerted). Also what a failed download from Telegram means to the
user."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable

from telegram.constants import ChatAction
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError

from bot import chat_changes, formatting, messages
from bot.delivery import Delivery, StatusMessage
from bot.ops.metrics import OUTCOME_DISCARDED, OUTCOME_FAILED, Metrics
from bot.ops.throttled_alert import ThrottledAlert
from bot.pipeline import InputRejected
from bot.work_queue import ClaimedJob, WorkQueue

log = logging.getLogger(__name__)

TOO_BIG_REASON = "too_big"
DOWNLOAD_FAILED_REASON = "download_failed"
# What Telegram says (lower case) when the bot may no longer write in a chat.
NO_RIGHTS_TEXTS = (
    "not enough rights",
    "have no rights to send",
    "chat_write_forbidden",
    "chat_restricted",
    "chat not found",
)


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
