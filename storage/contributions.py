"""Who taught the model what: per-user contributions to the samples, and their removal.

An admin who finds a user poisoning the training data (or a user's rows in quarantine)
removes that user's corrections; their transcriptions and audio stay (the user may still
want them), the audio then counts as uncorrected and goes with the retention period.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.orm import Session

from storage.labels import Conflict, resolve_labels
from storage.models import Correction, User
from storage.samples import TRAIN, SplitPolicy, list_samples
from storage.split_policy import SentenceKey


@dataclass(frozen=True)
class Contribution:
    user_id: int
    name: str | None
    username: str | None
    train: int
    eval: int
    seconds: float
    # Quarantined clips this user is a party to (as owner or as a disagreeing sender).
    quarantined: int
    corrections: int  # transcripts this user labelled (corrected or confirmed), once each

    @property
    def samples(self) -> int:
        return self.train + self.eval


@dataclass(frozen=True)
class RemovedContributions:
    user_id: int
    corrections: int
    samples: int
    quarantined: int


def list_contributions(session: Session, *, policy: SplitPolicy) -> list[Contribution]:
    """Every user with at least one correction, most training samples first."""
    train: Counter[int] = Counter()
    held_out: Counter[int] = Counter()
    seconds: defaultdict[int, float] = defaultdict(float)
    labels = resolve_labels(session, sentence_key=policy.sentence_key)
    samples = list_samples(session, policy=policy, labels=labels)
    for sample in samples:
        (train if sample.split == TRAIN else held_out)[sample.user_id] += 1
        seconds[sample.user_id] += sample.duration
    quarantined: Counter[int] = Counter(
        user_id for conflict in labels.quarantined for user_id in conflict.user_ids
    )
    rows = session.execute(
        # Transcripts the user labelled: the latest label counts, not its history.
        select(User.id, User.name, User.username, func.count(distinct(Correction.transcription_id)))
        .join(Correction, Correction.user_id == User.id)
        .group_by(User.id, User.name, User.username)
    )
    contributions = [
        Contribution(
            user_id=user_id,
            name=name,
            username=username,
            train=train[user_id],
            eval=held_out[user_id],
            seconds=round(seconds[user_id], 3),
            quarantined=quarantined[user_id],
            corrections=corrections,
        )
        for user_id, name, username, corrections in rows
    ]
    contributions.sort(key=lambda c: (-c.samples, -c.quarantined, -c.corrections, c.user_id))
    return contributions


def list_quarantine(session: Session, *, sentence_key: SentenceKey) -> list[Conflict]:
    """Clips whose senders disagree on the text, oldest first."""
    return list(resolve_labels(session, sentence_key=sentence_key).quarantined)


def remove_user_contributions(
    session: Session, user_id: int, *, sentence_key: SentenceKey
) -> RemovedContributions:
    """Delete every correction ``user_id`` made: their samples leave the training and
    evaluation sets, and quarantines they caused are lifted. Flushes, never commits."""
    labels = resolve_labels(session, sentence_key=sentence_key)
    samples = sum(1 for label in labels.labelled if label.user_id == user_id)
    quarantined = sum(1 for c in labels.quarantined if user_id in c.user_ids)
    result = session.execute(
        delete(Correction)
        .where(Correction.user_id == user_id)
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    return RemovedContributions(
        user_id=user_id, corrections=result.rowcount, samples=samples, quarantined=quarantined
    )
