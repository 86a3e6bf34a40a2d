"""Repository functions: users, transcriptions, corrections, training runs, model versions,
evaluations. They add and flush, and never commit: the caller's unit of work does.

Times default to now (UTC); tests pass ``now=`` to control them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.audio_store import AudioRef
from storage.errors import InvalidStateError, InvalidValueError, NotFoundError
from storage.models import (
    RUN_DONE,
    RUN_FAILED,
    RUN_PENDING,
    RUN_RUNNING,
    RUN_STATUSES,
    SOURCE_KINDS,
    TRANSCRIPTION_DONE,
    USER_SYSTEM,
    USER_TELEGRAM,
    Correction,
    Evaluation,
    ModelVersion,
    ReplyMessage,
    TrainingRun,
    Transcription,
    User,
    utcnow,
)

# System users have ids <= 0 (Telegram user ids are positive).
IMPORT_USER_ID = -1
IMPORT_USER_NAME = "import"
OPEN_RUN_STATUSES = (RUN_PENDING, RUN_RUNNING)
FINISHED_RUN_STATUSES = frozenset(RUN_STATUSES) - set(OPEN_RUN_STATUSES)


def _require(row: Any, what: str, key: object) -> Any:
    if row is None:
        raise NotFoundError(f"{what} {key} does not exist")
    return row


# --- users ------------------------------------------------------------------------------


def touch_user(
    session: Session,
    user_id: int,
    *,
    name: str | None = None,
    username: str | None = None,
    language: str | None = None,
    now: datetime | None = None,
) -> User:
    """Create or update a Telegram user and mark it seen now. Given fields overwrite."""
    if user_id <= 0:
        raise InvalidValueError(f"Telegram user ids are positive, got {user_id}")
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None:
        user = _insert_user(
            session,
            User(
                id=user_id,
                kind=USER_TELEGRAM,
                name=name,
                username=username,
                language=language,
                created_at=now,
                last_seen_at=now,
            ),
        )
    for field, value in (("name", name), ("username", username), ("language", language)):
        if value is not None:
            setattr(user, field, value)
    user.last_seen_at = now
    session.flush()
    return user


def _insert_user(session: Session, user: User) -> User:
    # Two bot instances can meet the same new user at once (PostgreSQL; SQLite serialises
    # writers): the loser of the race reads the winner's row.
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        return _require(session.get(User, user.id, populate_existing=True), "user", user.id)
    return user


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def import_user(session: Session) -> User:
    """The system user that owns corrections imported from the command line."""
    user = session.get(User, IMPORT_USER_ID)
    if user is None:
        user = _insert_user(
            session, User(id=IMPORT_USER_ID, kind=USER_SYSTEM, name=IMPORT_USER_NAME)
        )
    return user


# --- transcriptions ---------------------------------------------------------------------


def add_transcription(
    session: Session,
    *,
    source_kind: str,
    text: str = "",
    user_id: int | None = None,
    source_ref: str | None = None,
    chat_id: int | None = None,
    user_message_id: int | None = None,
    audio: AudioRef | None = None,
    model_version: str | None = None,
    language: str | None = None,
    segments: Sequence[Any] = (),
    tags: Sequence[str] = (),
    timings: dict[str, float] | None = None,
    status: str = TRANSCRIPTION_DONE,
    error: str | None = None,
    now: datetime | None = None,
) -> Transcription:
    if source_kind not in SOURCE_KINDS:
        raise InvalidValueError(f"unknown source kind {source_kind!r}")
    now = now or utcnow()
    transcription = Transcription(
        user_id=user_id,
        source_kind=source_kind,
        source_ref=source_ref,
        chat_id=chat_id,
        user_message_id=user_message_id,
        audio_sha256=audio.sha256 if audio else None,
        audio_duration=audio.duration if audio else None,
        model_version=model_version,
        language=language,
        text=text,
        segments=list(segments),
        tags=list(tags),
        timings=dict(timings or {}),
        status=status,
        error=error,
        created_at=now,
        updated_at=now,
    )
    session.add(transcription)
    session.flush()
    return transcription


def get_transcription(session: Session, transcription_id: int) -> Transcription | None:
    return session.get(Transcription, transcription_id)


def add_reply_messages(
    session: Session, transcription_id: int, *, chat_id: int, message_ids: Iterable[int]
) -> None:
    """Remember the bot messages that carry a transcription (replies to them correct it)."""
    _require(session.get(Transcription, transcription_id), "transcription", transcription_id)
    for message_id in message_ids:
        session.add(
            ReplyMessage(transcription_id=transcription_id, chat_id=chat_id, message_id=message_id)
        )
    session.flush()


def find_transcription_by_reply(
    session: Session, *, chat_id: int, message_id: int
) -> Transcription | None:
    """The transcription whose bot message ``message_id`` in ``chat_id`` a user replied to."""
    return session.scalar(
        select(Transcription)
        .join(ReplyMessage, ReplyMessage.transcription_id == Transcription.id)
        .where(ReplyMessage.chat_id == chat_id, ReplyMessage.message_id == message_id)
    )


# --- corrections ------------------------------------------------------------------------


def add_correction(
    session: Session,
    *,
    transcription_id: int,
    user_id: int,
    text: str,
    now: datetime | None = None,
) -> Correction:
    """Record a corrected text. Earlier corrections stay as history; the latest counts."""
    text = text.strip()
    if not text:
        raise InvalidValueError("a correction needs some text")
    _require(session.get(Transcription, transcription_id), "transcription", transcription_id)
    correction = Correction(
        transcription_id=transcription_id, user_id=user_id, text=text, created_at=now or utcnow()
    )
    session.add(correction)
    session.flush()
    return correction


def latest_correction(session: Session, transcription_id: int) -> Correction | None:
    return session.scalar(
        select(Correction)
        .where(Correction.transcription_id == transcription_id)
        .order_by(Correction.id.desc())
        .limit(1)
    )


def list_corrections(session: Session, transcription_id: int) -> list[Correction]:
    """Every correction of a transcription, oldest first."""
    return list(
        session.scalars(
            select(Correction)
            .where(Correction.transcription_id == transcription_id)
            .order_by(Correction.id)
        )
    )


# --- training runs ----------------------------------------------------------------------


def create_training_run(
    session: Session,
    *,
    config: dict[str, Any],
    base_model: str | None = None,
    output_dir: str | None = None,
    checkpoint_dir: str | None = None,
    now: datetime | None = None,
) -> TrainingRun:
    now = now or utcnow()
    run = TrainingRun(
        status=RUN_PENDING,
        config=dict(config),
        base_model=base_model,
        output_dir=output_dir,
        checkpoint_dir=checkpoint_dir,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    return run


def get_training_run(session: Session, run_id: int) -> TrainingRun | None:
    return session.get(TrainingRun, run_id)


def start_training_run(
    session: Session,
    run_id: int,
    *,
    samples_used: int,
    max_correction_id: int | None,
    steps_total: int | None = None,
    pid: int | None = None,
    now: datetime | None = None,
) -> TrainingRun:
    """Mark a run running, recording its data snapshot (the newest correction it saw)."""
    run = _require(session.get(TrainingRun, run_id), "training run", run_id)
    if run.status in FINISHED_RUN_STATUSES:
        raise InvalidStateError(f"training run {run_id} is already {run.status}")
    now = now or utcnow()
    run.status = RUN_RUNNING
    run.samples_used = samples_used
    run.max_correction_id = max_correction_id
    run.steps_total = steps_total
    run.pid = pid
    run.started_at = run.started_at or now
    run.updated_at = now
    session.flush()
    return run


def update_training_progress(
    session: Session,
    run_id: int,
    *,
    steps_done: int,
    steps_total: int | None = None,
    metrics: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> TrainingRun:
    run = _require(session.get(TrainingRun, run_id), "training run", run_id)
    run.steps_done = steps_done
    if steps_total is not None:
        run.steps_total = steps_total
    if run.steps_total:
        run.progress = min(1.0, steps_done / run.steps_total)
    if metrics:
        run.metrics = {**run.metrics, **metrics}  # reassign: JSON columns track assignment
    run.updated_at = now or utcnow()
    session.flush()
    return run


def finish_training_run(
    session: Session,
    run_id: int,
    *,
    status: str,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> TrainingRun:
    if status not in FINISHED_RUN_STATUSES:
        raise InvalidValueError(f"{status!r} is not a final training run status")
    run = _require(session.get(TrainingRun, run_id), "training run", run_id)
    now = now or utcnow()
    run.status = status
    run.error = error
    if metrics:
        run.metrics = {**run.metrics, **metrics}
    if status == RUN_DONE:
        run.progress = 1.0
    run.finished_at = now
    run.updated_at = now
    session.flush()
    return run


def active_training_run(session: Session) -> TrainingRun | None:
    """The pending or running training run, if any (the newest one)."""
    return session.scalar(
        select(TrainingRun)
        .where(TrainingRun.status.in_(OPEN_RUN_STATUSES))
        .order_by(TrainingRun.id.desc())
        .limit(1)
    )


def fail_open_training_runs(session: Session, *, error: str, now: datetime | None = None) -> int:
    """Mark runs left pending/running by a dead process as failed (call at start-up)."""
    now = now or utcnow()
    result = session.execute(
        update(TrainingRun)
        .where(TrainingRun.status.in_(OPEN_RUN_STATUSES))
        .values(status=RUN_FAILED, error=error, finished_at=now, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount


def latest_training_run(session: Session, *, status: str | None = None) -> TrainingRun | None:
    statement = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(1)
    if status is not None:
        statement = statement.where(TrainingRun.status == status)
    return session.scalar(statement)


def list_training_runs(session: Session, *, limit: int = 20) -> list[TrainingRun]:
    """The newest runs first."""
    return list(session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)))


# --- model versions ---------------------------------------------------------------------


def add_model_version(
    session: Session,
    *,
    name: str,
    hf_dir: str | None = None,
    ct2_dir: str | None = None,
    parent_id: int | None = None,
    training_run_id: int | None = None,
    metrics: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> ModelVersion:
    version = ModelVersion(
        name=name,
        hf_dir=hf_dir,
        ct2_dir=ct2_dir,
        parent_id=parent_id,
        training_run_id=training_run_id,
        metrics=dict(metrics or {}),
        created_at=now or utcnow(),
        is_active=False,
    )
    session.add(version)
    session.flush()
    return version


def get_model_version(session: Session, name: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.name == name))


def activate_model_version(
    session: Session, version_id: int, *, now: datetime | None = None
) -> ModelVersion:
    """Make one version the active one (promotion or rollback); all others go inactive."""
    version = _require(session.get(ModelVersion, version_id), "model version", version_id)
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.id != version_id, ModelVersion.is_active.is_(True))
        .values(is_active=False)
        .execution_options(synchronize_session="fetch")
    )
    version.is_active = True
    version.promoted_at = version.promoted_at or now or utcnow()
    session.flush()
    return version


def active_model_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)).limit(1))


def list_model_versions(session: Session) -> list[ModelVersion]:
    """Oldest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


# --- evaluations ------------------------------------------------------------------------


def add_evaluation(
    session: Session,
    *,
    model_version_id: int,
    eval_set: str,
    wer: float,
    count: int,
    cer: float | None = None,
    training_run_id: int | None = None,
    metrics: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Evaluation:
    _require(session.get(ModelVersion, model_version_id), "model version", model_version_id)
    evaluation = Evaluation(
        model_version_id=model_version_id,
        eval_set=eval_set,
        wer=wer,
        cer=cer,
        count=count,
        training_run_id=training_run_id,
        metrics=dict(metrics or {}),
        created_at=now or utcnow(),
    )
    session.add(evaluation)
    session.flush()
    return evaluation


@dataclass(frozen=True)
class WerPoint:
    """One row of the WER history (``/wer``)."""

    model_version: str
    eval_set: str
    wer: float
    cer: float | None
    count: int
    created_at: datetime
    is_active: bool


def wer_history(session: Session, *, eval_set: str | None = None) -> list[WerPoint]:
    """Every evaluation, oldest first, with its model version's name."""
    statement = (
        select(Evaluation, ModelVersion)
        .join(ModelVersion, ModelVersion.id == Evaluation.model_version_id)
        .order_by(Evaluation.created_at, Evaluation.id)
    )
    if eval_set is not None:
        statement = statement.where(Evaluation.eval_set == eval_set)
    return [
        WerPoint(
            model_version=version.name,
            eval_set=evaluation.eval_set,
            wer=evaluation.wer,
            cer=evaluation.cer,
            count=evaluation.count,
            created_at=evaluation.created_at,
            is_active=version.is_active,
        )
        for evaluation, version in session.execute(statement)
    ]


# --- overview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageCounts:
    """Totals for the admin ``/stats`` command."""

    users: int
    transcriptions: int
    corrections: int
    audio_seconds: float


def storage_counts(session: Session) -> StorageCounts:
    return StorageCounts(
        users=session.scalar(
            select(func.count()).select_from(User).where(User.kind == USER_TELEGRAM)
        )
        or 0,
        transcriptions=session.scalar(select(func.count()).select_from(Transcription)) or 0,
        corrections=session.scalar(select(func.count()).select_from(Correction)) or 0,
        audio_seconds=float(session.scalar(select(func.sum(Transcription.audio_duration))) or 0.0),
    )
