"""Telegram delivery of a job: the status message, the reply (messages, .txt, .srt), late
hashtags and failures. Everything here talks to the Bot API and nothing else; it never
touches the database or the model.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from telegram import Bot, InlineKeyboardMarkup, InputFile, ReplyParameters
from telegram.error import BadRequest, TelegramError

from bot import formatting
from bot.cancel_button import cancel_markup
from bot.confirm_button import confirm_markup
from bot.output_formats import FILE_CAPTIONS, FILE_OUTPUTS, has_words, transcript_file
from model.asr.transcription import Segment
from storage.chat_settings import OUTPUT_SRT, OUTPUT_TEXT
from storage.confirmations import confirmable

log = logging.getLogger(__name__)

SUBTITLES_CAPTION = "🎞 Sottotitoli (.srt)"
FILE_NAME = "trascrizione-{job_id}.{extension}"


# Telegram rate-limits edits; a progress bar needs no more than one every few seconds.
STATUS_EDIT_INTERVAL_SECONDS = 3.0


@dataclass(frozen=True, kw_only=True)
class DeliveryOptions:
    max_message_chars: int
    long_text_as_file_chars: int
    status_edit_interval: float = STATUS_EDIT_INTERVAL_SECONDS
    # Transcripts of audio up to this long carry the "✅ Giusto" button (0 = never):
    # the longest clip training can use.
    confirm_max_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A transcript as the user will get it."""

    job_id: int
    chat_id: int
    reply_to: int
    text: str
    hashtags: tuple[str, ...]
    segments: tuple[Segment, ...] = ()
    title: str | None = None  # a video's title, shown above its transcript
    subtitles: bool = False  # links also get a .srt file
    output: str = OUTPUT_TEXT  # the chat's choice (/impostazioni): text, or a file
    # The stored transcription and its audio's length: the "✅ Giusto" button's data.
    transcription_id: int | None = None
    audio_seconds: float = 0.0
    thread_id: int | None = None  # the request's forum topic: every message goes there


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
                    if not _not_found(exc) or self.message_id != target:
                        raise
                    log.info("status message deleted: sending it again")
                    self.message_id = None
            await self._send(text)
        except BadRequest as exc:
            if not _not_modified(exc):
                log.warning("status message not updated: %s", exc)
        except TelegramError as exc:  # progress is best effort; the reply is what counts
            log.warning("status message not updated: %s", exc)

    async def _send(self, text: str) -> None:
        # It may become the transcript: it must reply to the user's message.
        sent = await self.bot.send_message(
            self.chat_id,
            text,
            reply_parameters=_reply_to(self.reply_to),
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


class Delivery:
    def __init__(self, bot: Bot, options: DeliveryOptions) -> None:
        self.bot = bot
        self.options = options

    def status(
        self,
        chat_id: int,
        message_id: int | None,
        *,
        reply_to: int,
        on_created: Callable[[int], Awaitable[None]] | None = None,
        job_id: int | None = None,
        thread_id: int | None = None,
    ) -> StatusMessage:
        """The status message of a job (with its "Annulla" button when ``job_id`` is given)."""
        return StatusMessage(
            self.bot,
            chat_id,
            message_id,
            self.options.status_edit_interval,
            reply_to=reply_to,
            on_created=on_created,
            markup=None if job_id is None else cancel_markup(job_id),
            thread_id=thread_id,
        )

    async def send_queued(
        self,
        chat_id: int,
        reply_to: int,
        text: str,
        *,
        job_id: int | None = None,
        thread_id: int | None = None,
    ) -> int | None:
        """A job's first status message ("In coda: posizione 2 di 3 · circa 20 s", with the
        "Annulla" button when ``job_id`` is given); its id, or None if it failed."""
        try:
            sent = await self.bot.send_message(
                chat_id,
                text,
                reply_parameters=_reply_to(reply_to),
                reply_markup=None if job_id is None else cancel_markup(job_id),
                message_thread_id=thread_id,
            )
        except TelegramError as exc:  # the job still runs; it will send its own message
            log.warning("queued message not sent: %s", exc)
            return None
        return sent.message_id

    async def update_queued(self, chat_id: int, message_id: int, job_id: int, text: str) -> None:
        """A new place or estimate in a job's "In coda" message (best effort)."""
        try:
            await self.bot.edit_message_text(
                text, chat_id, message_id, reply_markup=cancel_markup(job_id)
            )
        except TelegramError as exc:
            log.debug("queued message not updated: %s", exc)

    async def download(self, file_id: str) -> bytes | Path:
        """A Telegram file's bytes; from a local Bot API server (``--local``, files up to
        2000 MB), the path of the server's own copy instead, read in place: never a whole
        file in this process's memory (it was, twice over, and spilled again to decode)."""
        file = await self.bot.get_file(file_id)
        if self.bot.local_mode and file.file_path and Path(file.file_path).is_absolute():
            return Path(await file.download_to_drive())  # PTB returns the local path as is
        return bytes(await file.download_as_bytearray())

    async def reply(self, reply: Reply, status: StatusMessage) -> list[int]:
        """Send the transcript (editing the status message into it); the message ids."""
        if reply.output in FILE_OUTPUTS:
            return await self._reply_file(reply, status)
        bot = self.bot
        content = self._messages(reply)
        reply_to = _reply_to(reply.reply_to)
        # The button goes under the transcript's last message (or its file).
        confirm = self._confirm_markup(reply)
        ids: list[int] = []
        if content.as_file:
            await status.delete()
            sent = await bot.send_document(
                reply.chat_id,
                InputFile(reply.text.encode(), filename=_file_name(reply.job_id, "txt")),
                caption=content.messages[0],  # fits: cut on its text, not its markup
                reply_parameters=reply_to,
                reply_markup=confirm,
                message_thread_id=reply.thread_id,
            )
            ids.append(sent.message_id)
        else:
            ids = await self._reply_messages(reply, status, content.messages, confirm)
        if reply.subtitles and has_words(OUTPUT_SRT, reply.text, reply.segments):
            from model.asr.subtitles import segments_to_srt

            sent = await bot.send_document(
                reply.chat_id,
                InputFile(
                    segments_to_srt(reply.segments).encode(),
                    filename=_file_name(reply.job_id, "srt"),
                ),
                caption=SUBTITLES_CAPTION,
                reply_parameters=reply_to,
                message_thread_id=reply.thread_id,
            )
            ids.append(sent.message_id)
        return ids

    async def _reply_messages(
        self,
        reply: Reply,
        status: StatusMessage,
        texts: tuple[str, ...],
        confirm: InlineKeyboardMarkup | None,
    ) -> list[int]:
        """The transcript as messages: the status message becomes the first; the button
        goes under the last."""
        bot = self.bot
        reply_to = _reply_to(reply.reply_to)
        ids: list[int] = []
        first, *rest = texts
        markup = None if rest else confirm
        if status.message_id is not None:
            try:
                await bot.edit_message_text(
                    first, reply.chat_id, status.message_id, reply_markup=markup
                )
                ids.append(status.message_id)
            except BadRequest as exc:
                if _not_modified(exc):  # already the transcript: a job resumed after
                    ids.append(status.message_id)  # its worker died mid-delivery
                else:
                    await status.delete()
            except TelegramError:
                await status.delete()
        if ids:
            status.became_transcript()  # (before the next part can fail)
        else:
            sent = await bot.send_message(
                reply.chat_id,
                first,
                reply_parameters=reply_to,
                reply_markup=markup,
                message_thread_id=reply.thread_id,
            )
            ids.append(sent.message_id)
        for index, text in enumerate(rest, start=1):
            sent = await bot.send_message(
                reply.chat_id,
                text,
                reply_parameters=reply_to,
                reply_markup=confirm if index == len(rest) else None,
                message_thread_id=reply.thread_id,
            )
            ids.append(sent.message_id)
        return ids

    async def _reply_file(self, reply: Reply, status: StatusMessage) -> list[int]:
        """The transcript as the file the chat chose (.txt, .srt, .vtt), hashtags in its
        caption; the status message goes away. Without words there is no file (Telegram
        refuses empty ones): the text reply says so."""
        if not has_words(reply.output, reply.text, reply.segments):
            return await self.reply(replace(reply, output=OUTPUT_TEXT), status)
        await status.delete()
        caption = "\n\n".join(
            part
            for part in (
                FILE_CAPTIONS[reply.output],
                # Clipped as text, then escaped: a caption is never cut inside markup.
                formatting.escape(
                    formatting.clip(" ".join(reply.hashtags), formatting.MAX_NOTE_CHARS)
                ),
            )
            if part
        )
        sent = await self.bot.send_document(
            reply.chat_id,
            InputFile(
                transcript_file(reply.output, reply.text, reply.segments),
                filename=_file_name(reply.job_id, reply.output),
            ),
            caption=caption,
            reply_parameters=_reply_to(reply.reply_to),
            reply_markup=self._confirm_markup(reply),
            message_thread_id=reply.thread_id,
        )
        return [sent.message_id]

    async def add_late_tags(
        self, reply: Reply, hashtags: tuple[str, ...], message_ids: list[int]
    ) -> int | None:
        """Put hashtags that arrived after the reply into it: edit its last message, or
        send a new one (replying to it, in the request's topic) when the tags spill over.
        The id of a new message, if any."""
        if not hashtags or reply.subtitles or reply.output in FILE_OUTPUTS:
            return None  # subtitled replies keep their layout; the tags are stored anyway
        content = self._messages(reply, hashtags=hashtags)
        if content.as_file:
            return None  # a document keeps its caption
        last_text = content.messages[-1]
        index = len(content.messages) - 1
        try:
            if index < len(message_ids):
                # The last message keeps its "✅ Giusto" button.
                markup = self._confirm_markup(reply) if index == len(message_ids) - 1 else None
                await self.bot.edit_message_text(
                    last_text, reply.chat_id, message_ids[index], reply_markup=markup
                )
                return None
            sent = await self.bot.send_message(
                reply.chat_id,
                last_text,
                reply_parameters=_reply_to(message_ids[-1] if message_ids else None),
                message_thread_id=reply.thread_id,
            )
        except TelegramError as exc:
            log.warning("late hashtags not shown: %s", exc)
            return None
        return sent.message_id

    def _confirm_markup(self, reply: Reply) -> InlineKeyboardMarkup | None:
        """The "✅ Giusto" button, for transcripts training could use as labels."""
        if reply.transcription_id is None or not confirmable(
            reply.text, reply.audio_seconds, max_seconds=self.options.confirm_max_seconds
        ):
            return None
        return confirm_markup(reply.transcription_id)

    def _messages(
        self, reply: Reply, *, hashtags: tuple[str, ...] | None = None
    ) -> formatting.TranscriptMessages:
        return formatting.transcript_messages(
            reply.text,
            reply.hashtags if hashtags is None else hashtags,
            limit=self.options.max_message_chars,
            file_threshold=self.options.long_text_as_file_chars,
            note=f"{formatting.TITLE_MARK} {reply.title}" if reply.title else None,
        )


def _not_modified(exc: BadRequest) -> bool:
    return "not modified" in str(exc).lower()


def _not_found(exc: BadRequest) -> bool:
    """The message to edit is gone (its user deleted it)."""
    return "message to edit not found" in str(exc).lower()


def _reply_to(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)


def _file_name(job_id: int, extension: str) -> str:
    return FILE_NAME.format(job_id=job_id, extension=extension)
