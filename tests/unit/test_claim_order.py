"""One user's jobs start in the order they were sent, also between the workers of one
process (the database's claim tells only processes apart) and through batch claims that
take only short voice notes."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime
from pathlib import Path

from bot.job_payloads import JobPayload, LinkJob, TelegramFileJob
from bot.work_queue import WorkQueue
from bot.worker import _batchable
from storage.models import Job, JobStatus
from tests.support.fake_bot_api import FakeBotApi
from tests.support.worker_support import FakeTranscriber, build_rig, tone_wav

X, Y = 42, 43


def _note(name: str) -> TelegramFileJob:
    return TelegramFileJob("voice", name, f"u-{name}", duration=1.5)


_message_ids = itertools.count(1)


def _queued(queue: WorkQueue, payload: JobPayload, user: int) -> None:
    message_id = next(_message_ids)
    enqueued = queue.enqueue(payload, user_id=user, chat_id=user, user_message_id=message_id)
    queue.release(enqueued.job_id, None)  # its "In coda" message is out: claimable


def test_a_batch_claim_does_not_take_a_users_note_from_behind_their_link(
    tmp_path: Path,
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber())
    queue = rig.queue
    for payload, user in ((LinkJob("https://www.youtube.com/watch?v=abcdefghijk"), X),
                          (_note("x2"), X), (_note("y1"), Y)):  # fmt: skip
        _queued(queue, payload, user)
    claimed = queue.claim(limit=7, accept=_batchable)
    assert [(job.user_id, job.payload) for job in claimed] == [(Y, _note("y1"))]


def test_a_claim_passes_over_users_this_process_is_busy_with(tmp_path: Path) -> None:
    rig = build_rig(tmp_path, FakeTranscriber())
    queue = rig.queue
    for name, user in (("x1", X), ("y1", Y), ("x2", X)):
        _queued(queue, _note(name), user)
    (first,) = queue.claim(busy_users={X})
    assert first.user_id == Y
    with rig.db.unit_of_work(read_only=True) as uow:
        pending = [j.id for j in uow.session.query(Job).filter_by(status=JobStatus.PENDING)]
    assert len(pending) == 2


def test_busy_users_jobs_do_not_hide_another_users_job(tmp_path: Path) -> None:
    # More of busy users' jobs wait than a claim looks at per job asked: Y's is still
    # found (the worker used to idle until the next poll, Y's note behind their queues).
    rig = build_rig(tmp_path, FakeTranscriber())
    queue = rig.queue
    busy = (X, X + 100, X + 200)
    for user in busy:
        for n in range(3):
            _queued(queue, _note(f"{user}-{n}"), user)
    _queued(queue, _note("y1"), Y)
    (first,) = queue.claim(busy_users=set(busy))
    assert (first.user_id, first.payload) == (Y, _note("y1"))


async def test_two_workers_of_one_process_never_run_one_users_notes_at_once(
    tmp_path: Path,
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(delay=0.4), workers=2, max_per_user=5)
    api = FakeBotApi()
    await rig.runner.start(api.bot())
    try:
        ids = []
        for n, user in enumerate((X, X, X, Y)):
            api.add_file(f"n{n}", tone_wav(frequency=300.0 + 20 * n))
            submitted = await rig.runner.submit(
                _note(f"n{n}"), user_id=user, chat_id=user, user_message_id=n + 1
            )
            ids.append(submitted.job_id)

        def runs() -> list[tuple[datetime, datetime]] | None:
            with rig.db.unit_of_work(read_only=True) as uow:
                jobs = [uow.session.get(Job, i) for i in ids]
                if any(job.status != JobStatus.DONE for job in jobs):
                    return None
                return [(job.started_at, job.finished_at) for job in jobs]

        deadline = time.monotonic() + 20
        while (done := runs()) is None:
            assert time.monotonic() < deadline, "jobs not done in time"
            await asyncio.sleep(0.05)
    finally:
        await rig.runner.stop()
    x_runs, y_run = done[:3], done[3]
    for earlier, later in itertools.pairwise(x_runs):
        assert later[0] >= earlier[1]  # X's next note started after the previous ended
    # Y's ran beside X's: the two workers did run at once.
    assert any(start < y_run[1] and y_run[0] < end for start, end in x_runs)
