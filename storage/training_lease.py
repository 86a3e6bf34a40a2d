"""One training run at a time across every process and machine, by database lease.

The process that starts a run takes the run's lease; the trainer renews it while it works
(``training.heartbeat``). A run whose lease expired is not running anymore, whatever its
PID says (after a container restart a PID means nothing): the next start resumes it.
Starting is serialised by the database: SQLite's write transaction, or a PostgreSQL
advisory lock held until the transaction ends, so two fronts cannot both start a run.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage.models import TrainingRun, utcnow
from storage.unit_of_work import lock_until_end

# Long enough for the trainer to start (imports, opening the database) before its first
# renewal; renewed every quarter of it.
TRAINING_LEASE_SECONDS = 120.0
# An arbitrary constant naming the lock among the database's advisory locks.
TRAINING_LOCK_KEY = 0x57_49_54_52  # "WITR"


def lock_training(session: Session) -> None:
    """Serialise run starts until the transaction ends."""
    lock_until_end(session, TRAINING_LOCK_KEY)


def take_run_lease(
    session: Session,
    run: TrainingRun,
    *,
    owner: str,
    lease_seconds: float = TRAINING_LEASE_SECONDS,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    run.lease_owner = owner
    run.lease_expires_at = now + timedelta(seconds=lease_seconds)
    session.flush()


def lease_alive(run: TrainingRun, *, now: datetime | None = None) -> bool:
    """Whether a process still holds the run (renewed its lease in time)."""
    return run.lease_expires_at is not None and run.lease_expires_at > (now or utcnow())


def lease_owner(pid: int | None = None) -> str:
    """How a trainer is named in its run's lease: the starter names the process it
    spawned, and the trainer (that very process) names itself the same way."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def renew_run_lease(
    session: Session,
    run_id: int,
    *,
    owner: str,
    lease_seconds: float = TRAINING_LEASE_SECONDS,
    now: datetime | None = None,
) -> bool:
    """Extend the lease of an open run held by ``owner`` (the trainer's heartbeat); False
    if the run is closed or another trainer was started on it since."""
    from storage.training_records import OPEN_RUN_STATUSES

    now = now or utcnow()
    result = session.execute(
        update(TrainingRun)
        .where(
            TrainingRun.id == run_id,
            TrainingRun.status.in_(OPEN_RUN_STATUSES),
            TrainingRun.lease_owner == owner,
        )
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
