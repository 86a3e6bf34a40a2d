"""storage.chat_changes against a real, migrated database: a chat the bot left, and a group
upgraded to a supergroup (idempotent, as Telegram announces it twice)."""

from __future__ import annotations

from sqlalchemy import select

from storage import chat_changes, jobs, repository
from storage.chat_settings import DEFAULT_PREFERENCES, get_preferences, update_preferences
from storage.models import Job, JobStatus
from storage.unit_of_work import Database

OLD, NEW, OTHER = -42, -10042, -7


def _jobs(database: Database) -> list[tuple[int | None, str, int | None]]:
    with database.unit_of_work(read_only=True) as uow:
        rows = uow.session.scalars(select(Job).order_by(Job.id))
        return [(job.chat_id, job.status, job.status_message_id) for job in rows]


def _enqueue(database: Database, *, chat_id: int, held: bool = False) -> int:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        job = jobs.enqueue_job(
            uow.session, kind="transcribe", payload={}, user_id=1, chat_id=chat_id,
            user_message_id=5, status_message_id=6, held_by="front" if held else None,
        )  # fmt: skip
        uow.commit()
        return job.id


def test_end_waiting_jobs_ends_only_that_chats_waiting_jobs(database: Database) -> None:
    running = _enqueue(database, chat_id=OLD)
    with database.unit_of_work() as uow:
        assert [job.id for job in jobs.claim_jobs(uow.session, owner="w")] == [running]
        uow.commit()
    _enqueue(database, chat_id=OLD)
    _enqueue(database, chat_id=OLD, held=True)
    _enqueue(database, chat_id=OTHER)
    with database.unit_of_work() as uow:
        ended = chat_changes.end_waiting_jobs(uow.session, OLD, error="chat unreachable: x")
        uow.commit()
    assert ended == 2
    statuses = [status for _, status, _ in _jobs(database)]
    assert statuses == [JobStatus.RUNNING, JobStatus.FAILED, JobStatus.FAILED, JobStatus.PENDING]


def test_migrate_chat_moves_settings_and_open_jobs_once(database: Database) -> None:
    with database.unit_of_work() as uow:
        chosen = update_preferences(uow.session, OLD, transcribe_all=True, admins_only=True)
        uow.commit()
    _enqueue(database, chat_id=OLD)
    _enqueue(database, chat_id=OTHER)
    for _ in range(2):  # the old chat's service message, then the new chat's
        with database.unit_of_work() as uow:
            moved = chat_changes.migrate_chat(uow.session, OLD, NEW)
            uow.commit()
    assert moved == chat_changes.ChatMove(settings_moved=False, jobs_moved=0)
    with database.unit_of_work(read_only=True) as uow:
        assert get_preferences(uow.session, NEW) == chosen
        assert get_preferences(uow.session, OLD) == DEFAULT_PREFERENCES
    assert _jobs(database) == [(NEW, JobStatus.PENDING, None), (OTHER, JobStatus.PENDING, 6)]


def test_migrate_chat_keeps_settings_the_new_chat_already_has(database: Database) -> None:
    with database.unit_of_work() as uow:
        update_preferences(uow.session, OLD, output="txt")
        own = update_preferences(uow.session, NEW, output="srt")
        moved = chat_changes.migrate_chat(uow.session, OLD, NEW)
        uow.commit()
    assert not moved.settings_moved
    with database.unit_of_work(read_only=True) as uow:
        assert get_preferences(uow.session, NEW) == own


def test_requeue_moved_job_gives_back_only_its_own_claim(database: Database) -> None:
    job_id = _enqueue(database, chat_id=OLD)
    with database.unit_of_work() as uow:
        (claimed,) = jobs.claim_jobs(uow.session, owner="w")
        attempt = claimed.attempts
        uow.commit()
    with database.unit_of_work() as uow:
        assert not chat_changes.requeue_moved_job(uow.session, job_id, owner="x", attempt=attempt)
        chat_changes.migrate_chat(uow.session, OLD, NEW)
        assert chat_changes.requeue_moved_job(uow.session, job_id, owner="w", attempt=attempt)
        uow.commit()
    assert _jobs(database) == [(NEW, JobStatus.PENDING, None)]
