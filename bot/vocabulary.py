"""Corrections that help at once: a user's corrected words bias that user's next notes.

When a user corrects a transcript, the words they inserted or substituted (without stop
words; ``model.asr.hotwords``) join their vocabulary (``storage.vocabulary``, newest
first, at most ``max_words``). When they send a note, the front reads their vocabulary
and puts it in the job's payload as faster-whisper ``hotwords``: the words travel with the
job to whichever worker takes it, so a note is only ever decoded with its own sender's
words. A note transcribed for someone who did not record it (``/trascrivi`` on another
user's note) gets no words at all: the transcript belongs to the note's author and must
not carry the requester's vocabulary. Instant repeats are keyed by the words used
(``storage.repeats``).
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session

from bot.job_payloads import JobPayload, TelegramFileJob
from model.asr.hotwords import corrected_words, hotwords_prompt, safe_words
from storage import vocabulary
from storage.unit_of_work import Database


class PersonalVocabulary:
    def __init__(self, db: Database, *, enabled: bool, max_words: int) -> None:
        self.db = db
        self.enabled = enabled
        self.max_words = max_words

    def learn(self, session: Session, *, user_id: int, transcript: str, correction: str) -> None:
        """Inside the correction's transaction: remember the words it taught (the user row
        exists: the correction refers to it)."""
        if not self.enabled:
            return
        words = corrected_words(transcript, correction)
        vocabulary.remember(session, user_id, words, cap=self.max_words)

    def words(self, user_id: int) -> list[str]:
        """The user's words, newest first (what /vocabolario shows)."""
        with self.db.unit_of_work(read_only=True) as uow:
            return safe_words(vocabulary.words(uow.session, user_id, limit=self.max_words))

    def clear(self, user_id: int) -> int:
        """Forget the user's words, copies in their jobs included (their corrections
        stay); how many there were."""
        with self.db.unit_of_work() as uow:
            count = vocabulary.clear(uow.session, user_id)
            uow.commit()
            return count

    def hotwords(self, user_id: int) -> str | None:
        """The user's words as the ``hotwords`` of their next note; None if none or off."""
        if not self.enabled:
            return None
        return hotwords_prompt(self.words(user_id))

    def personalise(self, payload: JobPayload, user_id: int) -> JobPayload:
        """``payload`` carrying its sender's hotwords, unless the note is not theirs."""
        if isinstance(payload, TelegramFileJob) and not payload.by_requester:
            return payload
        hotwords = self.hotwords(user_id)
        return payload if hotwords is None else replace(payload, hotwords=hotwords)
