"""Instant repeats: audio the serving model already transcribed is answered from storage.

A repeat is found by Telegram's ``file_unique_id`` (the same file forwarded again: no
download at all) or by the audio's content hash (the same audio uploaded again: decoded,
never transcribed). Only transcripts of the same model version whose audio is still stored
qualify, so the new row points at real audio and a correction of it is a valid sample.
Each user gets their own row: labels and corrections stay per user. A transcript decoded
with a user's vocabulary (hotwords) is reused only for a request with the same words.

A request whose owner already has that very transcript of that very file in that chat
from the last day is tied to that row, not given a copy (``save_transcript``): forwarding
one long note a thousand times stored a thousand copies of its text and segments, never
pruned. (Uploading the same audio again costs a decode, as any request does.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import repository
from storage.audio_store import AudioRef
from storage.models import Transcription, TranscriptionStatus, utcnow

# How recent an owner's row must be to answer their repeat: retention counts from a row's
# creation, so reusing an old one would let its audio go sooner than the user expects.
OWN_COPY_WINDOW = timedelta(days=1)

# Source kinds whose ``source_ref`` is a Telegram file_unique_id.
TELEGRAM_SOURCE_KINDS = ("voice", "audio", "video", "video_note", "document")


def find_reusable(
    session: Session,
    *,
    model_version: str,
    file_unique_id: str | None = None,
    audio_sha256: str | None = None,
    vocabulary_sha256: str | None = None,
) -> Transcription | None:
    """The newest finished transcript of this audio by ``model_version`` whose audio is
    still stored, matched by Telegram file id or by content hash (one of them), decoded
    with the same hotwords (``vocabulary_sha256``; None: without any). A transcript made
    with one user's words is never handed to a request without exactly those words."""
    if (file_unique_id is None) == (audio_sha256 is None):
        raise ValueError("give exactly one of file_unique_id and audio_sha256")
    statement = select(Transcription).where(
        Transcription.model_version == model_version,
        Transcription.status == TranscriptionStatus.DONE,
        Transcription.audio_sha256.is_not(None),
        Transcription.audio_purged_at.is_(None),
        Transcription.vocabulary_sha256.is_(None)
        if vocabulary_sha256 is None
        else Transcription.vocabulary_sha256 == vocabulary_sha256,
    )
    if file_unique_id is not None:
        statement = statement.where(
            Transcription.source_ref == file_unique_id,
            Transcription.source_kind.in_(TELEGRAM_SOURCE_KINDS),
        )
    else:
        statement = statement.where(Transcription.audio_sha256 == audio_sha256)
    return session.scalars(statement.order_by(Transcription.id.desc()).limit(1)).first()


@dataclass(frozen=True, kw_only=True)
class TranscriptRow:
    """A job's transcript as stored, whoever it belongs to."""

    source_kind: str
    source_ref: str | None
    text: str
    audio: AudioRef
    model_version: str | None
    language: str | None
    segments: list[dict[str, Any]]
    tags: list[str]
    timings: dict[str, float]
    vocabulary_sha256: str | None


def save_transcript(
    session: Session,
    row: TranscriptRow,
    *,
    owner: int | None,
    chat_id: int,
    user_message_id: int,
    now: datetime | None = None,
) -> Transcription:
    """``owner``'s row for ``row`` in ``chat_id``: the one they got there within
    ``OWN_COPY_WINDOW`` for the same source (the same Telegram file: a forward), audio,
    model, vocabulary, text and segments, else a new one."""
    now = now or utcnow()
    same = select(Transcription).where(
        Transcription.user_id.is_(None) if owner is None else Transcription.user_id == owner,
        Transcription.chat_id == chat_id,
        Transcription.source_kind == row.source_kind,
        Transcription.source_ref.is_(None)
        if row.source_ref is None
        else Transcription.source_ref == row.source_ref,
        Transcription.audio_sha256 == row.audio.sha256,
        Transcription.audio_purged_at.is_(None),
        Transcription.status == TranscriptionStatus.DONE,
        Transcription.model_version == row.model_version,
        Transcription.vocabulary_sha256.is_(None)
        if row.vocabulary_sha256 is None
        else Transcription.vocabulary_sha256 == row.vocabulary_sha256,
        Transcription.created_at >= now - OWN_COPY_WINDOW,
    )
    found = session.scalars(same.order_by(Transcription.id.desc()).limit(1)).first()
    if found is not None and found.text == row.text and list(found.segments) == row.segments:
        if row.tags and not found.tags:  # made where hashtags were off: this asks for them
            found.tags = list(row.tags)
        return found
    return repository.add_transcription(
        session,
        source_kind=row.source_kind,
        source_ref=row.source_ref,
        text=row.text,
        user_id=owner,
        chat_id=chat_id,
        user_message_id=user_message_id,
        audio=row.audio,
        model_version=row.model_version,
        language=row.language,
        segments=row.segments,
        tags=row.tags,
        timings=row.timings,
        vocabulary_sha256=row.vocabulary_sha256,
        now=now,
    )
