"""Admin operations on the training data, shared by the Telegram commands and the CLI.

``/stats``, ``/contributors`` and ``/remove_contributions`` in the bot and ``whisper-it
samples stats|contributors|quarantine|remove-user`` call these methods, so both read the
same split (the installation's ``SplitPolicy``) and format only. No telegram import.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage import queue_counts, repository
from storage.contributions import (
    Contribution,
    RemovedContributions,
    list_contributions,
    list_quarantine,
    remove_user_contributions,
)
from storage.labels import Conflict
from storage.repository import StorageCounts
from storage.samples import SampleStats, SplitPolicy, sample_stats
from storage.unit_of_work import Database


@dataclass(frozen=True)
class Overview:
    """What ``/stats`` shows of the stored data."""

    counts: StorageCounts
    samples: SampleStats
    pending_jobs: int


@dataclass(frozen=True)
class ContributorsReport:
    contributions: list[Contribution]
    samples: SampleStats


class AdminService:
    def __init__(self, db: Database, *, policy: SplitPolicy) -> None:
        self.db = db
        self.policy = policy

    def sample_stats(self) -> SampleStats:
        with self.db.unit_of_work(read_only=True) as uow:
            return sample_stats(uow.session, policy=self.policy)

    def overview(self) -> Overview:
        with self.db.unit_of_work(read_only=True) as uow:
            return Overview(
                counts=repository.storage_counts(uow.session),
                samples=sample_stats(uow.session, policy=self.policy),
                pending_jobs=queue_counts.count_pending_jobs(uow.session),
            )

    def contributors(self) -> ContributorsReport:
        with self.db.unit_of_work(read_only=True) as uow:
            return ContributorsReport(
                contributions=list_contributions(uow.session, policy=self.policy),
                samples=sample_stats(uow.session, policy=self.policy),
            )

    def quarantine(self) -> list[Conflict]:
        with self.db.unit_of_work(read_only=True) as uow:
            return list_quarantine(uow.session, sentence_key=self.policy.sentence_key)

    def remove_user(self, user_id: int) -> RemovedContributions:
        with self.db.unit_of_work() as uow:
            removed = remove_user_contributions(
                uow.session, user_id, sentence_key=self.policy.sentence_key
            )
            uow.commit()
        return removed
