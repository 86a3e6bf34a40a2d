"""Instant repeats: audio the serving model already transcribed is answered from storage.

A repeat is found by Telegram's ``file_unique_id`` (the same file forwarded again: no
download at all) or by the audio's content hash (the same audio uploaded again: decoded,
never transcribed). Only transcripts of the same model version whose audio is still stored
qualify, so the new row points at real audio and a correction of it is a valid sample.
Each user gets their own row: labels and corrections stay per user. A transcript decoded
with a user's vocabulary (hotwords) is reused only for a request with the same words.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Transcription, TranscriptionStatus

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
