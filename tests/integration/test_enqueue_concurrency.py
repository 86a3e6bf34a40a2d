"""Accepting jobs in parallel, on SQLite and a real PostgreSQL server: the front handles
updates concurrently (PTB ``concurrent_updates``), so several ``WorkQueue.enqueue`` calls
run at once in threads. The per-user and queue-wide limits and "already queued" must hold
as if they ran one at a time (PostgreSQL's READ COMMITTED alone let every one through)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import messages
from bot.job_payloads import TelegramFileJob
from bot.work_queue import Enqueued, QueueLimits, WorkQueue
from storage import repository
from storage.audio_store import AudioStore
from storage.models import Job
from storage.unit_of_work import Database
from tests.support.postgres import backend_url

# How long an enqueue that passed the checks waits for the others to pass them too. Racing
# code gets them all there; serialised code leaves the first waiting this long, once.
_BARRIER_SECONDS = 1.5


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db = Database.open(backend_url(request, tmp_path, "enqueue"))
    yield db
    db.close()


def _enqueue_at_once(
    queue: WorkQueue, requests: list[tuple[int, int, int]], monkeypatch: pytest.MonkeyPatch
) -> list[Enqueued]:
    """Run ``(user, chat, message)`` enqueues in parallel threads; each one that passed the
    checks waits at a barrier before inserting, so unserialised checks all pass first."""
    barrier = threading.Barrier(len(requests), timeout=_BARRIER_SECONDS)
    touch_user = repository.touch_user

    def after_checks(*args: object, **kwargs: object) -> object:
        # Broken: the others wait for this one's lock (serialised, as it should be).
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return touch_user(*args, **kwargs)

    monkeypatch.setattr(repository, "touch_user", after_checks)
    results: list[Enqueued] = []

    def send(user: int, chat: int, message: int) -> None:
        note = TelegramFileJob("voice", f"F{message}", f"U{message}", duration=2.0)
        results.append(queue.enqueue(note, user_id=user, chat_id=chat, user_message_id=message))

    threads = [threading.Thread(target=send, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _queued(db: Database) -> list[tuple[int | None, int | None, int | None]]:
    with db.unit_of_work(read_only=True) as uow:
        jobs = uow.session.query(Job).order_by(Job.id).all()
        return [(job.user_id, job.chat_id, job.user_message_id) for job in jobs]


def test_parallel_enqueues_keep_the_per_user_and_queue_limits(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = QueueLimits(max_queued_jobs=5, max_pending_per_user=3, lease_seconds=60)
    queue = WorkQueue(database, AudioStore(tmp_path / "audio"), limits, owner="front")
    # Two users each forward six notes at once.
    requests = [(user, user, message) for user in (1, 2) for message in range(6)]
    results = _enqueue_at_once(queue, requests, monkeypatch)
    queued = _queued(database)
    per_user = {user: sum(1 for row in queued if row[0] == user) for user in (1, 2)}
    assert len(queued) == limits.max_queued_jobs, queued
    assert max(per_user.values()) <= limits.max_pending_per_user, per_user
    assert sum(result.job_id is not None for result in results) == len(queued)
    refusals = {result.refusal for result in results if result.job_id is None}
    assert messages.QUEUE_FULL in refusals


def test_one_message_asked_for_at_once_by_several_members_is_queued_once(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = QueueLimits(max_queued_jobs=100, max_pending_per_user=5, lease_seconds=60)
    queue = WorkQueue(database, AudioStore(tmp_path / "audio"), limits, owner="front")
    # Four group members /trascrivi the same note at the same moment.
    results = _enqueue_at_once(queue, [(member, -100, 7) for member in (1, 2, 3, 4)], monkeypatch)
    assert len(_queued(database)) == 1
    assert [result.job_id is not None for result in results].count(True) == 1
    refusals = [result.refusal for result in results if result.job_id is None]
    assert refusals == [messages.ALREADY_QUEUED] * 3
