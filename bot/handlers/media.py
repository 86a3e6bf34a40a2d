"""Voice notes, audio, video, video notes and audio/video documents -> a transcription job."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePath

from telegram import Message, MessageOriginUser, Update, User
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot import messages
from bot.handlers.common import (
    NOT_EDITED,
    addressed,
    answer,
    command,
    counted_sender,
    is_private,
    services,
    submit_job,
)
from bot.handlers.preferences import transcribes_everything
from bot.job_payloads import TelegramFileJob

MEDIA_FILTER = (
    filters.VOICE | filters.AUDIO | filters.VIDEO | filters.VIDEO_NOTE | filters.Document.ALL
)
# What a document sent as "application/octet-stream" may be called: the containers the
# decoder reads (model.asr.audio.ALLOWED_DEMUXERS), by their usual extensions.
AUDIO_EXTENSIONS = (".ogg", ".oga", ".opus", ".mp3", ".m4a", ".m4b", ".aac", ".wav", ".w64",
                    ".flac", ".amr", ".aif", ".aiff", ".caf", ".wma", ".mka", ".weba")  # fmt: skip
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".3gp", ".3g2", ".wmv",
                    ".asf", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts")  # fmt: skip
MEDIA_EXTENSIONS = frozenset((*AUDIO_EXTENSIONS, *VIDEO_EXTENSIONS))


def media_of(message: Message) -> TelegramFileJob | None:
    """The media a message carries, if any (documents only when audio or video)."""
    for kind in ("voice", "audio", "video", "video_note", "document"):
        media = getattr(message, kind)
        if media is None:
            continue
        raw = media.to_dict()  # plain values; avoids PTB's duration deprecation warning
        mime = raw.get("mime_type")
        name = raw.get("file_name")
        if kind == "document" and not _is_media_document(mime, name):
            return None
        return TelegramFileJob(
            source_kind=kind,
            file_id=raw["file_id"],
            file_unique_id=raw["file_unique_id"],
            duration=raw.get("duration"),
            file_size=raw.get("file_size"),
            mime_type=mime,
            file_name=name,
        )
    return None


def _is_media_document(mime: str | None, name: str | None) -> bool:
    if mime and mime.split("/")[0] in ("audio", "video"):
        return True
    return bool(name) and PurePath(name.lower()).suffix in MEDIA_EXTENSIONS


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or not await _asked_for(update, context, message):
        return
    user = await counted_sender(update, context)
    if user is not None:
        await accept(update, context, message, user)


async def _asked_for(update: Update, context: ContextTypes.DEFAULT_TYPE, message: Message) -> bool:
    """Addressed (always, in a private chat), in a group that has everything transcribed,
    or one file of an album whose caption addressed the bot (bot/albums.py)."""
    album = None
    if message.media_group_id is not None and not is_private(update):
        album = (message.chat_id, message.media_group_id)
    if addressed(update, context):
        if album is not None:  # before any await: the album's other items may be waiting
            services(context).albums.mark_asked(album)
        return True
    if await transcribes_everything(update, context):
        return True
    return album is not None and await services(context).albums.asked(album)


async def on_transcribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/trascrivi`` as a reply to a media message (the way to ask for it in groups)."""
    user = await counted_sender(update, context)
    if user is None:
        return
    message = update.effective_message
    target = message.reply_to_message if message else None
    if target is None or media_of(target) is None:
        await answer(update, messages.TRANSCRIBE_HOW)
        return
    await accept(update, context, target, user, requested=True)


def note_author(note: Message) -> int | None:
    """Who recorded ``note``, as far as Telegram says: its sender, or for a forward the
    original sender (None when hidden, or when it came from a chat or channel)."""
    if note.sender_chat is not None:  # its ``from`` is a placeholder shared by every chat
        return None
    origin = note.forward_origin
    if origin is None:
        return note.from_user.id if note.from_user is not None else None
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.id
    return None


async def accept(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    media_message: Message,
    user: User,
    *,
    requested: bool = False,
) -> None:
    """Check the limits from Telegram's metadata, then queue the job for ``user`` (from
    :func:`counted_sender`). ``requested``: by ``/trascrivi``, whose author need not be
    the note's: the note's author labels it."""
    settings = services(context).settings
    media = media_of(media_message)
    if media is None:
        if is_private(update) or media_message is not update.effective_message:
            await answer(update, messages.UNSUPPORTED_FILE)
        return
    if media.file_size is not None and media.file_size > settings.max_file_bytes:
        await answer(update, messages.FILE_TOO_BIG.format(max_mb=_mb(settings.max_file_bytes)))
        return
    if media.duration is not None and media.duration > settings.max_audio_seconds:
        await answer(
            update,
            messages.AUDIO_TOO_LONG.format(
                max_duration=messages.format_duration(settings.max_audio_seconds)
            ),
        )
        return
    if requested:
        author = note_author(media_message)
        if author != user.id:
            media = replace(media, by_requester=False, author_id=author)
    await submit_job(update, context, media, target=media_message, user=user)


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f}"


# Whatever else a person can send in a private chat (a photo, a sticker, a location, a
# poll...): answered, never met with silence.
OTHER_MESSAGES = (
    filters.ChatType.PRIVATE
    & ~(MEDIA_FILTER | filters.TEXT | filters.COMMAND | filters.StatusUpdate.ALL)
    & NOT_EDITED
)


async def on_other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await counted_sender(update, context) is not None:
        await answer(update, messages.UNSUPPORTED_MESSAGE)


def register(app: Application) -> None:
    app.add_handler(command("trascrivi", on_transcribe_command))
    app.add_handler(MessageHandler(MEDIA_FILTER & NOT_EDITED, on_media))
    app.add_handler(MessageHandler(OTHER_MESSAGES, on_other_message))
