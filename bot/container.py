"""The bot's services, built once at start-up and reached from handlers via ``bot_data``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.corrections import CorrectionService
from bot.delivery import DeliveryOptions
from bot.health import queue_snapshot
from bot.identity import WorkerIdentity, claim_identity
from bot.metrics import Metrics
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

if TYPE_CHECKING:
    from bot.ops_http import OpsServer

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
    metrics: Metrics = field(default_factory=Metrics)
    ops: OpsServer | None = None  # running if WHISPER_IT_HTTP_PORT is set
    identity: WorkerIdentity | None = None  # the name of this process's job leases

    def close(self) -> None:
        self.db.close()
        if self.identity is not None:
            self.identity.release()

    def forget_user(self, user_id: int) -> DeletedCounts:
        """Delete everything one user left: audio, transcripts, corrections, jobs, and
        their rows in the manifests of training runs not yet finished."""
        from training.snapshot import scrub_run_manifests

        with self.db.unit_of_work() as uow:
            hashes = user_audio_hashes(uow.session, user_id)
            counts = delete_user_data(uow.session, self.store, user_id)
            uow.commit()
        scrub_run_manifests(self.training.runs_dir, hashes)
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
    settings: Settings,
    *,
    role: str = "bot",
    on_broken_model: Callable[[LoadFailure], None] | None = None,
) -> Services:
    """``role`` (bot, worker) is part of the default name of this process's leases."""
    db = Database.open(settings.resolved_database_url)  # runs the migrations
    identity = claim_identity(settings.data_dir, role, settings.worker_id)
    store = AudioStore(settings.audio_dir)
    # A front without workers never transcribes: no tagger (nor torch) to load.
    pipeline = build_pipeline(
        settings, with_tags=settings.workers > 0, on_broken_model=on_broken_model
    )
    metrics = Metrics()
    metrics.read_database_with(lambda: queue_snapshot(db))
    queue = WorkQueue(
        db,
        store,
        QueueLimits(
            max_queued_jobs=settings.max_queued_jobs,
            max_pending_per_user=settings.max_pending_jobs_per_user,
            lease_seconds=settings.lease_seconds,
        ),
        owner=identity.name,
    )
    return Services(
        settings=settings,
        db=db,
        store=store,
        pipeline=pipeline,
        queue=queue,
        runner=JobRunner(
            queue=queue, pipeline=pipeline, options=worker_options(settings), metrics=metrics
        ),
        limiter=RateLimiter(limit=settings.messages_per_minute),
        training=TrainingControl(settings, db),
        corrections=CorrectionService(
            db,
            max_chars=settings.max_correction_chars,
            training_max_seconds=MAX_TRAIN_SECONDS,
        ),
        metrics=metrics,
        identity=identity,
    )
