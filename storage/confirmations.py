"""Confirmations: the audio's sender says a transcript is right (the "✅ Giusto" button).

A confirmation is stored as a correction row of kind ``confirmation`` whose text is the
transcript itself, so everything that follows corrections follows it too: the latest
label wins (a later correction replaces it), the labelling policy applies
(``storage.labels``), /forget and ``remove-user`` delete it, and the split puts its
sentence on one side. What differs is what it says about selection: a correction exists
because the serving model erred, a confirmation because it was right, and the gate
weighs the two accordingly (``training.gate_stats``).

Only clips the training path can use are confirmable, by the rule corrections follow for
training: stored audio of a user's message, no longer than Whisper's window, with a
transcript that is not empty and holds no control token.
"""

from __future__ import annotations

import enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import repository
from storage.labels import has_control_token
from storage.models import LABEL_CONFIRMATION, SOURCE_IMPORT, Correction, Transcription


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    CORRECTED = "corrected"  # its sender already corrected it: the correction stands
    NOT_OWNER = "not_owner"
    NOT_FOUND = "not_found"  # deleted (/forget, purge), or never a transcript of this chat
    NOT_USABLE = "not_usable"  # too long for training, empty, or holding a control token


def confirmable(text: str, audio_seconds: float | None, *, max_seconds: float) -> bool:
    """Whether a transcript of this length and audio could become a training label."""
    seconds = audio_seconds or 0.0
    return bool(text.strip()) and 0.0 < seconds <= max_seconds and not has_control_token(text)


def confirm_transcript(
    session: Session,
    *,
    transcription_id: int,
    chat_id: int | None,
    user_id: int,
    max_seconds: float,
) -> ConfirmOutcome:
    """Store the transcript of ``transcription_id`` as its sender's confirmed label (once).

    ``chat_id``: the chat the button was pressed in (None: not known); a transcript of
    another chat is not found. A correction stands: of this transcript, or of another
    copy of the same audio by the same user made after this transcript. The caller
    commits.
    """
    row = repository.get_transcription(session, transcription_id)
    if row is None or (chat_id is not None and row.chat_id != chat_id):
        return ConfirmOutcome.NOT_FOUND
    if row.user_id != user_id:
        return ConfirmOutcome.NOT_OWNER
    usable = row.audio_sha256 is not None and row.source_kind != SOURCE_IMPORT
    if not usable or not confirmable(row.text, row.audio_duration, max_seconds=max_seconds):
        return ConfirmOutcome.NOT_USABLE
    # The user row's lock first (as corrections take it): a second press handled at the
    # same time (a double tap; PostgreSQL) waits here, then finds the first one's row.
    repository.touch_user(session, user_id)
    latest = repository.latest_correction(session, transcription_id)
    if latest is not None:
        if latest.kind == LABEL_CONFIRMATION:
            return ConfirmOutcome.ALREADY_CONFIRMED
        return ConfirmOutcome.CORRECTED
    if _corrected_since(session, row):
        return ConfirmOutcome.CORRECTED
    repository.add_correction(
        session,
        transcription_id=transcription_id,
        user_id=user_id,
        text=row.text,
        kind=LABEL_CONFIRMATION,
    )
    return ConfirmOutcome.CONFIRMED


def _corrected_since(session: Session, row: Transcription) -> bool:
    """Whether the sender's latest label for this audio (any of their transcriptions of
    it, as ``storage.labels`` reads them) is a correction made after ``row``'s transcript:
    a press under an older reply of the same audio must not undo it."""
    latest = session.scalar(
        select(Correction)
        .join(Transcription, Transcription.id == Correction.transcription_id)
        .where(
            Transcription.audio_sha256 == row.audio_sha256,
            Transcription.user_id == row.user_id,
            Correction.user_id == row.user_id,
        )
        .order_by(Correction.id.desc())
        .limit(1)
    )
    return (
        latest is not None
        and latest.kind != LABEL_CONFIRMATION
        and latest.created_at >= row.created_at
    )
