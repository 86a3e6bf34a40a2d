"""A training run's progress, as the bot's /status and the CLI's ``train --wait`` read it."""

from __future__ import annotations

import time
from typing import Any

from storage import training_records
from training.heartbeat import LeaseHeartbeat
from training.trainer import TrainingProgress

# Progress rows are written at most this often (a step takes seconds on CPU anyway).
PROGRESS_EVERY_S = 2.0


class ProgressReporter:
    """Writes a run's progress to its row, at most every ``PROGRESS_EVERY_S`` (phase
    changes at once), and stops the run the moment its lease is lost."""

    def __init__(self, database: Any, run_id: int, heartbeat: LeaseHeartbeat) -> None:
        self.database = database
        self.run_id = run_id
        self.heartbeat = heartbeat
        self.last = 0.0

    def __call__(self, progress: TrainingProgress) -> None:
        self.heartbeat.check()  # each step: a trainer that lost its run stops at once
        now = time.monotonic()
        due = now - self.last >= PROGRESS_EVERY_S or progress.step >= progress.total
        if not due and progress.phase is None:
            return
        self.last = now
        self._write(progress)

    def phase(self, phase: str, step: int) -> None:
        self._write(TrainingProgress(step, 0, phase=phase), total_known=False)

    def _write(self, progress: TrainingProgress, *, total_known: bool = True) -> None:
        with self.database.unit_of_work() as uow:
            training_records.update_training_progress(
                uow.session,
                self.run_id,
                steps_done=progress.step,
                steps_total=progress.total if total_known else None,
                phase=progress.phase,
                loss=progress.loss,
            )
            uow.commit()
