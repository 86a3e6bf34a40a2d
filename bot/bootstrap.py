"""The composition root: every service of a process, built once from ``Settings``.

``bootstrap(settings)`` is what ``whisper-it bot`` and ``whisper-it worker`` run; the CLI's
one-shot commands use the smaller builders below (a pipeline, a tagger, the model loader).
Every collaborator is passed in at construction: nothing is wired afterwards. Tests and
benchmarks change what they must through ``Seams`` (a stand-in model, a tagger), never by
patching the graph.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.admin_service import AdminService
from bot.albums import AlbumWatch
from bot.alerts import AdminAlerts
from bot.corrections import CorrectionService
from bot.delivery import DeliveryOptions
from bot.model_holder import LoadFailure, ModelHolder
from bot.ops.health import queue_snapshot
from bot.ops.http import OpsAddress, OpsServer, Probes
from bot.ops.identity import WorkerIdentity, claim_identity
from bot.ops.metrics import Metrics
from bot.pipeline import PipelineLimits, TranscriptionPipeline
from bot.rate_limit import RateLimiter
from bot.repeats import Repeats
from bot.settings import Settings
from bot.status_message import STATUS_EDIT_INTERVAL_SECONDS
from bot.training_control import TrainingControl
from bot.vocabulary import PersonalVocabulary
from bot.work_queue import QueueLimits, WorkQueue
from bot.worker import JobRunner, WorkerOptions
from model.asr.audio import AudioLimits
from model.asr.limits import SandboxLimits
from model.asr.sandbox import shared_pool
from model.asr.transcription import EngineName, TranscribeOptions, Transcriber
from model.media.youtube import DownloadLimits
from model.tagging.base import Tagger
from storage.audio_store import AudioStore
from storage.jobs import delete_finished_jobs
from storage.privacy import (
    DEFAULT_SWEEP_GRACE,
    DeletedCounts,
    delete_user_data,
    purge_uncorrected_audio,
    sweep_orphan_blobs,
    user_audio_hashes,
)
from storage.unit_of_work import Database
from training.data import MAX_TRAIN_SECONDS

log = logging.getLogger(__name__)


SERVICES_KEY = "services"
# A download may be larger than an uploaded file (Telegram caps those at 20 MB): allow up to
# 320 kbit/s over the longest accepted duration, still a bound on disk use.
DOWNLOAD_BYTES_PER_SECOND = 40_000


@dataclass(frozen=True, kw_only=True)
class Seams:
    """What a test or benchmark may replace; ``None`` keeps the production part."""

    # The model: a loader from spec to transcriber, and the spec to serve.
    load_model: Callable[[str], Transcriber] | None = None
    model_spec: Callable[[], str] | None = None
    # The tagger (``tagger_off`` turns tags off, whatever the settings say).
    tagger: Tagger | None = None
    tagger_off: bool = False
    status_edit_seconds: float | None = None


@dataclass
class Services:
    settings: Settings
    db: Database
    store: AudioStore
    alerts: AdminAlerts
    pipeline: TranscriptionPipeline
    queue: WorkQueue
    runner: JobRunner
    limiter: RateLimiter
    corrections: CorrectionService
    training: TrainingControl
    admin: AdminService
    metrics: Metrics = field(default_factory=Metrics)
    albums: AlbumWatch = field(default_factory=AlbumWatch)
    vocabulary: PersonalVocabulary | None = None  # None: built without it (tests)
    identity: WorkerIdentity | None = None  # the name of this process's job leases
    ops: OpsServer | None = None  # running while WHISPER_IT_HTTP_PORT is set

    def close(self) -> None:
        self.db.close()
        if self.identity is not None:
            self.identity.release()

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
        self.pipeline.remove_stale_downloads(DEFAULT_SWEEP_GRACE.total_seconds())
        return purged


def bootstrap(settings: Settings, *, role: str = "bot", seams: Seams = Seams()) -> Services:
    """Every service of a bot or worker process (opening the database runs migrations).
    ``role`` (bot, worker) is part of the default name of this process's job leases."""
    db = Database.open(settings.resolved_database_url)
    identity = claim_identity(settings.data_dir, role, settings.worker_id)
    store = AudioStore(settings.audio_dir)
    alerts = AdminAlerts(settings.admin_ids)
    # A front without workers never transcribes: no tagger (nor torch) to load.
    pipeline = build_pipeline(
        settings,
        with_tags=settings.workers > 0,
        on_broken_model=alerts.model_broken,
        seams=seams,
    )
    metrics = Metrics(read_database=lambda: queue_snapshot(db))
    vocabulary = PersonalVocabulary(
        db, enabled=settings.personal_vocabulary, max_words=settings.personal_vocabulary_size
    )
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
    runner = JobRunner(
        queue=queue,
        pipeline=pipeline,
        repeats=Repeats(db, store),
        options=worker_options(settings, seams),
        report_error=alerts.report,
        metrics=metrics,
    )
    return Services(
        settings=settings,
        db=db,
        store=store,
        alerts=alerts,
        pipeline=pipeline,
        queue=queue,
        runner=runner,
        limiter=RateLimiter(limit=settings.messages_per_minute),
        training=TrainingControl(settings, db),
        corrections=CorrectionService(
            db,
            max_chars=settings.max_correction_chars,
            training_max_seconds=MAX_TRAIN_SECONDS,
            vocabulary=vocabulary,
        ),
        vocabulary=vocabulary,
        admin=admin_service(settings, db),
        metrics=metrics,
        identity=identity,
    )


def admin_service(settings: Settings, db: Database) -> AdminService:
    return AdminService(db, policy=settings.split)


def worker_options(settings: Settings, seams: Seams = Seams()) -> WorkerOptions:
    edit_seconds = seams.status_edit_seconds
    return WorkerOptions(
        workers=settings.workers,
        tag_budget_seconds=settings.tag_budget_seconds,
        delivery=DeliveryOptions(
            status_edit_interval=(
                STATUS_EDIT_INTERVAL_SECONDS if edit_seconds is None else edit_seconds
            ),
            max_message_chars=settings.max_message_chars,
            long_text_as_file_chars=settings.long_text_as_file_chars,
            confirm_max_seconds=MAX_TRAIN_SECONDS if settings.confirm_button else 0.0,
        ),
        batch_size=settings.batch_size,
        batch_wait_seconds=settings.batch_wait_ms / 1000,
        poll_seconds=settings.worker_poll_seconds,
    )


# --- the pipeline and its parts (also used alone by the CLI) -------------------------------


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        enabled=settings.decode_sandbox,
        memory_bytes=settings.decode_memory_mb * 2**20,
        cpu_per_audio_second=settings.decode_seconds_per_audio_second,
        extra_seconds=settings.decode_extra_seconds,
        pool_size=settings.decode_pool_size,
    )


def audio_limits(settings: Settings) -> AudioLimits:
    return AudioLimits(
        max_seconds=settings.max_audio_seconds,
        min_seconds=settings.min_audio_seconds,
        max_bytes=settings.max_file_bytes,
        sandbox=sandbox_limits(settings),
    )


def download_limits(settings: Settings) -> DownloadLimits:
    return DownloadLimits(
        max_seconds=settings.max_audio_seconds,
        max_bytes=max(
            settings.max_file_bytes, int(settings.max_audio_seconds * DOWNLOAD_BYTES_PER_SECOND)
        ),
        timeout_seconds=settings.download_timeout_seconds,
        cookies_file=settings.ytdlp_cookies_file,
    )


def transcribe_options(settings: Settings) -> TranscribeOptions:
    return TranscribeOptions(language=settings.language, beam_size=settings.beam_size)


def current_model_spec(settings: Settings) -> str:
    """The model to serve: the registry's current version once training promoted one
    (its CTranslate2 folder, or its HF checkpoint for the transformers engine), else the
    base model. Cheap (reads one small file): call it before each job to notice swaps."""
    from model.asr.registry import ModelRegistry, RegistryError

    try:
        version = ModelRegistry(settings.models_dir).current()
    except RegistryError as exc:
        _warn_unservable(f"{settings.models_dir}: {exc}")
        return settings.base_model
    if version is None:
        return settings.base_model
    return str(version.hf_dir if settings.engine == "transformers" else version.ct2_dir)


@functools.cache
def _warn_unservable(reason: str) -> None:
    """Once per process and reason: the check runs before every job."""
    log.warning(
        "models/CURRENT cannot be served (%s): serving the base model; /rollback (or "
        "whisper-it rollback) sets the pointer to it",
        reason,
    )


def registry_version_name(settings: Settings, spec: str) -> str | None:
    """The version name when ``spec`` is a folder of the model registry (else None)."""
    from model.asr.registry import ModelRegistry

    path = Path(spec).resolve()
    for version in ModelRegistry(settings.models_dir).versions():
        if path.is_relative_to(version.path.resolve()):
            return version.name
    return None


def model_loader(
    settings: Settings, *, engine: EngineName | None = None
) -> Callable[[str], Transcriber]:
    from model.asr.sources import load_transcriber

    def load(spec: str) -> Transcriber:
        return load_transcriber(  # type: ignore[return-value]
            spec,
            model_name=registry_version_name(settings, spec),
            engine=engine or settings.engine,
            cache_dir=settings.cache_dir,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            local_files_only=settings.offline,
        )

    return load


def build_tagger(settings: Settings) -> Tagger | None:
    if settings.tagger == "off":
        return None
    from model.tagging.tags import load_tagger

    tagger = load_tagger(
        settings.tagger,
        model=settings.text2tags_model,
        max_tags=settings.max_hashtags,
        local_files_only=settings.offline,
    )
    log.info("tagger: %s", tagger.name)
    return tagger


def build_pipeline(
    settings: Settings,
    *,
    spec: str | None = None,
    engine: EngineName | None = None,
    with_tags: bool = True,
    on_broken_model: Callable[[LoadFailure], None] | None = None,
    seams: Seams = Seams(),
) -> TranscriptionPipeline:
    """The transcription pipeline; ``spec`` pins a model (else the registry's current one)."""

    def serving() -> str:
        return spec or current_model_spec(settings)

    tags = with_tags and not seams.tagger_off
    tagger = (seams.tagger or build_tagger(settings)) if tags else None
    limits = audio_limits(settings)
    if limits.sandbox.enabled:
        shared_pool(limits.sandbox).warm()  # starts the decoder processes, does not wait
    return TranscriptionPipeline(
        models=ModelHolder(
            seams.load_model or model_loader(settings, engine=engine),
            seams.model_spec or serving,
            on_broken=on_broken_model,
        ),
        limits=PipelineLimits(audio=limits, download=download_limits(settings)),
        options=transcribe_options(settings),
        tagger=tagger,
        max_hashtags=settings.max_hashtags,
        url_hosts=frozenset(settings.allowed_url_hosts),
        work_dir=settings.data_dir / "tmp",
    )


# --- the operations endpoints (WHISPER_IT_HTTP_PORT) --------------------------------------


async def start_ops_server(
    services: Services, *, updates_flowing: Callable[[], bool] | None = None
) -> OpsServer | None:
    """Start the endpoints if ``WHISPER_IT_HTTP_PORT`` is set (else None). Call it before
    the model loads: ``/readyz`` then says why the process is not ready yet."""
    settings = services.settings
    if settings.http_port is None:
        return None

    def model_loaded() -> bool:
        models = services.pipeline.models
        if not models.loaded:
            return False
        services.metrics.serving(models.get().model_name)
        return True

    probes = Probes(
        db=services.db,
        workers_alive=services.runner.alive,
        model_loaded=model_loaded if settings.workers > 0 else None,
        updates_flowing=updates_flowing,
    )
    server = OpsServer(
        OpsAddress(settings.http_listen, settings.http_port), services.metrics, probes
    )
    await server.start()
    return server
