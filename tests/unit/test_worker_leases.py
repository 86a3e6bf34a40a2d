"""Leases as the bot's workers and queued messages keep them: a claim is told from a later
claim of the same job under the same process name, and a job held while its "In coda"
message is sent or edited stays held however long Telegram makes that wait."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from bot.job_payloads import TelegramFileJob
from bot.work_queue import WorkQueue
from storage import jobs as job_queue
from storage.models import Job, JobStatus, Transcription, utcnow
from tests.support.fake_bot_api import FakeBotApi
from tests.support.worker_support import FakeTranscriber, Rig, build_rig, tone_wav, until

USER = 42


def job_row(rig: Rig, job_id: int) -> tuple[str, int]:
    with rig.db.unit_of_work(read_only=True) as uow:
        job = uow.session.get(Job, job_id)
        assert job is not None
        return job.status, job.attempts


def voice(api: FakeBotApi) -> TelegramFileJob:
    api.add_file("voice-1", tone_wav())
    return TelegramFileJob("voice", "voice-1", "u-voice-1", duration=1.5)


async def test_a_stale_claim_under_the_same_name_answers_nothing(tmp_path: Path) -> None:
    api = FakeBotApi()
    transcriber = FakeTranscriber(delay=0.6)
    rig = build_rig(tmp_path, transcriber)
    await rig.runner.start(api.bot())
    try:
        submitted = await rig.runner.submit(voice(api), user_id=USER, chat_id=USER,
                                            user_message_id=7)  # fmt: skip
        assert submitted.job_id is not None
        await until(lambda: transcriber.calls == 1)
        # Meanwhile its lease expired and another worker of this process (the same name)
        # claimed it again: the running task's claim is stale.
        with rig.db.unit_of_work() as uow:
            job = uow.session.get(Job, submitted.job_id)
            assert job is not None
            job.attempts += 1
            uow.commit()
        rig.runner._held[submitted.job_id] = 2  # the new claim, as its worker registers it
        await asyncio.sleep(1.0)
        # The stale task ended without dropping the new claim from the renewals.
        assert rig.runner._held == {submitted.job_id: 2}
    finally:
        await rig.runner.stop()
    with rig.db.unit_of_work(read_only=True) as uow:
        assert uow.session.query(Transcription).count() == 0
    assert job_row(rig, submitted.job_id) == (JobStatus.RUNNING, 2)  # the new claim's
    assert not any("buongiorno" in text for text in api.visible(USER))


async def test_a_hold_outlasting_its_lease_is_renewed_and_never_claimed(tmp_path: Path) -> None:
    # A lease long enough for renewals (every third of it) to be late on a loaded machine,
    # short enough to outlast several times.
    rig = build_rig(tmp_path, FakeTranscriber(), lease_seconds=2.0)
    other = WorkQueue(rig.db, rig.store, rig.queue.limits, owner="another-process")
    enqueued = rig.queue.enqueue(voice(FakeBotApi()), user_id=USER, chat_id=USER,
                                 user_message_id=7)  # fmt: skip
    assert enqueued.job_id is not None
    claimed: list[int] = []

    async def other_process() -> None:  # requeues expired leases and claims, as workers do
        while True:
            await asyncio.to_thread(other.requeue_expired)
            claimed.extend(job.id for job in await asyncio.to_thread(other.claim))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(other_process())
    try:
        # A send that waits out a flood limit far longer than the lease.
        sent = await rig.runner.display.while_held(enqueued.job_id, _slow(6.0, 99))
    finally:
        watcher.cancel()
    assert sent == 99 and claimed == []
    assert job_row(rig, enqueued.job_id) == (JobStatus.HELD, 0)


async def test_an_edit_is_given_up_once_the_hold_is_lost(tmp_path: Path) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(), lease_seconds=0.3)
    enqueued = rig.queue.enqueue(voice(FakeBotApi()), user_id=USER, chat_id=USER,
                                 user_message_id=7)  # fmt: skip
    assert enqueued.job_id is not None
    with rig.db.unit_of_work() as uow:  # the hold expired while the database was away
        job_queue.requeue_expired(uow.session, now=utcnow() + timedelta(seconds=1))
        uow.commit()
    started = time.monotonic()
    edit = _slow(30.0, 99)
    assert await rig.runner.display.while_held(enqueued.job_id, edit) is None
    assert time.monotonic() - started < 5.0


async def _slow(seconds: float, result: int) -> int:
    await asyncio.sleep(seconds)
    return result
