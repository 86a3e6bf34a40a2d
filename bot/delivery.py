"""Telegram delivery of a job: its status message (``bot.status_message``), the reply
(messages, .txt, .srt), late hashtags and failures. Everything here talks to the Bot API
and nothing else; it never touches the database or the model.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from telegram import Bot, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, TelegramError

from bot import formatting
from bot.cancel_button import cancel_markup
from bot.confirm_button import confirm_markup
from bot.output_formats import FILE_CAPTIONS, FILE_OUTPUTS, has_words, transcript_file
from bot.status_message import (
    STATUS_EDIT_INTERVAL_SECONDS,
    StatusMessage,
    not_modified,
    reply_parameters,
)
from model.asr.transcription import Segment
from storage.chat_settings import OUTPUT_SRT, OUTPUT_TEXT
from storage.confirmations import confirmable
from storage.models import LABEL_CONFIRMATION, LABEL_CORRECTION

log = logging.getLogger(__name__)

SUBTITLES_CAPTION = "🎞 Sottotitoli (.srt)"
FILE_NAME = "trascrizione-{job_id}.{extension}"


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
                reply_parameters=reply_parameters(reply_to),
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
        reply_to = reply_parameters(reply.reply_to)
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
        reply_to = reply_parameters(reply.reply_to)
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
                if not_modified(exc):  # already the transcript: a job resumed after
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
        caption = self._file_caption(reply, reply.hashtags)
        sent = await self.bot.send_document(
            reply.chat_id,
            InputFile(
                transcript_file(reply.output, reply.text, reply.segments),
                filename=_file_name(reply.job_id, reply.output),
            ),
            caption=caption,
            reply_parameters=reply_parameters(reply.reply_to),
            reply_markup=self._confirm_markup(reply),
            message_thread_id=reply.thread_id,
        )
        return [sent.message_id]

    async def add_late_tags(
        self, reply: Reply, hashtags: tuple[str, ...], message_ids: list[int], *, label: str = ""
    ) -> int | None:
        """Put hashtags that arrived after the reply into it: into a file's caption, or the
        last text message (a link's .srt stays as it is), or a new message replying to it
        when they spill over. ``label``: the transcript's latest label kind by now (a
        pressed ✅ stays pressed; a corrected transcript keeps no button). The id of a new
        message, if any."""
        if not hashtags or not message_ids:
            return None
        markup = self._confirm_markup(reply, label=label)
        try:
            if reply.output in FILE_OUTPUTS and has_words(reply.output, reply.text, reply.segments):
                caption = self._file_caption(reply, hashtags)
            else:
                content = self._messages(replace(reply, output=OUTPUT_TEXT), hashtags=hashtags)
                if not content.as_file:
                    texts = message_ids[:-1] if self._with_subtitles(reply) else message_ids
                    return await self._retag_messages(reply, content.messages, texts, markup)
                caption = content.messages[0]
            await self.bot.edit_message_caption(
                reply.chat_id, message_ids[0], caption=caption, reply_markup=markup
            )
        except TelegramError as exc:
            log.warning("late hashtags not shown: %s", exc)
        return None

    async def _retag_messages(
        self,
        reply: Reply,
        texts: tuple[str, ...],
        message_ids: list[int],
        markup: InlineKeyboardMarkup | None,
    ) -> int | None:
        index = len(texts) - 1
        if index < len(message_ids):
            # The last message keeps its "✅" button.
            last = index == len(message_ids) - 1
            await self.bot.edit_message_text(
                texts[index],
                reply.chat_id,
                message_ids[index],
                reply_markup=markup if last else None,
            )
            return None
        sent = await self.bot.send_message(
            reply.chat_id,
            texts[-1],
            reply_parameters=reply_parameters(message_ids[-1] if message_ids else None),
            message_thread_id=reply.thread_id,
        )
        return sent.message_id

    @staticmethod
    def _with_subtitles(reply: Reply) -> bool:
        """Whether the reply ended with a link's .srt file (after its text)."""
        return reply.subtitles and has_words(OUTPUT_SRT, reply.text, reply.segments)

    def _file_caption(self, reply: Reply, hashtags: tuple[str, ...]) -> str:
        return "\n\n".join(
            part
            for part in (
                FILE_CAPTIONS[reply.output],
                # Clipped as text, then escaped: a caption is never cut inside markup.
                formatting.escape(formatting.clip(" ".join(hashtags), formatting.MAX_NOTE_CHARS)),
            )
            if part
        )

    def _confirm_markup(self, reply: Reply, *, label: str = "") -> InlineKeyboardMarkup | None:
        """The "✅ Giusto" button, for transcripts training could use as labels; "✅
        Confermata" once confirmed, none once corrected."""
        if label == LABEL_CORRECTION or reply.transcription_id is None:
            return None
        if not confirmable(
            reply.text, reply.audio_seconds, max_seconds=self.options.confirm_max_seconds
        ):
            return None
        return confirm_markup(reply.transcription_id, confirmed=label == LABEL_CONFIRMATION)

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


def _file_name(job_id: int, extension: str) -> str:
    return FILE_NAME.format(job_id=job_id, extension=extension)
