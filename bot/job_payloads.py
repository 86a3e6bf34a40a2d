"""What a queued job asks for: one frozen dataclass per kind of work.

The database stores a payload as JSON (``storage.jobs``); these types are how the bot
reads and writes it, so a field is named in one place and a stored job from an older
version that lacks a field fails loudly instead of half-working.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class TelegramFileJob:
    """A voice note, audio, video, video note or media document sent to the bot."""

    KIND: ClassVar[str] = "telegram_file"
    source_kind: str  # storage's source kinds: voice, audio, video, video_note, document
    file_id: str
    file_unique_id: str
    duration: float | None = None
    file_size: int | None = None
    mime_type: str | None = None
    file_name: str | None = None
    # ``/trascrivi`` on a note the requester did not record: the transcript belongs to the
    # note's author (None: unknown, e.g. a forward from a hidden account), who alone may
    # label it; the requester (or a forwarder) labels nothing.
    by_requester: bool = True
    author_id: int | None = None
    # The sender's vocabulary as faster-whisper hotwords (``bot.vocabulary``), read when
    # the job was accepted: it travels with the job, so a worker in any process decodes
    # with this sender's words and nobody else's. None: none (or the feature is off).
    hotwords: str | None = None
    # The forum topic the request was made in (its ``message_thread_id``): every message
    # about the job goes there, even once the user's message is gone. None: no topic.
    thread_id: int | None = None


@dataclass(frozen=True)
class LinkJob:
    """A YouTube link (already parsed into its canonical form by the handler)."""

    KIND: ClassVar[str] = "link"
    url: str
    video_id: str | None = None
    hotwords: str | None = None  # as ``TelegramFileJob.hotwords``
    thread_id: int | None = None  # as ``TelegramFileJob.thread_id``


JobPayload = TelegramFileJob | LinkJob
_KINDS: dict[str, type[TelegramFileJob] | type[LinkJob]] = {
    TelegramFileJob.KIND: TelegramFileJob,
    LinkJob.KIND: LinkJob,
}


class UnknownJobError(ValueError):
    """A stored job of a kind (or shape) this version does not know."""


def to_record(payload: JobPayload) -> tuple[str, dict[str, Any]]:
    """(kind, JSON-able dict) for the database."""
    return payload.KIND, asdict(payload)


def from_record(kind: str, data: dict[str, Any]) -> JobPayload:
    cls = _KINDS.get(kind)
    if cls is None:
        raise UnknownJobError(f"unknown job kind {kind!r}")
    known = {field.name for field in fields(cls)}
    try:
        return cls(**{key: value for key, value in data.items() if key in known})
    except TypeError as exc:
        raise UnknownJobError(f"malformed {kind} job: {exc}") from exc
