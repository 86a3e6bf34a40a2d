"""What the labelling policy decided, read back for assertions: (user, text) of every
training sample and the users party to each quarantined clip."""

from __future__ import annotations

from storage.contributions import list_quarantine
from storage.samples import list_samples
from storage.unit_of_work import Database
from training.config import split_policy

# The default split, as an installation with the default settings has it.
SPLIT = split_policy(0.1)


def labels_of(database: Database) -> list[tuple[int, str]]:
    with database.unit_of_work(read_only=True) as uow:
        return [(s.user_id, s.text) for s in list_samples(uow.session, policy=SPLIT)]


def quarantine_of(database: Database) -> list[tuple[int, ...]]:
    with database.unit_of_work(read_only=True) as uow:
        return [
            conflict.user_ids
            for conflict in list_quarantine(uow.session, sentence_key=SPLIT.sentence_key)
        ]
