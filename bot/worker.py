"""The job runner: accepts jobs (durably, with the user's place in the queue), and runs a
bounded pool of workers that claim them from the shared queue under renewable leases and
hand them to the processor (``bot.job_processing``).

Short voice notes are claimed in batches: after one is claimed the worker waits a moment
for the rest of a burst and decodes up to ``batch_size`` together. Jobs live in the
database, so nothing is lost: a worker that dies stops renewing its leases, and any
worker (in any process) puts its jobs back in the queue once they expire; a process that
stops cleanly (SIGTERM) gives its running jobs back at once, without spending an attempt.
A job out of attempts is answered by the process whose requeue failed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from telegram import Bot

from bot.delivery import Delivery, DeliveryOptions
from bot.job_payloads import JobPayload, TelegramFileJob
from bot.job_processing import JobProcessor
from bot.ops.metrics import OUTCOME_FAILED, Metrics
from bot.pipeline import (
    TranscriptionPipeline,
)
from bot.queue_display import QueueDisplay
from bot.repeats import Repeats
from bot.work_queue import ClaimedJob, WorkQueue
from model.asr.routing import fits_short_clip
from storage import job_recovery
from storage.job_cancel import CancelOutcome
from storage.job_recovery import INTERRUPTED_ERROR, RequeueResult

log = logging.getLogger(__name__)

# Leases are renewed this many times per lease period, so one slow renewal loses nothing.
RENEWALS_PER_LEASE = 3
# How often a worker busy with jobs asks the database whether their senders cancelled them
# (a press in this process stops the job at once; one in another process within this).
CANCEL_POLL_SECONDS = 1.0


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    workers: int  # 0: this process only accepts jobs; worker processes run them
    tag_budget_seconds: float
    delivery: DeliveryOptions
    # Dynamic batching: after claiming a short voice note, wait this long for more and
    # decode up to ``batch_size`` of them in one model call (1 = off).
    batch_size: int
    batch_wait_seconds: float
    # How often an idle worker looks for jobs other processes queued.
    poll_seconds: float


@dataclass(frozen=True)
class Submitted:
    accepted: bool
    refusal: str | None = None
    job_id: int | None = None


class JobRunner:
    def __init__(
        self,
        *,
        queue: WorkQueue,
        pipeline: TranscriptionPipeline,
        options: WorkerOptions,
        repeats: Repeats,
        report_error: Callable[[str], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.queue = queue
        self.repeats = repeats
        self.metrics = metrics or Metrics()
        self.pipeline = pipeline
        self.options = options
        self._report_error = report_error
        # CPU-heavy work (decode, transcribe) never runs on the event loop.
        self.cpu = ThreadPoolExecutor(
            max_workers=max(1, options.workers), thread_name_prefix="transcribe"
        )
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._processor: JobProcessor | None = None
        self._busy = 0
        # Job id -> its ``attempt`` when claimed, for the claims this process's workers run.
        self._held: dict[int, int] = {}
        # Job id -> its user, for the same claims from the moment they are made: another
        # worker here must not start a later job of that user meanwhile.
        self._users: dict[int, int] = {}
        self._claiming = asyncio.Lock()
        self.display = QueueDisplay(queue, lambda: self._busy)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, bot: Bot) -> None:
        self._processor = JobProcessor(
            queue=self.queue,
            pipeline=self.pipeline,
            repeats=self.repeats,
            delivery=Delivery(bot, self.options.delivery),
            cpu=self.cpu,
            tag_budget_seconds=self.options.tag_budget_seconds,
            report_error=self._report_error,
            metrics=self.metrics,
        )
        await self._take_back_own()
        self._tasks.append(
            asyncio.create_task(self.display.run(self.processor.delivery), name="queue-display")
        )
        if self.options.workers <= 0:
            return  # a front without workers: it only accepts jobs
        await self._requeue_expired()
        for number in range(self.options.workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"worker-{number}"))
        self._tasks.append(asyncio.create_task(self._renew_leases(), name="leases"))
        self._tasks.append(asyncio.create_task(self._watch_cancels(), name="cancels"))

    async def _take_back_own(self) -> None:
        try:
            result = await asyncio.to_thread(self.queue.take_back_own)
        except Exception:
            log.exception("cannot take back this process's jobs")
            return
        if result.requeued or result.failed:
            log.info(
                "restarted as %s: %d job(s) back in the queue at once (%d out of attempts)",
                self.queue.owner,
                len(result.requeued),
                len(result.failed),
            )
            self._wake.set()
        await self._end_interrupted(result)

    async def _requeue_expired(self) -> None:
        try:
            result = await asyncio.to_thread(self.queue.requeue_expired)
        except Exception:
            log.exception("cannot requeue expired jobs")
            return
        if result.requeued:
            log.info("resuming %d job(s) of a worker that stopped", len(result.requeued))
            self._wake.set()
        await self._end_interrupted(result)

    async def _end_interrupted(self, result: RequeueResult) -> None:
        """Tell the senders of the jobs this requeue failed (their workers kept dying):
        only this process got their ids, so nobody else will."""
        if not result.failed:
            return
        if self._processor is None:  # (not started: no bot to tell them with)
            log.error("job(s) %s failed untold: %s", list(result.failed), INTERRUPTED_ERROR)
            for _ in result.failed:
                self.metrics.job_concluded(OUTCOME_FAILED)
            return
        try:
            await self.processor.endings.interrupted(self.processor.delivery, result.failed)
        except Exception:
            log.exception("cannot tell the senders of failed job(s) %s", list(result.failed))

    async def _renew_leases(self) -> None:
        """Heartbeat: keep the leases of the jobs this process works on, and give back
        to the queue the jobs of workers that stopped renewing theirs. Renewing comes
        first, and requeuing only once it worked: after a database outage longer than a
        lease, requeuing first would give back this process's own running jobs."""
        interval = self.queue.limits.lease_seconds / RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(interval)
            if await self._renew_claims():
                await self._requeue_expired()

    async def _renew_claims(self) -> bool:
        """Renew the leases of the claims this process runs; False if the database failed."""
        claims = dict(self._held)
        if not claims:
            return True
        try:
            kept = await asyncio.to_thread(self.queue.renew, claims)
        except Exception:
            log.exception("cannot renew job leases")
            return False
        if lost := set(claims) - kept - set(self.processor.finished):
            log.warning("lost the lease of job(s) %s: another worker answers them", lost)
        return True

    async def _watch_cancels(self) -> None:
        """Stop the jobs this process works on whose senders pressed "Annulla" anywhere."""
        while True:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            held = set(self._held)
            if not held:
                continue
            try:
                cancelled = await asyncio.to_thread(self.queue.cancel_requested, held)
            except Exception:
                log.exception("cannot check for cancelled jobs")
                continue
            for job_id in cancelled & self._held.keys():
                self.processor.cancels.event(job_id).set()

    async def cancel(self, job_id: int, *, user_id: int) -> CancelOutcome:
        """``user_id`` pressed "Annulla" under ``job_id``'s status message: a waiting job
        ends now; a running one stops at once here, or soon in the process that holds it."""
        async with self.display.lock:  # an "In coda" edit in flight lands before "Annullata"
            outcome = await asyncio.to_thread(self.queue.cancel, job_id, user_id)
        if outcome is CancelOutcome.REQUESTED and job_id in self._held:
            self.processor.cancels.event(job_id).set()
        return outcome

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._processor is not None:
            await self._give_back()
            await self._processor.close()
        self.cpu.shutdown(wait=False, cancel_futures=True)

    async def _give_back(self) -> None:
        """A clean stop (SIGTERM: a deploy, a restart): the jobs this process's workers were
        running go back to the queue now, their interrupted run not counted (a crash
        counts: a file that kills its worker must not kill every worker in turn)."""
        if self.options.workers <= 0:
            return  # a front runs no jobs (those it holds are released by their tasks)
        try:
            result = await asyncio.to_thread(_give_back_leases, self.queue)
        except Exception:
            log.exception("cannot give back this process's jobs: they wait for their leases")
            return
        if result.requeued:
            log.info("stopping: %d job(s) back in the queue", len(result.requeued))

    def alive(self) -> bool:
        """No worker or heartbeat task has stopped (they only stop when cancelled)."""
        return not any(task.done() for task in self._tasks)

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def processor(self) -> JobProcessor:
        assert self._processor is not None, "start() first"
        return self._processor

    # --- accepting work -------------------------------------------------------------------

    async def submit(
        self,
        payload: JobPayload,
        *,
        user_id: int,
        chat_id: int,
        user_message_id: int,
        user_name: str | None = None,
    ) -> Submitted:
        """Record the job (durably) and show its place in the queue, or say why not."""
        enqueued = await asyncio.to_thread(
            self.queue.enqueue,
            payload,
            user_id=user_id,
            chat_id=chat_id,
            user_message_id=user_message_id,
            user_name=user_name,
        )
        if enqueued.job_id is None:
            return Submitted(False, enqueued.refusal)
        log.info(
            "job %s accepted",
            enqueued.job_id,
            extra={"job_id": enqueued.job_id, "user_id": user_id},
        )
        message_id = None
        try:  # held (and renewed) while its place is sent, so no worker starts it meanwhile
            announced = self._announce(enqueued.job_id, chat_id, user_message_id, payload.thread_id)
            message_id = await self.display.while_held(enqueued.job_id, announced)
        finally:  # queued whatever happened: a worker sends its own message if none
            await asyncio.to_thread(self.queue.release, enqueued.job_id, message_id)
        self._wake.set()
        return Submitted(True, job_id=enqueued.job_id)

    async def _announce(
        self, job_id: int, chat_id: int, user_message_id: int, thread_id: int | None
    ) -> int | None:
        """Send the job's "In coda" message (its place, the estimated wait), in the
        request's topic; its id."""
        position, waiting = await asyncio.to_thread(self.queue.position, job_id)
        eta = await asyncio.to_thread(self.queue.eta, job_id)
        text = self.display.text(position, waiting, eta)
        message_id = await self.processor.delivery.send_queued(
            chat_id, user_message_id, text, job_id=job_id, thread_id=thread_id
        )
        if message_id is not None:
            self.display.track(job_id, chat_id, message_id, position, eta)
        return message_id

    # --- the workers ----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            try:
                jobs = await self._claim()
            except Exception:
                log.exception("cannot claim a job")
                jobs = []
            if not jobs:
                await self._idle()
                continue
            claims = {job.id: job.attempt for job in jobs}
            self._held.update(claims)
            self._busy += len(jobs)
            try:
                await self.processor.process(jobs)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one batch stop the worker
                log.exception("jobs %s crashed", sorted(claims))
            finally:
                self._busy -= len(jobs)
                self._let_go(claims)

    def _let_go(self, claims: dict[int, int]) -> None:
        """Forget a finished batch's claims, but not a later claim of one of its jobs (this
        batch lost the lease, another worker here claimed it again): that one still runs."""
        for job_id, attempt in claims.items():
            if self._held.get(job_id, attempt) != attempt:
                continue
            self._held.pop(job_id, None)
            self._users.pop(job_id, None)
            self.processor.finished.discard(job_id)
            self.processor.cancels.forget(job_id)

    async def _idle(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.options.poll_seconds)

    async def _claim(self) -> list[ClaimedJob]:
        # Between jobs: switch to a newly promoted model if there is one (never raises).
        await asyncio.to_thread(self.pipeline.models.refresh)
        jobs = await self._claim_in_order()
        if not jobs or self.options.batch_size <= 1 or not _batchable(jobs[0].payload):
            return jobs
        # A short voice note: give the burst it may belong to a moment to arrive.
        await asyncio.sleep(self.options.batch_wait_seconds)
        try:
            more = await self._claim_in_order(
                limit=self.options.batch_size - 1, accept=_batchable, own=jobs
            )
        except Exception:  # the jobs already claimed still run
            log.exception("cannot claim the rest of a batch")
            more = []
        return jobs + more

    async def _claim_in_order(
        self,
        *,
        limit: int = 1,
        accept: Callable[[JobPayload], bool] | None = None,
        own: Sequence[ClaimedJob] = (),
    ) -> list[ClaimedJob]:
        """Claim, passing over the users whose jobs this process's other workers run (one
        claim at a time here, so each sees the others'); ``own``: this batch's jobs."""
        async with self._claiming:
            mine = {job.id for job in own}
            busy = {user for job_id, user in self._users.items() if job_id not in mine}
            jobs = await asyncio.to_thread(
                self.queue.claim, limit=limit, accept=accept, busy_users=busy
            )
            self._users.update((job.id, job.user_id) for job in jobs)
        return jobs


def _give_back_leases(queue: WorkQueue) -> RequeueResult:
    """``storage.job_recovery.give_back_leases`` for this process's name, committed."""
    with queue.db.unit_of_work() as uow:
        result = job_recovery.give_back_leases(uow.session, owner=queue.owner)
        uow.commit()
    return result


def _batchable(payload: JobPayload) -> bool:
    """A Telegram file that says it fits the short path (links keep their own path)."""
    return (
        isinstance(payload, TelegramFileJob)
        and payload.duration is not None
        and fits_short_clip(payload.duration)
    )
