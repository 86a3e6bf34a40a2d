"""The bot's services, built once at start-up and reached from handlers via ``bot_data``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.corrections import CorrectionService
from bot.services import RateLimiter, TranscriptionService
from bot.settings import Settings
from bot.training_control import TrainingControl
from bot.wiring import build_transcription_service, download_limits
from bot.worker import JobRunner, WorkerOptions
from storage.audio_store import AudioStore
from storage.jobs import delete_finished_jobs
from storage.privacy import (
    DeletedCounts,
    delete_user_data,
    purge_uncorrected_audio,
    sweep_orphan_blobs,
)
from storage.unit_of_work import Database
from training.data import MAX_TRAIN_SECONDS

SERVICES_KEY = "services"


@dataclass
class Services:
    settings: Settings
    db: Database
    store: AudioStore
    transcription: TranscriptionService
    runner: JobRunner
    limiter: RateLimiter
    corrections: CorrectionService
    training: TrainingControl
    bot_username: str = ""

    def close(self) -> None:
        self.db.close()

    def forget_user(self, user_id: int) -> DeletedCounts:
        """Delete everything one user left: audio, transcripts, corrections, jobs."""
        with self.db.unit_of_work() as uow:
            counts = delete_user_data(uow.session, self.store, user_id)
            uow.commit()
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
        max_queued_jobs=settings.max_queued_jobs,
        max_pending_per_user=settings.max_pending_jobs_per_user,
        tag_budget_seconds=settings.tag_budget_seconds,
        max_message_chars=settings.max_message_chars,
        long_text_as_file_chars=settings.long_text_as_file_chars,
        max_audio_seconds=settings.max_audio_seconds,
        max_file_bytes=settings.max_file_bytes,
        work_dir=settings.data_dir / "tmp",
        link_limits=download_limits(settings),
    )


def build_services(settings: Settings) -> Services:
    db = Database.open(settings.resolved_database_url)  # runs the migrations
    store = AudioStore(settings.audio_dir)
    transcription = build_transcription_service(settings)
    runner = JobRunner(
        db=db,
        store=store,
        transcription=transcription,
        options=worker_options(settings),
        url_hosts=frozenset(settings.allowed_url_hosts),
    )
    return Services(
        settings=settings,
        db=db,
        store=store,
        transcription=transcription,
        runner=runner,
        limiter=RateLimiter(limit=settings.messages_per_minute),
        training=TrainingControl(settings, db),
        corrections=CorrectionService(
            db,
            max_chars=settings.max_correction_chars,
            training_max_seconds=MAX_TRAIN_SECONDS,
        ),
    )
