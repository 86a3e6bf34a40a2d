"""What follows when a chat changes under the bot: removed or muted, the chat's waiting
jobs end (nobody can be answered there); a group upgraded to a supergroup (a new chat id),
its settings and open jobs follow it to the new id.

Transcriptions keep their chat id: the messages they answer stay in the old chat.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage.jobs import OPEN_JOB_STATUSES
from storage.models import ChatSettings, Job, JobStatus, utcnow

# The start of a job's error when its chat can no longer be answered.
CHAT_UNREACHABLE_ERROR = "chat unreachable"
WAITING_JOB_STATUSES = (JobStatus.PENDING, JobStatus.HELD)


@dataclass(frozen=True)
class ChatMove:
    settings_moved: bool
    jobs_moved: int


def end_waiting_jobs(session: Session, chat_id: int, *, error: str) -> int:
    """Fail every job of ``chat_id`` still waiting (pending or held), in one statement;
    how many. A running job ends when its worker meets the refusal."""
    result = session.execute(
        update(Job)
        .where(Job.chat_id == chat_id, Job.status.in_(WAITING_JOB_STATUSES))
        .values(
            status=JobStatus.FAILED,
            error=error,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def migrate_chat(session: Session, old_chat_id: int, new_chat_id: int) -> ChatMove:
    """Re-key the chat's settings (unless the new chat already has its own) and move its
    open jobs to the new id, without their status messages (old message ids mean nothing
    in the new chat). Idempotent: a second call finds nothing left to move."""
    settings_moved = False
    if old_chat_id != new_chat_id and session.get(ChatSettings, new_chat_id) is None:
        moved = session.execute(
            update(ChatSettings)
            .where(ChatSettings.chat_id == old_chat_id)
            .values(chat_id=new_chat_id)
            .execution_options(synchronize_session=False)
        )
        settings_moved = moved.rowcount == 1
    jobs = session.execute(
        update(Job)
        .where(Job.chat_id == old_chat_id, Job.status.in_(OPEN_JOB_STATUSES))
        .values(chat_id=new_chat_id, status_message_id=None)
        .execution_options(synchronize_session=False)
    )
    return ChatMove(settings_moved=settings_moved, jobs_moved=jobs.rowcount)


def requeue_moved_job(session: Session, job_id: int, *, owner: str, attempt: int) -> bool:
    """A job ``owner`` was running when its chat moved goes back to the queue (under its
    new chat id), for a worker to answer it there; False if that claim no longer holds."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.RUNNING,
            Job.lease_owner == owner,
            Job.attempts == attempt,
        )
        .values(
            status=JobStatus.PENDING,
            status_message_id=None,
            lease_owner=None,
            lease_expires_at=None,
            started_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
