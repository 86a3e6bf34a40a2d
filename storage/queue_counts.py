"""The queue as its users see it: how many jobs wait or run (what the limits count), and
where a waiting job stands. Read-only queries over ``storage.jobs``' table."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from storage.errors import NotFoundError
from storage.jobs import OPEN_JOB_STATUSES
from storage.models import Job, JobStatus

# Names the PostgreSQL advisory lock that accepting a job holds while it checks the limits
# and "already queued" and inserts (storage.unit_of_work.lock_until_end). One key for
# every user and chat: the queue-wide limit counts every user's jobs, so no narrower key
# would protect it, and accepting is a few indexed queries, far shorter than updates come.
ENQUEUE_LOCK_KEY = 0x57_49_54_45  # "WITE"


def count_pending_jobs(session: Session, *, user_id: int | None = None) -> int:
    """Jobs waiting for a worker (all users, or one)."""
    return _count(session, (JobStatus.PENDING,), user_id)


def count_waiting_jobs(session: Session) -> int:
    """Jobs not started yet: pending, or still held by the process announcing them."""
    return _count(session, (JobStatus.PENDING, JobStatus.HELD), None)


def _waiting() -> ColumnElement[bool]:
    return Job.status.in_((JobStatus.PENDING, JobStatus.HELD))


def count_open_jobs(session: Session, *, user_id: int | None = None) -> int:
    """Jobs waiting or being worked on: what per-user and queue limits count."""
    return _count(session, OPEN_JOB_STATUSES, user_id)


def _count(session: Session, statuses: tuple[str, ...], user_id: int | None) -> int:
    statement = select(func.count()).select_from(Job).where(Job.status.in_(statuses))
    if user_id is not None:
        statement = statement.where(Job.user_id == user_id)
    return session.scalar(statement) or 0


def job_for_message(session: Session, chat_id: int, message_id: int) -> Job | None:
    """The job already asked for this message (a note, a link), unless it failed or was
    cancelled: several members' /trascrivi of one note are one request."""
    return session.scalars(
        select(Job)
        .where(
            Job.chat_id == chat_id,
            Job.user_message_id == message_id,
            Job.status.not_in((JobStatus.FAILED, JobStatus.CANCELLED)),
        )
        .order_by(Job.id.desc())
        .limit(1)
    ).first()


def queue_position(session: Session, job_id: int) -> int | None:
    """1 for the next job to run; None if the job is no longer waiting (a job still held
    by the process that accepted it counts as waiting)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    if job.status not in (JobStatus.PENDING, JobStatus.HELD):
        return None
    ahead = session.scalar(select(func.count()).select_from(Job).where(_waiting(), Job.id < job_id))
    return (ahead or 0) + 1
