"""Keeps the "In coda" messages of the jobs this process accepted up to date: their place
in the queue and the estimated wait change as the queue moves ("In coda: posizione 2 di 3
· circa 20 s"). A message is left alone once its job has started (its worker edits it
from then on), was cancelled or is gone. An edit Telegram refuses with a flood wait is not
waited out (its job is held meanwhile, so no worker could start it): it is tried again at a
pass after the wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot import formatting
from bot.delivery import Delivery
from bot.ops.telegram_retry import without_flood_waits
from bot.work_queue import WorkQueue
from storage.errors import NotFoundError

log = logging.getLogger(__name__)

# How often queued messages are brought up to date (Telegram rate-limits edits).
QUEUE_REFRESH_SECONDS = 5.0
MAX_EDITS_PER_PASS = 20
# An estimate alone is edited only when it moved this much (seconds, and fraction).
ETA_MIN_CHANGE_SECONDS = 10.0
ETA_MIN_CHANGE_FRACTION = 0.25
# A held job's lease is renewed this many times per lease period while it is held.
HOLD_RENEWALS_PER_LEASE = 3

T = TypeVar("T")


@dataclass
class _Announced:
    chat_id: int
    message_id: int
    position: int | None
    eta: float | None


class QueueDisplay:
    def __init__(self, queue: WorkQueue, busy: Callable[[], int]) -> None:
        self.queue = queue
        self.busy = busy  # jobs this process works on now (they count in "di N")
        self._announced: dict[int, _Announced] = {}
        # Held while a queued message is checked and edited (the job is held in the
        # database too); "Annulla" pressed in this process waits for it.
        self.lock = asyncio.Lock()
        # After a flood wait Telegram asked of an edit: no edits before then (monotonic).
        self._quiet_until = 0.0

    def text(self, position: int | None, waiting: int, eta: float | None) -> str:
        return formatting.queued_text(position, waiting + self.busy(), eta)

    def track(
        self, job_id: int, chat_id: int, message_id: int, position: int | None, eta: float | None
    ) -> None:
        self._announced[job_id] = _Announced(chat_id, message_id, position, eta)

    async def refresh(self, delivery: Delivery) -> None:
        """One pass, front of the queue first: edit the messages whose place moved or whose
        estimate changed noticeably (at most MAX_EDITS_PER_PASS: Telegram rate-limits
        edits); forget jobs that left the queue."""
        edits = 0
        for job_id in sorted(self._announced):
            if edits >= MAX_EDITS_PER_PASS or time.monotonic() < self._quiet_until:
                return
            async with self.lock:
                edits += await self._refresh_one(delivery, job_id)

    async def _refresh_one(self, delivery: Delivery, job_id: int) -> int:
        shown = self._announced[job_id]
        try:
            position, waiting = await asyncio.to_thread(self.queue.position, job_id)
        except NotFoundError:  # deleted with its user's data (/forget)
            position = None
        if position is None:
            del self._announced[job_id]
            return 0
        eta = await asyncio.to_thread(self.queue.eta, job_id)
        if position == shown.position and not _moved(shown.eta, eta):
            return 0
        # Held while edited: a worker in any process that started it now could have its
        # progress, or its transcript, overwritten by this edit landing late.
        if not await asyncio.to_thread(self.queue.hold, job_id):
            del self._announced[job_id]  # started or cancelled meanwhile
            return 0
        try:
            text = self.text(position, waiting, eta)
            # Not repeated after a 429: the job would stay held, unclaimable, all along.
            with without_flood_waits() as refused:
                edit = delivery.update_queued(shown.chat_id, shown.message_id, job_id, text)
                await self.while_held(job_id, edit)
        finally:
            await asyncio.to_thread(self.queue.release, job_id, None)
        if refused:  # still shown as before: edited at a later pass
            self._quiet_until = time.monotonic() + max(refused)
        else:
            shown.position, shown.eta = position, eta
        return 1

    async def while_held(self, job_id: int, work: Awaitable[T]) -> T | None:
        """Await ``work`` (sending or editing the job's queued message) while the job is
        held, renewing the hold: Telegram's flood waits can outlast a lease, and a worker
        could then start the job and have its message overwritten. If the hold is lost
        anyway, ``work`` is cancelled and None returned: the message is the worker's."""
        doing = asyncio.ensure_future(work)
        keeping = asyncio.create_task(self._keep_held(job_id))
        try:
            await asyncio.wait((doing, keeping), return_when=asyncio.FIRST_COMPLETED)
        finally:  # the hold was lost, or this task is cancelled: neither goes on
            keeping.cancel()
            doing.cancel()
        await asyncio.wait((doing,))
        return None if doing.cancelled() else doing.result()

    async def _keep_held(self, job_id: int) -> None:
        """Renew the job's hold until it is lost (then return); database errors wait for
        the next renewal (the hold outlives a few)."""
        interval = self.queue.limits.lease_seconds / HOLD_RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(interval)
            try:
                kept = await asyncio.to_thread(self.queue.renew, {job_id: None})
            except Exception:
                log.exception("cannot renew the hold of job %s", job_id)
                continue
            if job_id not in kept:
                log.warning("lost the hold of job %s: its queued message is left alone", job_id)
                return

    async def run(self, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(QUEUE_REFRESH_SECONDS)
            try:
                await self.refresh(delivery)
            except Exception:
                log.exception("cannot update the queued messages")


def _moved(shown: float | None, now: float | None) -> bool:
    """Whether an estimate changed enough to be worth an edit."""
    if shown is None or now is None:
        return shown is not now
    return abs(now - shown) >= max(ETA_MIN_CHANGE_SECONDS, ETA_MIN_CHANGE_FRACTION * shown)
