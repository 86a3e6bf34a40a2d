"""Training samples: stored audio paired with its latest corrected text.

The train/eval split is a pure function of the audio's hash, so adding samples never
moves an old one from one side to the other and held-out WER stays comparable across
training runs. Identical audio (deduplicated in the store) is one sample, whose text is
the newest correction of any of its transcriptions.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import repository
from storage.audio_store import AudioRef
from storage.models import RUN_DONE, SOURCE_IMPORT, Correction, TrainingRun, Transcription

Split = Literal["train", "eval"]
TRAIN: Split = "train"
EVAL: Split = "eval"
DEFAULT_EVAL_FRACTION = 0.1
# Salt so the split is independent of the hash prefix that shards the audio store.
_SPLIT_SALT = b"whisper-it/split/v1:"
_HASH_BITS = 64


def split_of(audio_sha: str, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Split:
    """``"eval"`` for about ``eval_fraction`` of all audio, chosen by hash, forever."""
    if not 0.0 <= eval_fraction <= 1.0:
        raise ValueError(f"eval_fraction must be within [0, 1], got {eval_fraction}")
    digest = hashlib.sha256(_SPLIT_SALT + audio_sha.encode()).digest()
    point = int.from_bytes(digest[: _HASH_BITS // 8], "big") / 2**_HASH_BITS
    return EVAL if point < eval_fraction else TRAIN


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


def list_samples(
    session: Session,
    split: Split | None = None,
    *,
    eval_fraction: float = DEFAULT_EVAL_FRACTION,
) -> list[Sample]:
    """Every sample (or one split's), oldest correction first."""
    latest = (
        select(func.max(Correction.id).label("correction_id"))
        .group_by(Correction.transcription_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Correction.id,
            Correction.text,
            Correction.user_id,
            Correction.created_at,
            Transcription.id,
            Transcription.audio_sha256,
            Transcription.audio_duration,
        )
        .join(latest, latest.c.correction_id == Correction.id)
        .join(Transcription, Transcription.id == Correction.transcription_id)
        .where(Transcription.audio_sha256.is_not(None))
        .order_by(Correction.id)
    )
    by_audio: dict[str, Sample] = {}
    for correction_id, text, user_id, created_at, transcription_id, sha, duration in rows:
        # Rows come in correction order, so a later correction of the same audio wins.
        by_audio[sha] = Sample(
            audio_sha256=sha,
            text=text,
            duration=duration or 0.0,
            split=split_of(sha, eval_fraction),
            transcription_id=transcription_id,
            correction_id=correction_id,
            user_id=user_id,
            corrected_at=created_at,
        )
    samples = sorted(by_audio.values(), key=lambda sample: sample.correction_id)
    return [sample for sample in samples if split is None or sample.split == split]


def last_trained_correction_id(session: Session) -> int | None:
    """The newest correction the last successful training run saw (None: never trained)."""
    return session.scalar(
        select(TrainingRun.max_correction_id)
        .where(TrainingRun.status == RUN_DONE)
        .order_by(TrainingRun.id.desc())
        .limit(1)
    )


def count_new_samples(session: Session, *, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> int:
    """Training samples added or re-corrected since the last successful training run."""
    cutoff = last_trained_correction_id(session)
    return sum(
        1
        for sample in list_samples(session, TRAIN, eval_fraction=eval_fraction)
        if cutoff is None or sample.correction_id > cutoff
    )


@dataclass(frozen=True)
class SampleStats:
    samples: int
    train: int
    eval: int
    audio_seconds: float
    train_seconds: float
    eval_seconds: float
    new_since_last_training_run: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_stats(session: Session, *, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> SampleStats:
    samples = list_samples(session, eval_fraction=eval_fraction)
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
    )


ImportOutcome = Literal["added", "updated", "unchanged"]


def add_labelled_sample(
    session: Session,
    *,
    audio: AudioRef,
    text: str,
    source_ref: str | None = None,
    now: datetime | None = None,
) -> ImportOutcome:
    """Add (audio, text) as if a user had corrected it; owned by the system import user.

    Importing the same audio again only records a new correction if the text changed,
    so re-running an import is harmless.
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
        if latest is not None and latest.text == text.strip():
            return "unchanged"
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
    repository.add_correction(
        session, transcription_id=transcription.id, user_id=user.id, text=text, now=now
    )
    return "added"
