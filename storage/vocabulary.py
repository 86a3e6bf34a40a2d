"""A user's vocabulary: the words their corrections taught, newest first.

One row per (user, word) (case-insensitively); a word taught again moves to the front. At
most ``cap`` words are kept per user: the oldest go. Clearing removes the words and their
copies in the user's jobs' payloads: the corrections they came from stay (training data)
until /forget (which deletes the jobs too). The words arrive already
checked (``model.asr.hotwords``); storage only keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import Job, VocabularyWord

# Where a job's payload carries a copy of its sender's words (``bot.job_payloads``).
JOB_PAYLOAD_FIELD = "hotwords"


def remember(session: Session, user_id: int, words: Sequence[str], *, cap: int) -> None:
    """Put ``words`` (the first one the most important) at the front of the user's
    vocabulary, then keep its ``cap`` newest words. The user row must exist."""
    if not words:
        return
    keys = [word.lower() for word in words]
    session.execute(
        delete(VocabularyWord)
        .where(VocabularyWord.user_id == user_id, VocabularyWord.word_key.in_(keys))
        .execution_options(synchronize_session="fetch")
    )
    # Newest first by id: insert the last word first, so the first gets the highest id.
    for word, key in reversed(list(zip(words, keys, strict=True))):
        session.add(VocabularyWord(user_id=user_id, word=word, word_key=key))
    session.flush()
    stale = select(VocabularyWord.id).where(VocabularyWord.user_id == user_id)
    stale = stale.order_by(VocabularyWord.id.desc()).offset(max(0, cap))
    old_ids = list(session.scalars(stale))
    if old_ids:
        session.execute(
            delete(VocabularyWord)
            .where(VocabularyWord.id.in_(old_ids))
            .execution_options(synchronize_session="fetch")
        )


def words(session: Session, user_id: int, *, limit: int) -> list[str]:
    """The user's newest ``limit`` words, newest first."""
    statement = (
        select(VocabularyWord.word)
        .where(VocabularyWord.user_id == user_id)
        .order_by(VocabularyWord.id.desc())
        .limit(max(0, limit))
    )
    return list(session.scalars(statement))


def clear(session: Session, user_id: int) -> int:
    """Forget the user's words (not their corrections), and their copies in the user's
    jobs, finished or still queued; how many words there were."""
    result = session.execute(
        delete(VocabularyWord)
        .where(VocabularyWord.user_id == user_id)
        .execution_options(synchronize_session="fetch")
    )
    _scrub_job_copies(session, user_id)
    return result.rowcount


def _scrub_job_copies(session: Session, user_id: int) -> None:
    """Drop the words from the payloads of the user's jobs: kept there, they outlived the
    clearing until the jobs' retention, and a queued note was still decoded with them."""
    for job in session.scalars(select(Job).where(Job.user_id == user_id)):
        payload = dict(job.payload or {})
        if payload.pop(JOB_PAYLOAD_FIELD, None) is not None:
            job.payload = payload  # a new dict: the JSON column sees the change
    session.flush()
