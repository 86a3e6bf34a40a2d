"""The bot's services, built once at start-up and reached from handlers via ``bot_data``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.corrections import CorrectionService
from bot.delivery import DeliveryOptions
from bot.model_holder import LoadFailure
from bot.pipeline import TranscriptionPipeline
from bot.rate_limit import RateLimiter
from bot.settings import Settings
from bot.training_control import TrainingControl
from bot.wiring import build_pipeline
from bot.work_queue import QueueLimits, WorkQueue
from bot.worker import JobRunner, WorkerOptions
from storage.audio_store import AudioStore
from storage.jobs import delete_finished_jobs
from storage.privacy import (
    DeletedCounts,
    delete_user_data,
    purge_uncorrected_audio,
    sweep_orphan_blobs,
    user_audio_hashes,
)
from storage.unit_of_work import Database
from training.data import MAX_TRAIN_SECONDS

SERVICES_KEY = "services"


@dataclass
class Services:
    settings: Settings
    db: Database
    store: AudioStore
    pipeline: TranscriptionPipeline
    queue: WorkQueue
    runner: JobRunner
    limiter: RateLimiter
    corrections: CorrectionService
    training: TrainingControl

    def close(self) -> None:
        self.db.close()

    def forget_user(self, user_id: int) -> DeletedCounts:
        """Delete everything one user left: audio, transcripts, corrections, jobs, their
        rows in unfinished training runs and the encoder cache; versions trained on their
        audio are never served again (``training.forgetting``)."""
        with self.db.unit_of_work() as uow:
            hashes = user_audio_hashes(uow.session, user_id)
            counts = delete_user_data(uow.session, self.store, user_id)
            uow.commit()
        self.training.forget_audio(hashes)
        return counts

    def purge_old_audio(self) -> int:
        """Retention: drop the audio of old transcriptions nobody corrected."""
        older_than = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
        with self.db.unit_of_work() as uow:
            purged = purge_uncorrected_audio(uow.session, self.store, older_than)
            delete_finished_jobs(uow.session, older_than=older_than)
            uow.commit()
        with self.db.unit_of_work(read_only=True) as uow:
            # Audio no row refers to: a job that finished after its user's /forget, a crash.
            sweep_orphan_blobs(uow.session, self.store)
        return purged


def worker_options(settings: Settings) -> WorkerOptions:
    return WorkerOptions(
        workers=settings.workers,
        tag_budget_seconds=settings.tag_budget_seconds,
        delivery=DeliveryOptions(
            max_message_chars=settings.max_message_chars,
            long_text_as_file_chars=settings.long_text_as_file_chars,
        ),
        batch_size=settings.batch_size,
        batch_wait_seconds=settings.batch_wait_ms / 1000,
        poll_seconds=settings.worker_poll_seconds,
    )


def build_services(
    settings: Settings, *, on_broken_model: Callable[[LoadFailure], None] | None = None
) -> Services:
    db = Database.open(settings.resolved_database_url)  # runs the migrations
    store = AudioStore(settings.audio_dir)
    pipeline = build_pipeline(settings, on_broken_model=on_broken_model)
    queue = WorkQueue(
        db,
        store,
        QueueLimits(
            max_queued_jobs=settings.max_queued_jobs,
            max_pending_per_user=settings.max_pending_jobs_per_user,
            lease_seconds=settings.lease_seconds,
        ),
    )
    return Services(
        settings=settings,
        db=db,
        store=store,
        pipeline=pipeline,
        queue=queue,
        runner=JobRunner(queue=queue, pipeline=pipeline, options=worker_options(settings)),
        limiter=RateLimiter(limit=settings.messages_per_minute),
        training=TrainingControl(settings, db),
        corrections=CorrectionService(
            db,
            max_chars=settings.max_correction_chars,
            training_max_seconds=MAX_TRAIN_SECONDS,
        ),
    )
