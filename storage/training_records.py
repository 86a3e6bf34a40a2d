"""Training records: runs, model versions, evaluations and the WER history. Like every
repository function they add and flush, and never commit: the caller's unit of work does.

Times default to now (UTC); tests pass ``now=`` to control them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from storage.errors import InvalidStateError, InvalidValueError, require
from storage.models import Evaluation, ModelVersion, RunStatus, TrainingRun, utcnow

OPEN_RUN_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING)
FINISHED_RUN_STATUSES = frozenset(RunStatus) - set(OPEN_RUN_STATUSES)


# --- training runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """What a training run says about itself, kept in ``training_runs.metrics``: its phase,
    how often it was started, the model it started from and the version it would replace,
    the latest training loss, and (once finished) its report, the JSON form of
    ``training.report.RunReport``. Writers change it through the functions below only."""

    phase: str | None = None
    attempts: int = 1
    start_model: str | None = None
    replaces: str | None = None
    loss: float | None = None
    report: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def run_state(run: TrainingRun) -> RunState:
    return RunState.from_json(run.metrics)


def _change_state(run: TrainingRun, changes: dict[str, Any]) -> None:
    given = {k: v for k, v in changes.items() if v is not None}
    if given:
        # Reassigned, not mutated: JSON columns only notice assignment.
        run.metrics = replace(run_state(run), **given).to_json()


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
        status=RunStatus.PENDING,
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


def restart_training_run(session: Session, run_id: int) -> RunState:
    """Count one more start of a run (a resume after its trainer stopped)."""
    run = require(session.get(TrainingRun, run_id), "training run", run_id)
    state = run_state(run)
    run.metrics = replace(state, attempts=state.attempts + 1).to_json()
    session.flush()
    return run_state(run)


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
    run = require(session.get(TrainingRun, run_id), "training run", run_id)
    if run.status in FINISHED_RUN_STATUSES:
        raise InvalidStateError(f"training run {run_id} is already {run.status}")
    now = now or utcnow()
    run.status = RunStatus.RUNNING
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
    phase: str | None = None,
    loss: float | None = None,
    start_model: str | None = None,
    replaces: str | None = None,
    now: datetime | None = None,
) -> TrainingRun:
    run = require(session.get(TrainingRun, run_id), "training run", run_id)
    run.steps_done = steps_done
    if steps_total is not None:
        run.steps_total = steps_total
    if run.steps_total:
        run.progress = min(1.0, steps_done / run.steps_total)
    _change_state(
        run, {"phase": phase, "loss": loss, "start_model": start_model, "replaces": replaces}
    )
    run.updated_at = now or utcnow()
    session.flush()
    return run


def finish_training_run(
    session: Session,
    run_id: int,
    *,
    status: str,
    phase: str | None = None,
    report: dict[str, Any] | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> TrainingRun:
    if status not in FINISHED_RUN_STATUSES:
        raise InvalidValueError(f"{status!r} is not a final training run status")
    run = require(session.get(TrainingRun, run_id), "training run", run_id)
    now = now or utcnow()
    run.status = status
    run.error = error
    _change_state(run, {"phase": phase, "report": report})
    if status == RunStatus.DONE:
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
        .values(status=RunStatus.FAILED, error=error, finished_at=now, updated_at=now)
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
    version = require(session.get(ModelVersion, version_id), "model version", version_id)
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
    require(session.get(ModelVersion, model_version_id), "model version", model_version_id)
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


def delete_run_evaluations(session: Session, training_run_id: int) -> int:
    """Delete the evaluations a training run recorded; returns how many."""
    result = session.execute(
        delete(Evaluation).where(Evaluation.training_run_id == training_run_id)
    )
    return int(result.rowcount or 0)


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
