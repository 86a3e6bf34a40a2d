"""Keeps the "In coda" messages of the jobs this process accepted up to date: their place
in the queue and the estimated wait change as the queue moves ("In coda: posizione 2 di 3
· circa 20 s"). A message is left alone once its job has started (its worker edits it
from then on), was cancelled or is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot import formatting
from bot.delivery import Delivery
from bot.work_queue import WorkQueue
from storage.errors import NotFoundError

log = logging.getLogger(__name__)

# How often queued messages are brought up to date (Telegram rate-limits edits).
QUEUE_REFRESH_SECONDS = 5.0


@dataclass
class _Announced:
    chat_id: int
    message_id: int
    text: str


class QueueDisplay:
    def __init__(self, queue: WorkQueue, busy: Callable[[], int]) -> None:
        self.queue = queue
        self.busy = busy  # jobs this process works on now (they count in "di N")
        self._announced: dict[int, _Announced] = {}
        # Held while a queued message is edited; a worker of this process takes it after
        # claiming a job, so a late "In coda" edit never lands over the job's progress.
        self.lock = asyncio.Lock()

    def text(self, position: int | None, waiting: int, eta: float | None) -> str:
        return formatting.queued_text(position, waiting + self.busy(), eta)

    def track(self, job_id: int, chat_id: int, message_id: int, text: str) -> None:
        self._announced[job_id] = _Announced(chat_id, message_id, text)

    async def refresh(self, delivery: Delivery) -> None:
        """One pass: edit the messages whose text changed; forget jobs that left the queue."""
        if not self._announced:
            return
        async with self.lock:
            for job_id, shown in list(self._announced.items()):
                try:
                    position, waiting = await asyncio.to_thread(self.queue.position, job_id)
                except NotFoundError:  # deleted with its user's data (/forget)
                    position = None
                if position is None:
                    del self._announced[job_id]
                    continue
                eta = await asyncio.to_thread(self.queue.eta, job_id)
                text = self.text(position, waiting, eta)
                if text == shown.text:
                    continue
                shown.text = text
                await delivery.update_queued(shown.chat_id, shown.message_id, job_id, text)

    async def run(self, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(QUEUE_REFRESH_SECONDS)
            try:
                await self.refresh(delivery)
            except Exception:
                log.exception("cannot update the queued messages")
