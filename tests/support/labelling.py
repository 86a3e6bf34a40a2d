"""What the labelling policy decided, read back for assertions: (user, text) of every
training sample and the users party to each quarantined clip."""

from __future__ import annotations

from storage.contributions import list_quarantine
from storage.samples import list_samples
from storage.unit_of_work import Database


def labels_of(database: Database) -> list[tuple[int, str]]:
    with database.unit_of_work(read_only=True) as uow:
        return [(s.user_id, s.text) for s in list_samples(uow.session, eval_fraction=0.1)]


def quarantine_of(database: Database) -> list[tuple[int, ...]]:
    with database.unit_of_work(read_only=True) as uow:
        return [conflict.user_ids for conflict in list_quarantine(uow.session)]
