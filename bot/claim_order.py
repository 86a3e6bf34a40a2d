"""Which of the pending jobs a worker's claim takes: one user's jobs start in the order
they were sent, within one process too (the database's claim tells only processes apart)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from bot.job_payloads import JobPayload, UnknownJobError, from_record
from storage.models import Job


class InOrder:
    """A claim's filter, shown the candidates oldest first: a user whose job it passes
    over (busy, or refused by ``accept``) gets none of their later ones either."""

    def __init__(self, accept: Callable[[JobPayload], bool] | None, busy: Collection[int]):
        self.accept = accept
        self.blocked = set(busy)

    def __call__(self, job: Job) -> bool:
        if job.user_id in self.blocked:
            return False
        if self.accept is None or _accepts(job, self.accept):
            return True
        if job.user_id is not None:
            self.blocked.add(job.user_id)
        return False


def _accepts(job: Job, accept: Callable[[JobPayload], bool]) -> bool:
    try:
        return accept(from_record(job.kind, dict(job.payload)))
    except UnknownJobError:
        return False
