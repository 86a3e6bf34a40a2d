"""A job's status message: its progress ("In coda", "Scarico…", "Trascrivo…" with a bar),
edited at most every few seconds, until it becomes the transcript."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from telegram import Bot, InlineKeyboardMarkup, ReplyParameters
from telegram.error import BadRequest, TelegramError

log = logging.getLogger(__name__)

# Telegram rate-limits edits; a progress bar needs no more than one every few seconds.
STATUS_EDIT_INTERVAL_SECONDS = 3.0


class StatusMessage:
    """The message that shows a job's progress, edited at most every few seconds; it
    becomes the transcript. Once it has, or when it was deleted, a later text (an error)
    goes out as a new message: delivered text is never edited into something else."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        message_id: int | None,
        interval: float,
        *,
        reply_to: int | None = None,
        on_created: Callable[[int], Awaitable[None]] | None = None,
        markup: InlineKeyboardMarkup | None = None,
        thread_id: int | None = None,
    ) -> None:
        self.bot, self.chat_id, self.message_id = bot, chat_id, message_id
        self.thread_id = thread_id  # the request's forum topic (as ``Reply.thread_id``)
        # Buttons shown with every progress text (the "Annulla" button) until end_controls().
        self.markup = markup
        self.interval = interval
        self.reply_to = reply_to
        # Told the id of a message this object had to send itself, so that a job resumed
        # by another worker edits that message instead of sending a second one.
        self.on_created = on_created
        self._text: str | None = None
        self._last = 0.0
        self._delivered = False

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    async def progress(self, text: str, *, force: bool) -> None:
        """A progress text, scheduled from the decoding thread: one that arrives after the
        transcript (it was under way) is dropped, never sent as a stray message."""
        if not self._delivered:
            await self.show(text, force=force)

    async def show(self, text: str, *, force: bool = True) -> None:
        if text == self._text or (not force and not self.due()):
            return
        self._last = time.monotonic()
        self._text = text
        try:
            if (target := self.message_id) is not None:
                try:
                    await self.bot.edit_message_text(
                        text, self.chat_id, target, reply_markup=self.markup
                    )
                    return
                except BadRequest as exc:
                    # Its user deleted it: sent anew (unless this job let it go meanwhile).
                    if not not_found(exc) or self.message_id != target:
                        raise
                    log.info("status message deleted: sending it again")
                    self.message_id = None
            await self._send(text)
        except BadRequest as exc:
            if not not_modified(exc):
                log.warning("status message not updated: %s", exc)
        except TelegramError as exc:  # progress is best effort; the reply is what counts
            log.warning("status message not updated: %s", exc)

    async def _send(self, text: str) -> None:
        # It may become the transcript: it must reply to the user's message.
        sent = await self.bot.send_message(
            self.chat_id,
            text,
            reply_parameters=reply_parameters(self.reply_to),
            reply_markup=self.markup,
            message_thread_id=self.thread_id,
        )
        self.message_id = sent.message_id
        if self.on_created is not None:
            await self.on_created(sent.message_id)

    def became_transcript(self) -> None:
        """Its message now holds (the start of) the transcript: it is the user's, never
        edited or deleted from here on; a later text (an error) is a new message, and the
        job keeps the transcript's message as its own."""
        self.message_id = None
        self.on_created = None
        self._text = None
        self._delivered = True

    def end_controls(self) -> None:
        """The job is over: the next text shows no buttons."""
        self.markup = None

    async def delete(self) -> None:
        message_id, self.message_id = self.message_id, None  # (an edit under way gives up)
        if message_id is None:
            return
        with contextlib.suppress(TelegramError):
            await self.bot.delete_message(self.chat_id, message_id)


def not_modified(exc: BadRequest) -> bool:
    return "not modified" in str(exc).lower()


def not_found(exc: BadRequest) -> bool:
    """The message to edit is gone (its user deleted it)."""
    return "message to edit not found" in str(exc).lower()


def reply_parameters(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)
