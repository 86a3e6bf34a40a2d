"""What the operations endpoints report: liveness, readiness with reasons, and the queue
as the metrics read it. Liveness is instant (the event loop calls it); readiness and the
queue read the database: the HTTP server calls them from a worker thread."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from sqlalchemy import func, select, text

from bot.ops.metrics import QueueSnapshot, age_seconds
from storage.models import Job, JobStatus, RunStatus, TrainingRun
from storage.training_records import RunState
from storage.unit_of_work import Database

# Decisions counted in ``whisper_it_training_runs_total``.
DECISION_PROMOTED = "promoted"
DECISION_REFUSED = "refused"
DECISION_FAILED = "failed"


@dataclass(frozen=True)
class Probes:
    """What one process checks. ``model_loaded`` is None in a process without workers
    (a front never loads a model); ``updates_flowing`` is None where no updates arrive
    (a ``whisper-it worker``)."""

    db: Database
    workers_alive: Callable[[], bool]
    model_loaded: Callable[[], bool] | None = None
    updates_flowing: Callable[[], bool] | None = None


def liveness_problems(probes: Probes) -> list[str]:
    """Why the process is not alive (empty: alive). Answering at all proves the loop runs."""
    return [] if probes.workers_alive() else ["a worker task stopped"]


def readiness_problems(probes: Probes) -> list[str]:
    """Why the process should not get traffic yet (empty: ready)."""
    from alembic.migration import MigrationContext  # (imported at the first probe)

    reasons: list[str] = []
    try:
        with probes.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:
        reasons.append(f"database unreachable: {type(exc).__name__}")
    else:
        expected = _schema_head()
        if current != expected:
            reasons.append(f"database schema at {current}, this version needs {expected}")
    if probes.model_loaded is not None and not probes.model_loaded():
        reasons.append("model not loaded")
    if probes.updates_flowing is not None and not probes.updates_flowing():
        reasons.append(
            "not receiving Telegram updates (polling stopped, silent or in conflict, "
            "or webhook not running)"
        )
    return reasons + liveness_problems(probes)


@cache
def _schema_head() -> str:
    from storage import migrations

    return migrations.head()


def queue_snapshot(db: Database) -> QueueSnapshot:
    """The shared queue now, and finished training runs by decision."""
    with db.unit_of_work(read_only=True) as uow:
        session = uow.session
        depth, oldest = session.execute(
            select(func.count(), func.min(Job.created_at)).where(Job.status == JobStatus.PENDING)
        ).one()
        runs = session.execute(
            select(TrainingRun.status, TrainingRun.metrics).where(
                TrainingRun.status.in_((RunStatus.DONE, RunStatus.FAILED))
            )
        ).all()
    decisions = Counter(_decision(status, metrics) for status, metrics in runs)
    return QueueSnapshot(
        depth=int(depth or 0),
        oldest_age_seconds=age_seconds(oldest),
        training_runs=dict(decisions),
    )


def _decision(status: str, metrics: dict | None) -> str:
    report = RunState.from_json(metrics).report
    if status != RunStatus.DONE or not report:
        return DECISION_FAILED
    return DECISION_PROMOTED if report.get("promoted") else DECISION_REFUSED
