"""What stops a running job halfway: its sender's "Annulla", a /forget that deleted it
(maybe in another process), or shutdown. One event per job, set on the event loop and read
by the pipeline in its worker thread (between stages and at each progress report)."""

from __future__ import annotations

import asyncio
import logging
import threading

from bot.work_queue import WorkQueue

log = logging.getLogger(__name__)

# How often a running link job checks that its user did not /forget it meanwhile.
FORGET_POLL_SECONDS = 1.0


class JobCancels:
    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self._events: dict[int, threading.Event] = {}

    def event(self, job_id: int) -> threading.Event:
        """The event that stops ``job_id``."""
        return self._events.setdefault(job_id, threading.Event())

    def is_set(self, job_id: int) -> bool:
        return self.event(job_id).is_set()

    def forget(self, job_id: int) -> None:
        """The job is over: its event is no longer needed."""
        self._events.pop(job_id, None)

    def set_all(self) -> None:
        for event in list(self._events.values()):
            event.set()

    async def when_forgotten(self, job_id: int) -> None:
        """Set the job's event once /forget deleted it (runs until cancelled or set)."""
        cancel = self.event(job_id)
        while not cancel.is_set():
            await asyncio.sleep(FORGET_POLL_SECONDS)
            try:
                exists = await asyncio.to_thread(self.queue.exists, job_id)
            except Exception:
                log.exception("cannot check job %s", job_id)
                continue
            if not exists:
                cancel.set()
