"""Leases as the bot's workers and queued messages keep them: a claim is told from a later
claim of the same job under the same process name; a job held while its "In coda" message
is sent stays held however long Telegram makes that wait, but a mere refresh of that
message gives up on a flood wait rather than keep the job from its workers; a clean stop
gives running jobs back without spending an attempt; a job whose workers kept dying is
answered, counted and reported by the process that failed it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import ExtBot

from bot import messages
from bot.delivery import Delivery, DeliveryOptions
from bot.job_payloads import TelegramFileJob
from bot.ops.telegram_retry import RetryAfterLimiter
from bot.work_queue import WorkQueue
from storage import jobs as job_queue
from storage.models import Job, JobStatus, Transcription, utcnow
from tests.support.fake_bot_api import TOKEN, FakeBotApi
from tests.support.worker_support import FakeTranscriber, Rig, build_rig, tone_wav, until

USER = 42
ADMIN = 4242


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
        assert job_row(rig, submitted.job_id) == (JobStatus.RUNNING, 2)  # the new claim's
    finally:
        await rig.runner.stop()  # gives the new claim back, its run not counted
    with rig.db.unit_of_work(read_only=True) as uow:
        assert uow.session.query(Transcription).count() == 0
    assert job_row(rig, submitted.job_id) == (JobStatus.PENDING, 1)
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


async def test_clean_stops_give_a_running_job_back_without_spending_its_attempts(
    tmp_path: Path,
) -> None:
    """Three deploys (SIGTERM: ``runner.stop()``) during one long job: it failed, its
    sender left with "Trascrivo… 0%" for ever. Now each stop queues it again, uncounted."""
    api = FakeBotApi()
    job_id = None
    for _deploy in range(job_queue.DEFAULT_MAX_ATTEMPTS):
        transcriber = FakeTranscriber(delay=0.5)
        rig = build_rig(tmp_path, transcriber)  # the same folder: the same process name
        await rig.runner.start(api.bot())
        try:
            if job_id is None:
                submitted = await rig.runner.submit(voice(api), user_id=USER, chat_id=USER,
                                                    user_message_id=7)  # fmt: skip
                job_id = submitted.job_id
            await until(lambda t=transcriber: t.calls == 1)  # mid-transcription
        finally:
            await rig.runner.stop()
        assert job_row(rig, job_id) == (JobStatus.PENDING, 0)
        rig.services.close()
    rig = build_rig(tmp_path, FakeTranscriber())  # the deploy that stays
    await rig.runner.start(api.bot())
    try:
        await until(lambda: job_row(rig, job_id)[0] == JobStatus.DONE)
    finally:
        await rig.runner.stop()
        rig.services.close()
    assert job_row(rig, job_id) == (JobStatus.DONE, 1)
    assert api.visible(USER) == ["buongiorno a tutti"]


@pytest.mark.parametrize("noticed_by", ["expired lease", "restart under its name"])
async def test_a_job_out_of_attempts_is_answered_counted_logged_and_alerted_once(
    tmp_path: Path, noticed_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its workers were killed three times: the queue fails it in whichever process
    notices (any worker's heartbeat, or its last worker restarted under the same name).
    That process now ends it as a crash; before, nobody heard of it."""
    api = FakeBotApi()
    rig = build_rig(tmp_path, FakeTranscriber(), admin_ids=[ADMIN])
    bot = api.bot()
    enqueued = rig.queue.enqueue(voice(api), user_id=USER, chat_id=USER, user_message_id=7)
    job_id = enqueued.job_id
    assert job_id is not None
    status = await bot.send_message(USER, "✍️ Trascrivo…")  # what its last worker showed
    rig.queue.release(job_id, status.message_id)
    with rig.db.unit_of_work() as uow:
        for death in range(job_queue.DEFAULT_MAX_ATTEMPTS):
            last = death == job_queue.DEFAULT_MAX_ATTEMPTS - 1
            if last and noticed_by == "restart under its name":
                job_queue.claim_jobs(uow.session, owner=rig.queue.owner, lease_seconds=600)
                break
            job_queue.claim_jobs(uow.session, owner=f"dead-{death}", lease_seconds=0)
            if not last:
                job_queue.requeue_expired(uow.session, now=utcnow() + timedelta(seconds=1))
        uow.commit()
    rig.services.alerts.attach(bot)
    caplog.set_level(logging.INFO)
    await rig.runner.start(bot)  # requeues (as every heartbeat does) and takes back
    try:
        await until(lambda: bool(api.visible(ADMIN)))
        await rig.runner._requeue_expired()  # the next heartbeat: nothing more to say
        await asyncio.sleep(0.2)
    finally:
        await rig.runner.stop()
    assert job_row(rig, job_id) == (JobStatus.FAILED, job_queue.DEFAULT_MAX_ATTEMPTS)
    assert api.visible(USER) == [messages.INTERNAL_ERROR]  # its status message, edited
    assert api.visible(ADMIN) == [
        f"⚠️ job {job_id} (telegram_file): JobInterrupted: {job_queue.INTERRUPTED_ERROR}"
    ]
    assert 'whisper_it_jobs_total{outcome="failed"} 1.0' in rig.services.metrics.render().decode()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"job {job_id} failed"]
    rig.services.close()


class FloodedEdits(FakeBotApi):
    """Telegram in a flood: every edit is refused with "retry after 30"."""

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any):
        if not url.endswith("/editMessageText"):
            return await super().do_request(url, method, *args, **kwargs)
        self.edits_refused = getattr(self, "edits_refused", 0) + 1
        body = {"ok": False, "error_code": 429, "description": "Too Many Requests",
                "parameters": {"retry_after": 30}}  # fmt: skip
        return 429, json.dumps(body).encode()


async def test_a_flooded_refresh_of_the_queued_message_does_not_keep_its_job_held(
    tmp_path: Path,
) -> None:
    """Its place moved ("posizione 3" -> 1): the "In coda" edit meets a 30 s flood wait.
    It was waited out (up to 5 x 300 s) with the job held, so no worker could start it."""
    api = FloodedEdits()
    bot = ExtBot(TOKEN, base_url="https://fake.invalid/bot", request=api,
                 get_updates_request=api, rate_limiter=RetryAfterLimiter())  # fmt: skip
    rig = build_rig(tmp_path, FakeTranscriber(), workers=0)
    worker = WorkQueue(rig.db, rig.store, rig.queue.limits, owner="gpu-worker")
    enqueued = rig.queue.enqueue(voice(api), user_id=USER, chat_id=USER, user_message_id=7)
    assert enqueued.job_id is not None
    queued = await bot.send_message(USER, "In coda: posizione 3 di 3")
    rig.queue.release(enqueued.job_id, queued.message_id)
    display = rig.runner.display
    display.track(enqueued.job_id, USER, queued.message_id, position=3, eta=None)
    delivery = Delivery(bot, DeliveryOptions(max_message_chars=4096, long_text_as_file_chars=9999))
    await asyncio.wait_for(display.refresh(delivery), timeout=5)  # given up, not waited out
    await display.refresh(delivery)  # within the wait Telegram asked for: no edit at all
    assert api.edits_refused == 1
    assert [job.id for job in worker.claim()] == [enqueued.job_id]
    rig.services.close()
