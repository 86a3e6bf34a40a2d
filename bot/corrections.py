"""Corrections: a user's reply to a transcript becomes training text for its audio."""

from __future__ import annotations

import enum

from storage.unit_of_work import Database


class CorrectionOutcome(enum.Enum):
    SAVED = "saved"
    SAVED_NOT_FOR_TRAINING = "saved_not_for_training"
    NOT_A_TRANSCRIPT = "not_a_transcript"
    NOT_OWNER = "not_owner"
    TOO_LONG = "too_long"
    EMPTY = "empty"
    UNCHANGED = "unchanged"


class CorrectionService:
    """A user's reply to a transcript message becomes a correction (the latest counts).

    Audio longer than ``training_max_seconds`` (Whisper's 30 s window) is not used for
    training, because its text cannot be aligned to one window without timestamps we
    trust; its corrections are kept, for the record and for evaluation.
    """

    def __init__(self, db: Database, *, max_chars: int, training_max_seconds: float) -> None:
        self.db = db
        self.max_chars = max_chars
        self.training_max_seconds = training_max_seconds

    def record(
        self, *, chat_id: int, replied_message_id: int, user_id: int, text: str, group: bool
    ) -> CorrectionOutcome:
        from model.normalize import normalize_text
        from storage import repository

        text = text.strip()
        if not text:
            return CorrectionOutcome.EMPTY
        if len(text) > self.max_chars:
            return CorrectionOutcome.TOO_LONG
        with self.db.unit_of_work() as uow:
            session = uow.session
            row = repository.find_transcription_by_reply(
                session, chat_id=chat_id, message_id=replied_message_id
            )
            if row is None:
                return CorrectionOutcome.NOT_A_TRANSCRIPT
            if group and row.user_id != user_id:
                return CorrectionOutcome.NOT_OWNER
            latest = repository.latest_correction(session, row.id)
            current = latest.text if latest else row.text
            if normalize_text(current) == normalize_text(text):
                return CorrectionOutcome.UNCHANGED
            repository.touch_user(session, user_id)
            repository.add_correction(session, transcription_id=row.id, user_id=user_id, text=text)
            uow.commit()
            too_long = (row.audio_duration or 0.0) > self.training_max_seconds
        return CorrectionOutcome.SAVED_NOT_FOR_TRAINING if too_long else CorrectionOutcome.SAVED
