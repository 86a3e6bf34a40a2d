"""The durable job queue: accepted work survives a crash and is resumed at restart.

Lifecycle: pending -> running (claimed; attempts + 1) -> done | failed. At start-up,
``requeue_running`` puts back what a dead process was doing, and fails jobs that already
used up their attempts (a job that kills the process must not kill it forever).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from storage.errors import InvalidStateError, NotFoundError
from storage.models import JOB_DONE, JOB_FAILED, JOB_PENDING, JOB_RUNNING, Job, utcnow

DEFAULT_MAX_ATTEMPTS = 3
OPEN_JOB_STATUSES = (JOB_PENDING, JOB_RUNNING)
# Optimistic claims retried when another worker took the same row first.
_CLAIM_RETRIES = 5
INTERRUPTED_ERROR = "interrupted too many times"


@dataclass(frozen=True)
class RequeueResult:
    requeued: tuple[int, ...]
    failed: tuple[int, ...]


def _get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return job


def enqueue_job(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    user_id: int | None = None,
    chat_id: int | None = None,
    user_message_id: int | None = None,
    status_message_id: int | None = None,
    now: datetime | None = None,
) -> Job:
    job = Job(
        kind=kind,
        payload=dict(payload),
        user_id=user_id,
        chat_id=chat_id,
        user_message_id=user_message_id,
        status_message_id=status_message_id,
        reply_message_ids=[],
        status=JOB_PENDING,
        attempts=0,
        created_at=now or utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def claim_next_job(
    session: Session, *, kinds: Collection[str] | None = None, now: datetime | None = None
) -> Job | None:
    """Take the oldest pending job (optionally of some kinds) and mark it running.

    Safe with several workers and processes: on SQLite the transaction holds the write
    lock; on PostgreSQL the row is locked and other workers skip it.
    """
    now = now or utcnow()
    for _ in range(_CLAIM_RETRIES):
        candidate = (
            select(Job.id)
            .where(Job.status == JOB_PENDING)
            .order_by(Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if kinds is not None:
            candidate = candidate.where(Job.kind.in_(list(kinds)))
        job_id = session.scalar(candidate)
        if job_id is None:
            return None
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JOB_PENDING)
            .values(status=JOB_RUNNING, attempts=Job.attempts + 1, started_at=now, error=None)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:
            return session.get(Job, job_id, populate_existing=True)
    return None


def mark_job_done(
    session: Session,
    job_id: int,
    *,
    transcription_id: int | None = None,
    now: datetime | None = None,
) -> Job:
    job = _get(session, job_id)
    if job.status != JOB_RUNNING:
        raise InvalidStateError(f"job {job_id} is {job.status}, not running")
    job.status = JOB_DONE
    job.transcription_id = transcription_id
    job.error = None
    job.finished_at = now or utcnow()
    session.flush()
    return job


def mark_job_failed(
    session: Session, job_id: int, *, error: str, now: datetime | None = None
) -> Job:
    job = _get(session, job_id)
    if job.status not in OPEN_JOB_STATUSES:
        raise InvalidStateError(f"job {job_id} is already {job.status}")
    job.status = JOB_FAILED
    job.error = error
    job.finished_at = now or utcnow()
    session.flush()
    return job


def set_job_messages(
    session: Session,
    job_id: int,
    *,
    status_message_id: int | None = None,
    reply_message_ids: Iterable[int] | None = None,
) -> Job:
    """Record the bot's status message and reply messages, to resume editing them."""
    job = _get(session, job_id)
    if status_message_id is not None:
        job.status_message_id = status_message_id
    if reply_message_ids is not None:
        # A new list, not an in-place append: JSON columns only notice assignment.
        job.reply_message_ids = [*job.reply_message_ids, *reply_message_ids]
    session.flush()
    return job


def requeue_running(
    session: Session, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, now: datetime | None = None
) -> RequeueResult:
    """Restart recovery: running jobs become pending again, or failed if out of attempts.

    Call it once at start-up, before workers run, from the only process that runs jobs.
    """
    running = session.scalars(select(Job).where(Job.status == JOB_RUNNING).order_by(Job.id))
    requeued: list[int] = []
    failed: list[int] = []
    for job in running:
        if job.attempts >= max_attempts:
            job.status = JOB_FAILED
            job.error = INTERRUPTED_ERROR
            job.finished_at = now or utcnow()
            failed.append(job.id)
        else:
            job.status = JOB_PENDING
            job.started_at = None
            requeued.append(job.id)
    session.flush()
    return RequeueResult(requeued=tuple(requeued), failed=tuple(failed))


def count_pending_jobs(session: Session, *, user_id: int | None = None) -> int:
    """Jobs waiting for a worker (all users, or one)."""
    return _count(session, (JOB_PENDING,), user_id)


def count_open_jobs(session: Session, *, user_id: int | None = None) -> int:
    """Jobs waiting or being worked on: what per-user and queue limits count."""
    return _count(session, OPEN_JOB_STATUSES, user_id)


def _count(session: Session, statuses: tuple[str, ...], user_id: int | None) -> int:
    statement = select(func.count()).select_from(Job).where(Job.status.in_(statuses))
    if user_id is not None:
        statement = statement.where(Job.user_id == user_id)
    return session.scalar(statement) or 0


def queue_position(session: Session, job_id: int) -> int | None:
    """1 for the next job to run; None if the job is no longer waiting."""
    job = _get(session, job_id)
    if job.status != JOB_PENDING:
        return None
    ahead = session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JOB_PENDING, Job.id < job_id)
    )
    return (ahead or 0) + 1


def delete_finished_jobs(session: Session, *, older_than: datetime) -> int:
    """Housekeeping: forget done and failed jobs (their payloads hold Telegram file ids)."""
    result = session.execute(
        delete(Job)
        .where(Job.status.in_((JOB_DONE, JOB_FAILED)), Job.created_at < older_than)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount
