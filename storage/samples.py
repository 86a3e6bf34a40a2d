"""Training samples: stored audio paired with the text its owner gave it.

Which correction labels a clip is decided in ``storage.labels`` (the first sender's, and
conflicting senders put the clip in quarantine). The train/held-out split is decided per
*sentence*, not per clip: the same normalised sentence spoken by two voices is on one side
only, so the held-out set measures new sentences rather than memory. The side is a keyed
hash (HMAC-SHA-256) of the sentence under a secret made once per installation
(``storage.installation``): nobody outside can predict or choose where a clip lands.

A bare fraction leaves a small installation nothing to judge on (10% of 15 sentences is
one or two, fewer than the gate needs, or none, depending on the salt), so the held-out
side has a *floor*: the ``min_eval_sentences`` sentences with the lowest hash points are
held out too (so the first ones all are: training starts past the floor). Adding samples
never moves a sentence from the train side to the held-out side (a new sentence can only
push an old one's rank up, and the floor is fixed), so no held-out sentence was ever
trained on; a held-out sentence moves to training once enough others rank before it.
``assign_splits`` is the one split: training, /stats, /contributors and the ``samples``
commands all reach it through ``list_samples``.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import repository
from storage.audio_store import AudioRef
from storage.installation import split_salt
from storage.labels import Labels, resolve_labels
from storage.models import (
    LABEL_CORRECTION,
    SOURCE_IMPORT,
    Correction,
    RunStatus,
    TrainingRun,
    Transcription,
)
from storage.split_policy import SplitPolicy

Split = Literal["train", "eval"]
TRAIN: Split = "train"
EVAL: Split = "eval"
# Domain separation: the same salt may key other things one day.
_SPLIT_DOMAIN = b"whisper-it/split/v2/sentence:"
_HASH_BITS = 64
MIN_SALT_BYTES = 16


def split_of(sentence: str, *, salt: bytes, policy: SplitPolicy) -> Split:
    """The fraction rule alone: ``"eval"`` for about ``eval_fraction`` of all sentences,
    chosen by keyed hash, forever (``assign_splits`` adds the floor).

    Texts with the same sentence key always get the same side.
    """
    point = split_point(policy.sentence_key(sentence), salt=salt)
    return EVAL if point < policy.eval_fraction else TRAIN


def split_point(group: str, *, salt: bytes) -> float:
    """A sentence group's keyed-hash point in [0, 1)."""
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"the split salt must have at least {MIN_SALT_BYTES} bytes")
    message = _SPLIT_DOMAIN + group.encode()
    digest = hmac.new(salt, message, hashlib.sha256).digest()
    return int.from_bytes(digest[: _HASH_BITS // 8], "big") / 2**_HASH_BITS


def assign_splits(
    sentences: Iterable[str], *, salt: bytes, policy: SplitPolicy
) -> dict[str, Split]:
    """Each distinct sentence group's side: the fraction rule, plus the lowest hash points
    up to the floor (see the module docstring)."""
    groups = sorted({policy.sentence_key(sentence) for sentence in sentences})
    points = {group: split_point(group, salt=salt) for group in groups}
    ranked = sorted(groups, key=lambda group: (points[group], group))
    floor = max(policy.min_eval_sentences, 0)
    held = {group for group in groups if points[group] < policy.eval_fraction}
    held |= set(ranked[:floor])
    return {group: EVAL if group in held else TRAIN for group in groups}


@dataclass(frozen=True)
class Sample:
    audio_sha256: str
    text: str
    duration: float
    split: Split
    transcription_id: int
    correction_id: int
    user_id: int
    corrected_at: datetime
    # The normalised sentence: samples sharing it are one split group.
    group: str
    # See ``storage.labels.Label``: the gate's speaker and whether errors selected it.
    speaker: str = ""
    selected: bool = False
    confirmed: bool = False


def list_samples(
    session: Session,
    split: Split | None = None,
    *,
    policy: SplitPolicy,
    labels: Labels | None = None,
) -> list[Sample]:
    """Every sample (or one split's), oldest correction first. Quarantined clips are not
    samples (``storage.contributions.list_quarantine`` lists them). ``labels``: the
    policy's result, when the caller already has it."""
    labelled = (labels or resolve_labels(session, sentence_key=policy.sentence_key)).labelled
    sides = assign_splits(
        (label.text for label in labelled), salt=split_salt(session), policy=policy
    )
    samples = []
    for label in labelled:
        group = policy.sentence_key(label.text)
        side = sides[group]
        if split is not None and side != split:
            continue
        samples.append(
            Sample(
                audio_sha256=label.audio_sha256,
                text=label.text,
                duration=label.duration,
                split=side,
                transcription_id=label.transcription_id,
                correction_id=label.correction_id,
                user_id=label.user_id,
                corrected_at=label.corrected_at,
                group=group,
                speaker=label.speaker,
                selected=label.selected,
                confirmed=label.confirmed,
            )
        )
    return samples


def uncorrected_share(session: Session) -> float:
    """The share of users' transcripts (audio stored, or dropped by retention; not
    imports) their sender never corrected (a confirmation is no correction): how strongly
    the held-out corrections were selected on errors (the gate's selection correction,
    ``training.gate_stats``). 0.0 when nothing was served."""
    from sqlalchemy import exists, func, or_

    # Retention drops only uncorrected audio: counting stored audio alone would let the
    # share drift to 0 as the installation ages, switching the correction off.
    served_rows = (
        Transcription.source_kind != SOURCE_IMPORT,
        Transcription.user_id.is_not(None),
        or_(Transcription.audio_sha256.is_not(None), Transcription.audio_purged_at.is_not(None)),
    )
    served = select(func.count(Transcription.id)).where(*served_rows).scalar_subquery()
    corrected = select(func.count(Transcription.id)).where(
        *served_rows,
        exists().where(
            Correction.transcription_id == Transcription.id,
            Correction.user_id == Transcription.user_id,
            Correction.kind == LABEL_CORRECTION,
        ),
    )
    total = session.scalar(select(served)) or 0
    if not total:
        return 0.0
    return 1.0 - (session.scalar(corrected) or 0) / total


def cap_user_words(samples: Sequence[Sample], *, max_share: float, seed: int) -> list[Sample]:
    """``samples`` without a seeded random part of a dominant speaker's, so that nobody
    holds more than ``max_share`` of the training words (the others' all stay; a single
    speaker, or ``max_share`` >= 1, keeps everything). Order is kept."""
    words: dict[str, int] = {}
    for sample in samples:
        words[sample.speaker] = words.get(sample.speaker, 0) + len(sample.text.split())
    if len(words) < 2 or max_share >= 1.0:
        return list(samples)
    total = sum(words.values())
    allowed: dict[str, float] = {}
    # Water-filling: a capped speaker may hold max_share of the capped total.
    capped: set[str] = set()
    while True:
        free = sum(n for speaker, n in words.items() if speaker not in capped)
        share = max_share * len(capped)
        budget = max_share / max(1.0 - share, 1e-9) * free if share < 1 else total
        over = {s for s, n in words.items() if s not in capped and n > budget}
        if not over or len(capped | over) >= len(words):
            break
        capped |= over
    for speaker in capped:
        allowed[speaker] = budget
    rng = random.Random(seed)
    order = list(range(len(samples)))
    rng.shuffle(order)
    kept_words: dict[str, int] = {}
    keep: set[int] = set()
    for index in order:
        sample = samples[index]
        count = len(sample.text.split())
        limit = allowed.get(sample.speaker)
        if limit is not None and kept_words.get(sample.speaker, 0) + count > limit:
            continue
        kept_words[sample.speaker] = kept_words.get(sample.speaker, 0) + count
        keep.add(index)
    return [sample for index, sample in enumerate(samples) if index in keep]


def last_trained_correction_id(session: Session) -> int | None:
    """The newest correction the last successful training run saw (None: never trained)."""
    return session.scalar(
        select(TrainingRun.max_correction_id)
        .where(TrainingRun.status == RunStatus.DONE)
        .order_by(TrainingRun.id.desc())
        .limit(1)
    )


def count_new_samples(session: Session, *, policy: SplitPolicy) -> int:
    """Training samples added or re-corrected since the last successful training run."""
    cutoff = last_trained_correction_id(session)
    train = list_samples(session, TRAIN, policy=policy)
    return sum(1 for sample in train if cutoff is None or sample.correction_id > cutoff)


@dataclass(frozen=True)
class SampleStats:
    samples: int
    train: int
    eval: int
    audio_seconds: float
    train_seconds: float
    eval_seconds: float
    new_since_last_training_run: int
    # Clips whose senders disagree on the text: neither trained on nor evaluated.
    quarantined: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_stats(session: Session, *, policy: SplitPolicy) -> SampleStats:
    labels = resolve_labels(session, sentence_key=policy.sentence_key)
    samples = list_samples(session, policy=policy, labels=labels)
    quarantined = len(labels.quarantined)
    cutoff = last_trained_correction_id(session)
    train = [sample for sample in samples if sample.split == TRAIN]
    held_out = [sample for sample in samples if sample.split == EVAL]
    return SampleStats(
        samples=len(samples),
        train=len(train),
        eval=len(held_out),
        audio_seconds=round(sum(sample.duration for sample in samples), 3),
        train_seconds=round(sum(sample.duration for sample in train), 3),
        eval_seconds=round(sum(sample.duration for sample in held_out), 3),
        new_since_last_training_run=sum(
            1 for sample in train if cutoff is None or sample.correction_id > cutoff
        ),
        quarantined=quarantined,
    )


ImportOutcome = Literal["added", "updated", "unchanged"]


def add_labelled_sample(
    session: Session,
    *,
    audio: AudioRef,
    text: str,
    source_ref: str | None = None,
    speaker: str | None = None,
    now: datetime | None = None,
) -> ImportOutcome:
    """Add (audio, text) as if a user had corrected it; sent by the system import user.

    The labelling policy applies to imports too: if a user sent the same audio first,
    their correction labels it, and a different imported text puts it in quarantine.
    Importing the same audio again only records a new correction if the text changed,
    so re-running an import is harmless. ``speaker`` names who speaks (the gate's
    clusters); importing again with another name updates it.
    """
    user = repository.import_user(session)
    existing = session.scalar(
        select(Transcription)
        .where(
            Transcription.source_kind == SOURCE_IMPORT,
            Transcription.audio_sha256 == audio.sha256,
        )
        .order_by(Transcription.id)
        .limit(1)
    )
    if existing is not None:
        latest = repository.latest_correction(session, existing.id)
        renamed = speaker is not None and existing.speaker != speaker
        if renamed:
            existing.speaker = speaker
        if latest is not None and latest.text == text.strip():
            return "updated" if renamed else "unchanged"
        repository.add_correction(
            session, transcription_id=existing.id, user_id=user.id, text=text, now=now
        )
        return "updated"
    transcription = repository.add_transcription(
        session,
        source_kind=SOURCE_IMPORT,
        text=text.strip(),
        user_id=user.id,
        source_ref=source_ref,
        audio=audio,
        now=now,
    )
    transcription.speaker = speaker
    repository.add_correction(
        session, transcription_id=transcription.id, user_id=user.id, text=text, now=now
    )
    return "added"
