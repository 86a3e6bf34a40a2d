"""Hashtags within a time budget: a reply waits for its tags only so long; tags that come
later are stored and edited into the reply by their own task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from bot.delivery import Delivery, Reply
from bot.pipeline import TranscriptionPipeline
from bot.work_queue import WorkQueue

log = logging.getLogger(__name__)

# Tags that have not arrived this long after the reply are dropped.
LATE_TAGS_TIMEOUT = 120.0


class TagBudget:
    def __init__(
        self,
        pipeline: TranscriptionPipeline,
        queue: WorkQueue,
        delivery: Delivery,
        *,
        budget_seconds: float,
    ) -> None:
        self.pipeline = pipeline
        self.queue = queue
        self.delivery = delivery
        self.budget_seconds = budget_seconds
        # Tags have their own thread so they never queue behind a long transcription.
        self.tagging = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tags")
        self._late: set[asyncio.Task[None]] = set()

    def add_later(
        self,
        reply: Reply,
        transcription_id: int,
        message_ids: list[int],
        late: asyncio.Future[tuple[str, ...]],
    ) -> None:
        """Edit the tags into the reply (sent without them) once they arrive."""
        task = asyncio.create_task(
            self._late_tags(reply, transcription_id, message_ids, late),
            name=f"late-tags-{reply.job_id}",
        )
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def close(self) -> None:
        late = list(self._late)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._late.clear()
        self.tagging.shutdown(wait=False, cancel_futures=True)

    async def within_budget(
        self, text: str
    ) -> tuple[tuple[str, ...], asyncio.Future[tuple[str, ...]] | None]:
        """Tags within the budget, or none now and a future for them later."""
        if self.pipeline.tagger is None or not text.strip():
            return (), None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.tagging, self.pipeline.hashtags, text)
        try:
            tags = await asyncio.wait_for(asyncio.shield(future), self.budget_seconds)
        except TimeoutError:
            return (), future
        return tags, None

    async def _late_tags(
        self,
        reply: Reply,
        transcription_id: int,
        message_ids: list[int],
        late: asyncio.Future[tuple[str, ...]],
    ) -> None:
        """The reply went out without tags; add them to it once they arrive."""
        try:
            hashtags = await asyncio.wait_for(late, LATE_TAGS_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("hashtags for job %s never arrived", reply.job_id)
            return
        if not hashtags:
            return
        label = await asyncio.to_thread(self.queue.save_tags, transcription_id, hashtags)
        if label is None:
            return  # deleted meanwhile (/forget): nothing to show them under
        new_id = await self.delivery.add_late_tags(reply, hashtags, message_ids, label=label)
        if new_id is not None:
            await asyncio.to_thread(
                self.queue.add_reply_message, transcription_id, reply.chat_id, new_id
            )
