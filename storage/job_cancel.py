"""Cancelling a job at its sender's request, wherever it is.

A waiting job is cancelled at once. A job a worker holds (in this process or another)
gets ``cancel_requested``: the worker checks the flag between stages and while it works,
stores and sends nothing, and marks the job cancelled itself. A holder that died with the
flag set leaves a cancelled job, not a requeued one (``storage.jobs.requeue_expired``).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import Job, JobStatus, utcnow


class CancelOutcome(enum.Enum):
    CANCELLED = "cancelled"  # it was waiting: cancelled now
    REQUESTED = "requested"  # a worker holds it: the worker stops it
    NOT_YOURS = "not_yours"  # someone else's job
    FINISHED = "finished"  # already answered, failed, cancelled, or gone


def request_cancel(
    session: Session, job_id: int, *, user_id: int, now: datetime | None = None
) -> CancelOutcome:
    """Cancel ``job_id`` for ``user_id`` (only its sender may)."""
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None:
        return CancelOutcome.FINISHED
    if job.user_id != user_id:
        return CancelOutcome.NOT_YOURS
    if job.status == JobStatus.PENDING:
        job.status = JobStatus.CANCELLED
        job.finished_at = now or utcnow()
        job.lease_owner = job.lease_expires_at = None
        session.flush()
        return CancelOutcome.CANCELLED
    if job.status == JobStatus.HELD:
        # Still waiting, its "In coda" message being sent or edited: its holder ends it
        # cancelled when it lets go (storage.jobs.release_job); it never runs.
        job.cancel_requested = True
        session.flush()
        return CancelOutcome.CANCELLED
    if job.status == JobStatus.RUNNING:
        job.cancel_requested = True
        session.flush()
        return CancelOutcome.REQUESTED
    return CancelOutcome.FINISHED


def cancel_requested(session: Session, job_ids: Collection[int]) -> set[int]:
    """Which of ``job_ids`` their senders asked to cancel."""
    if not job_ids:
        return set()
    return set(
        session.scalars(
            select(Job.id).where(Job.id.in_(list(job_ids)), Job.cancel_requested.is_(True))
        )
    )


def mark_job_cancelled(
    session: Session,
    job_id: int,
    *,
    owner: str,
    attempt: int | None = None,
    now: datetime | None = None,
) -> bool:
    """The worker ``owner`` stopped the job: it ends cancelled. False if not its job (with
    ``attempt``, ``attempts`` when claimed: if not that very claim's)."""
    claim = () if attempt is None else (Job.attempts == attempt,)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.lease_owner == owner)
        .where(*claim)
        .values(
            status=JobStatus.CANCELLED,
            finished_at=now or utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
