"""Which of the pending jobs a worker's claim takes: one user's jobs start in the order
they were sent, also through claims that take only some kinds of job (batches)."""

from __future__ import annotations

from collections.abc import Callable

from bot.job_payloads import JobPayload, UnknownJobError, from_record
from storage.models import Job


class InOrder:
    """A claim's filter, shown the candidates oldest first: a user whose job ``accept``
    refuses gets none of their later ones either."""

    def __init__(self, accept: Callable[[JobPayload], bool] | None):
        self.accept = accept
        self.blocked: set[int] = set()

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
