"""Jobs taken back from the processes that held them (``storage.jobs`` has the lifecycle).

A process that died stops renewing its leases; once they expire any process puts its jobs
back in the queue (``requeue_expired``), and a process restarted under the same name takes
back its predecessor's at once (``take_back_leases``). A process stopping cleanly (SIGTERM,
a deploy) gives back its own running jobs (``give_back_leases``).

A run interrupted by a death counts as an attempt: a job that kills every worker it reaches
fails after ``DEFAULT_MAX_ATTEMPTS`` (``RequeueResult.failed``: whoever got those ids tells
their senders; nobody else can). A run given back by a clean stop does not count, or a few
deploys would fail a long job. A held job never started (its front was announcing its
place): it is queued again, never failed for attempts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Job, JobStatus, utcnow

DEFAULT_MAX_ATTEMPTS = 3
# Jobs under a lease: held by the front that accepted them, or claimed by a worker.
LEASED_JOB_STATUSES = (JobStatus.HELD, JobStatus.RUNNING)
INTERRUPTED_ERROR = "interrupted too many times"


@dataclass(frozen=True)
class RequeueResult:
    requeued: tuple[int, ...]
    # Out of attempts, now failed with INTERRUPTED_ERROR; their senders not yet told.
    failed: tuple[int, ...]
    # Their senders had cancelled them: ended cancelled instead of queued again.
    cancelled: tuple[int, ...] = ()


def requeue_expired(
    session: Session, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, now: datetime | None = None
) -> RequeueResult:
    """Leased jobs whose lease expired (their worker or front died) become pending again,
    or failed if out of attempts. Safe to call from any process at any time."""
    now = now or utcnow()
    expired = session.scalars(
        select(Job)
        .where(Job.status.in_(LEASED_JOB_STATUSES))
        .where(Job.lease_expires_at.is_(None) | (Job.lease_expires_at < now))
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
    )
    return _requeue(session, expired, max_attempts=max_attempts, now=now)


def take_back_leases(
    session: Session,
    *,
    owner: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> RequeueResult:
    """At start: ``owner``'s running and held jobs, expired or not, become pending again
    (a running one fails if out of attempts). Only for a process that knows no other live
    process has its name: the previous holder of the name was killed, and its jobs need not
    wait for their leases to run out. Other owners' leases are untouched."""
    owned = session.scalars(
        select(Job)
        .where(Job.status.in_(LEASED_JOB_STATUSES), Job.lease_owner == owner)
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
    )
    return _requeue(session, owned, max_attempts=max_attempts, now=now or utcnow())


def give_back_leases(session: Session, *, owner: str, now: datetime | None = None) -> RequeueResult:
    """At a clean stop: ``owner``'s running jobs become pending again at once, their
    interrupted run not counted as an attempt (a crash counts: ``requeue_expired``). Only
    for the process of that name, once its workers stopped; held jobs are left to the
    tasks announcing them, which release them."""
    owned = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.RUNNING, Job.lease_owner == owner)
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
    )
    return _requeue(
        session, owned, max_attempts=DEFAULT_MAX_ATTEMPTS, now=now or utcnow(), counted=False
    )


def _requeue(
    session: Session,
    jobs: Iterable[Job],
    *,
    max_attempts: int,
    now: datetime,
    counted: bool = True,
) -> RequeueResult:
    """Put leased ``jobs`` back; ``counted``: their interrupted runs count as attempts."""
    requeued: list[int] = []
    failed: list[int] = []
    cancelled: list[int] = []
    for job in jobs:
        ran = job.status == JobStatus.RUNNING  # (a hold is no attempt)
        job.lease_owner = job.lease_expires_at = None
        if job.cancel_requested:  # its sender cancelled it: it is not resumed
            job.status = JobStatus.CANCELLED
            job.finished_at = now
            cancelled.append(job.id)
        elif ran and counted and job.attempts >= max_attempts:
            job.status = JobStatus.FAILED
            job.error = INTERRUPTED_ERROR
            job.finished_at = now
            failed.append(job.id)
        else:
            if ran and not counted:  # the claim had counted this run: it is given back
                job.attempts = max(job.attempts - 1, 0)
            job.status = JobStatus.PENDING
            job.started_at = None
            requeued.append(job.id)
    session.flush()
    return RequeueResult(requeued=tuple(requeued), failed=tuple(failed), cancelled=tuple(cancelled))
