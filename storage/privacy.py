"""Retention and erasure: purge audio nobody corrected, delete everything of one user,
sweep audio no row refers to.

Audio blobs are shared between rows (deduplication), so a blob is deleted only when no
transcription refers to it any more. Files are deleted only after the caller's commit:
a rolled-back transaction must not leave rows pointing at missing audio.

A job in flight when its user runs /forget is deleted with the user; the worker stores
its result only if ``job_exists`` (in the same transaction), and the blob it wrote
before that check is removed by ``delete_blobs_if_unreferenced`` or, failing that, by
the periodic ``sweep_orphan_blobs``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, event, exists, select, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.dml import Delete

from storage.audio_store import AudioStore
from storage.job_cancel import request_cancel
from storage.models import (
    Correction,
    Job,
    JobStatus,
    ReplyMessage,
    Transcription,
    User,
    VocabularyWord,
    utcnow,
)

# Keeps IN (...) lists well under every backend's bound-parameter limit.
_IN_CHUNK = 500
_PENDING_KEY = "whisper_it_blobs_to_delete"
_HOOKED_KEY = "whisper_it_blob_hooks"
# A blob is written just before the transaction that refers to it commits; the sweep
# spares blobs younger than this, far longer than that window (or a busy timeout).
DEFAULT_SWEEP_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class DeletedCounts:
    users: int
    transcriptions: int
    corrections: int
    jobs: int
    audio_files: int  # blob files deleted (others' rows may keep a shared one)
    recordings: int = 0  # the user's distinct recordings: what the user is told


def purge_uncorrected_audio(
    session: Session, store: AudioStore, older_than: datetime, *, now: datetime | None = None
) -> int:
    """Drop the audio of transcriptions created before ``older_than`` that nobody corrected.

    The text stays; the transcription records when its audio went. Returns how many
    transcriptions lost their audio. Blob files go once the caller commits.
    """
    uncorrected = (
        Transcription.audio_sha256.is_not(None),
        Transcription.created_at < older_than,
        ~exists().where(Correction.transcription_id == Transcription.id),
    )
    shas = set(session.scalars(select(Transcription.audio_sha256).where(*uncorrected).distinct()))
    if not shas:
        return 0
    result = session.execute(
        update(Transcription)
        .where(*uncorrected)
        .values(audio_sha256=None, audio_purged_at=now or utcnow())
        .execution_options(synchronize_session="fetch")
    )
    _delete_unreferenced_after_commit(session, store, shas)
    return result.rowcount


def user_audio_hashes(session: Session, user_id: int) -> set[str]:
    """The audio a user sent (what training-run manifests may still list)."""
    return set(
        session.scalars(
            select(Transcription.audio_sha256)
            .where(Transcription.user_id == user_id, Transcription.audio_sha256.is_not(None))
            .distinct()
        )
    )


def delete_user_data(session: Session, store: AudioStore, user_id: int) -> DeletedCounts:
    """Delete a user's transcriptions (and every correction of them), the user's own
    corrections of anyone's transcriptions, their jobs, their vocabulary, and the user.
    Audio another user's row still uses is kept. Blob files go once the caller commits."""
    own = select(Transcription.id).where(Transcription.user_id == user_id)
    shas = set(
        session.scalars(
            select(Transcription.audio_sha256)
            .where(Transcription.user_id == user_id, Transcription.audio_sha256.is_not(None))
            .distinct()
        )
    )
    corrections = _delete(
        session,
        delete(Correction).where(
            (Correction.user_id == user_id) | Correction.transcription_id.in_(own)
        ),
    )
    _delete(session, delete(ReplyMessage).where(ReplyMessage.transcription_id.in_(own)))
    jobs = _delete(session, delete(Job).where(Job.user_id == user_id))
    _cancel_jobs_on_their_notes(session, user_id)
    # Other users' jobs never point at this user's transcriptions, but be safe.
    session.execute(
        update(Job)
        .where(Job.transcription_id.in_(own))
        .values(transcription_id=None)
        .execution_options(synchronize_session="fetch")
    )
    transcriptions = _delete(session, delete(Transcription).where(Transcription.user_id == user_id))
    _delete(session, delete(VocabularyWord).where(VocabularyWord.user_id == user_id))
    users = _delete(session, delete(User).where(User.id == user_id))
    audio_files = _delete_unreferenced_after_commit(session, store, shas)
    return DeletedCounts(
        users=users,
        transcriptions=transcriptions,
        corrections=corrections,
        jobs=jobs,
        audio_files=audio_files,
        recordings=len(shas),
    )


def _cancel_jobs_on_their_notes(session: Session, user_id: int) -> None:
    """Someone else's open ``/trascrivi`` of this user's note: its transcript would be the
    note author's (``author_id``), stored after their /forget. It is cancelled, as its
    requester could (the worker stores nothing: it checks the flag as it saves)."""
    open_jobs = select(Job).where(
        Job.status.in_((JobStatus.PENDING, JobStatus.HELD, JobStatus.RUNNING)),
        Job.user_id != user_id,
    )
    for job in session.scalars(open_jobs.with_for_update()):  # few: the queue is bounded
        if job.user_id is not None and job.payload.get("author_id") == user_id:
            request_cancel(session, job.id, user_id=job.user_id)


def job_exists(session: Session, job_id: int) -> bool:
    """Whether a job is still wanted: False once /forget deleted it with its user.

    Call it in the transaction that stores the job's result, before writing: the row is
    locked (``FOR UPDATE`` where the backend has it; SQLite's write transaction already
    excludes a concurrent /forget), so the answer holds until that commit.
    """
    return session.scalar(select(Job.id).where(Job.id == job_id).with_for_update()) is not None


def delete_blobs_if_unreferenced(session: Session, store: AudioStore, shas: Iterable[str]) -> int:
    """Delete, once the caller commits, those of ``shas`` no transcription refers to.

    For a worker discarding the result of a job its user asked to forget.
    """
    return _delete_unreferenced_after_commit(session, store, set(shas))


@dataclass(frozen=True)
class SweepCounts:
    blobs: int
    temporaries: int


def sweep_orphan_blobs(
    session: Session,
    store: AudioStore,
    *,
    grace: timedelta = DEFAULT_SWEEP_GRACE,
    now: float | None = None,
) -> SweepCounts:
    """Delete audio files no transcription refers to, and half-written files, older than
    ``grace``: what a crash, or a job finishing after its user's /forget, left behind.

    Reads the rows, then deletes files at once (there is no row change to wait for);
    the grace period protects a blob written for a row not yet committed, and ``put``
    refreshes a blob's age when it is stored again.
    """
    cutoff = (time.time() if now is None else now) - grace.total_seconds()
    referenced = set(
        session.scalars(
            select(Transcription.audio_sha256)
            .where(Transcription.audio_sha256.is_not(None))
            .distinct()
        )
    )
    blobs = sum(
        1 for sha in list(store) if sha not in referenced and store.delete_if_older(sha, cutoff)
    )
    return SweepCounts(blobs=blobs, temporaries=store.remove_stale_temporaries(cutoff))


def _delete(session: Session, statement: Delete) -> int:
    result = session.execute(statement.execution_options(synchronize_session="fetch"))
    return result.rowcount


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _delete_unreferenced_after_commit(session: Session, store: AudioStore, shas: set[str]) -> int:
    """Schedule the blobs in ``shas`` that no transcription refers to any more."""
    session.flush()
    candidates = sorted(shas)
    still_used: set[str] = set()
    for chunk in _chunks(candidates):
        still_used.update(
            session.scalars(
                select(Transcription.audio_sha256)
                .where(Transcription.audio_sha256.in_(chunk))
                .distinct()
            )
        )
    orphans = [sha for sha in candidates if sha not in still_used]
    _schedule_blob_deletion(session, store, orphans)
    return len(orphans)


def _schedule_blob_deletion(session: Session, store: AudioStore, shas: list[str]) -> None:
    if not shas:
        return
    if _HOOKED_KEY not in session.info:
        event.listen(session, "after_commit", _delete_scheduled_blobs)
        event.listen(session, "after_rollback", _forget_scheduled_blobs)
        event.listen(session, "after_transaction_end", _forget_at_transaction_end)
        session.info[_HOOKED_KEY] = True
    session.info.setdefault(_PENDING_KEY, []).extend((store, sha) for sha in shas)


def _delete_scheduled_blobs(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: the real commit is still to come
    for store, sha in session.info.pop(_PENDING_KEY, []):
        store.delete(sha)


def _forget_scheduled_blobs(session: Session) -> None:
    # Any rollback, even of a savepoint, may have undone the rows' change: keeping a
    # blob nobody uses is harmless, deleting one that is still used is not.
    session.info.pop(_PENDING_KEY, None)


def _forget_at_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The transaction ended without a commit (closed): its deletions never happened.
    if transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)
