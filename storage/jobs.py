"""The durable job queue: accepted work survives any process and is answered once.

Lifecycle: pending -> running (claimed under a lease; attempts + 1) -> done | failed; a
job a front accepted may first be held (``JobStatus.HELD``) until the user saw its place.
A claim is the worker's name and the job's ``attempts`` (one process's workers share a
name) with an expiry the worker renews (``renew_leases``). Any process may put back jobs
whose lease expired (``requeue_expired``): their worker died. Jobs out of attempts fail
instead (a job that kills its worker must not kill every worker in turn); a clean stop
gives its jobs back without spending an attempt (``storage.job_recovery``). A worker that
lost its claim may not finish the job (``LeaseLostError``): its new owner answers it.

Claims skip users who have a job running under another worker, so one user's jobs are
answered in the order they were sent however many workers there are. Claims run one at a
time (SQLite: the write transaction; PostgreSQL: an advisory lock, as row locks let a
claim skip another's uncommitted one and take the same user's next job), and a job is
taken only when no earlier job of its user still waits, read afresh at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session, aliased

from storage.errors import InvalidStateError, NotFoundError

# Taking jobs back from processes that died or stop: its own module, named here too.
from storage.job_recovery import DEFAULT_MAX_ATTEMPTS as DEFAULT_MAX_ATTEMPTS
from storage.job_recovery import INTERRUPTED_ERROR as INTERRUPTED_ERROR
from storage.job_recovery import LEASED_JOB_STATUSES
from storage.job_recovery import RequeueResult as RequeueResult
from storage.job_recovery import give_back_leases as give_back_leases
from storage.job_recovery import requeue_expired as requeue_expired
from storage.job_recovery import take_back_leases as take_back_leases
from storage.models import Job, JobStatus, utcnow
from storage.unit_of_work import lock_until_end

DEFAULT_LEASE_SECONDS = 60.0
OPEN_JOB_STATUSES = (JobStatus.PENDING, JobStatus.HELD, JobStatus.RUNNING)
# Pending rows looked at per claimed job: room for the ``accept`` filter to say no.
_CANDIDATES_PER_CLAIM = 4
CLAIM_LOCK_KEY = 0x57_49_54_4A  # "WITJ": names the claims' advisory lock (PostgreSQL)


class LeaseLostError(InvalidStateError):
    """The job's lease expired and another worker may own it now."""


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
    held_by: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> Job:
    """A new job, pending; or, with ``held_by``, held by the process that accepted it until
    it calls ``release_job`` (so no worker anywhere takes it before the user was shown its
    place in the queue). A holder that dies lets its lease expire: the job is then queued."""
    now = now or utcnow()
    job = Job(
        kind=kind,
        payload=dict(payload),
        user_id=user_id,
        chat_id=chat_id,
        user_message_id=user_message_id,
        status_message_id=status_message_id,
        reply_message_ids=[],
        status=JobStatus.PENDING if held_by is None else JobStatus.HELD,
        lease_owner=held_by,
        lease_expires_at=None if held_by is None else now + timedelta(seconds=lease_seconds),
        attempts=0,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job


def release_job(
    session: Session, job_id: int, *, owner: str, status_message_id: int | None = None
) -> bool:
    """Queue a job ``enqueue_job(held_by=owner)`` made, recording its status message."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.HELD or job.lease_owner != owner:
        return False
    # Cancelled by its sender while it was being announced: it never runs.
    job.status = JobStatus.CANCELLED if job.cancel_requested else JobStatus.PENDING
    job.lease_owner = job.lease_expires_at = None
    if job.cancel_requested:
        job.finished_at = utcnow()
    if status_message_id is not None:
        job.status_message_id = status_message_id
    session.flush()
    return True


def hold_job(
    session: Session,
    job_id: int,
    *,
    owner: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> bool:
    """Hold a pending job again (as ``enqueue_job(held_by=...)`` does) while ``owner``
    edits its queued message, so no worker anywhere starts it meanwhile; ``release_job``
    queues it again. False if it is no longer pending."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.PENDING)
        .values(
            status=JobStatus.HELD,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def claim_jobs(
    session: Session,
    *,
    owner: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    limit: int = 1,
    kinds: Collection[str] | None = None,
    accept: Callable[[Job], bool] | None = None,
    skip_users: Collection[int] = (),
    now: datetime | None = None,
) -> list[Job]:
    """Take up to ``limit`` of the oldest pending jobs (of ``kinds``, none of
    ``skip_users``, passing ``accept``) and mark them running under ``owner``'s lease,
    oldest first."""
    now = now or utcnow()
    lock_until_end(session, CLAIM_LOCK_KEY)  # one claim at a time (see above)
    candidates = _claimable(owner, limit * _CANDIDATES_PER_CLAIM)
    if skip_users:  # in the query, so a busy user's many jobs cannot fill the window
        candidates = candidates.where(Job.user_id.is_(None) | Job.user_id.not_in(list(skip_users)))
    if kinds is not None:
        candidates = candidates.where(Job.kind.in_(list(kinds)))
    chosen = [job for job in session.scalars(candidates) if accept is None or accept(job)]
    claimed: list[Job] = []
    for job_id, user_id in [(job.id, job.user_id) for job in chosen[:limit]]:
        if _behind_open_job(session, job_id, user_id):
            continue
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.PENDING)
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                started_at=now,
                error=None,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            claimed.append(job)
    return claimed


def _behind_open_job(session: Session, job_id: int, user_id: int | None) -> bool:
    """Whether an earlier job of the same user still waits, read afresh: PostgreSQL's
    SKIP LOCKED passes over a row another transaction is holding (its queued message
    edited), and the candidates' snapshot still saw it pending."""
    if user_id is None:
        return False
    earlier = select(Job.id).where(
        Job.user_id == user_id,
        Job.id < job_id,
        Job.status.in_((JobStatus.PENDING, JobStatus.HELD)),
    )
    return session.scalar(earlier.limit(1)) is not None


def _claimable(owner: str, limit: int) -> Select[tuple[Job]]:
    """The oldest pending jobs ``owner`` may take: none of a user whose job another worker
    runs (one user's jobs are answered in order), none behind a job of the same user still
    held while its queued message is edited."""
    busy_elsewhere = select(Job.user_id).where(
        Job.status == JobStatus.RUNNING,
        Job.user_id.is_not(None),
        Job.lease_owner != owner,
    )
    held = aliased(Job)
    earlier_held = (
        select(held.id)
        .where(held.user_id == Job.user_id, held.status == JobStatus.HELD, held.id < Job.id)
        .exists()
    )
    return (
        select(Job)
        .where(Job.status == JobStatus.PENDING)
        .where(Job.user_id.is_(None) | Job.user_id.not_in(busy_elsewhere))
        .where(~earlier_held)
        .order_by(Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def claim_next_job(
    session: Session,
    *,
    owner: str = "local",
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
) -> Job | None:
    """The oldest pending job, claimed (see ``claim_jobs``), or None."""
    jobs = claim_jobs(session, owner=owner, lease_seconds=lease_seconds, kinds=kinds, now=now)
    return jobs[0] if jobs else None


def renew_leases(
    session: Session,
    *,
    owner: str,
    leases: Mapping[int, int | None],
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> set[int]:
    """Extend ``owner``'s ``leases`` (job id -> ``attempts`` when claimed, None when held)
    while that very claim or hold lasts; the ids it still holds."""
    if not leases:
        return set()
    now = now or utcnow()
    rows = session.scalars(select(Job).where(Job.id.in_(list(leases))).with_for_update())
    held = {job.id for job in rows if _leased_by(job, owner, leases[job.id], (JobStatus.HELD,))}
    if held:
        session.execute(
            update(Job)
            .where(Job.id.in_(held))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
    return held


def holds_lease(session: Session, job_id: int, owner: str, *, attempt: int | None = None) -> bool:
    """Whether ``owner`` (with ``attempt``: that very claim) still holds the job's lease;
    locks the row where it can."""
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    return job is not None and _leased_by(job, owner, attempt, LEASED_JOB_STATUSES)


def _leased_by(job: Job, owner: str, attempt: int | None, statuses: Collection[str]) -> bool:
    if attempt is None:
        return job.lease_owner == owner and job.status in statuses
    return job.lease_owner == owner and job.status == JobStatus.RUNNING and job.attempts == attempt


def mark_job_done(
    session: Session,
    job_id: int,
    *,
    transcription_id: int | None = None,
    owner: str | None = None,
    attempt: int | None = None,
    now: datetime | None = None,
) -> Job:
    job = _get(session, job_id)
    if job.status != JobStatus.RUNNING:
        raise InvalidStateError(f"job {job_id} is {job.status}, not running")
    if owner is not None and not _leased_by(job, owner, attempt, LEASED_JOB_STATUSES):
        raise LeaseLostError(f"job {job_id} is no longer held by {owner}")
    job.status = JobStatus.DONE
    job.transcription_id = transcription_id
    job.error = None
    job.finished_at = now or utcnow()
    job.lease_owner = job.lease_expires_at = None
    session.flush()
    return job


def mark_job_failed(
    session: Session, job_id: int, *, error: str, now: datetime | None = None
) -> Job:
    job = _get(session, job_id)
    if job.status not in OPEN_JOB_STATUSES:
        raise InvalidStateError(f"job {job_id} is already {job.status}")
    job.status = JobStatus.FAILED
    job.error = error
    job.finished_at = now or utcnow()
    job.lease_owner = job.lease_expires_at = None
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


def delete_finished_jobs(session: Session, *, older_than: datetime) -> int:
    """Housekeeping: forget done and failed jobs (their payloads hold Telegram file ids)."""
    result = session.execute(
        delete(Job)
        .where(
            Job.status.in_((JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)),
            Job.created_at < older_than,
        )
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount
