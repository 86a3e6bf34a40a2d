"""The composition root: every service is built here, from ``Settings``, once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from bot.model_holder import LoadFailure, ModelHolder
from bot.pipeline import PipelineLimits, TranscriptionPipeline
from bot.settings import Settings
from model.asr.audio import AudioLimits
from model.asr.engines import EngineName, TranscribeOptions, Transcriber
from model.media.youtube import DownloadLimits
from model.tagging.tags import Tagger

log = logging.getLogger(__name__)


def audio_limits(settings: Settings) -> AudioLimits:
    return AudioLimits(
        max_seconds=settings.max_audio_seconds,
        min_seconds=settings.min_audio_seconds,
        max_bytes=settings.max_file_bytes,
    )


# A download may be larger than an uploaded file (Telegram caps those at 20 MB): allow up to
# 320 kbit/s over the longest accepted duration, still a bound on disk use.
DOWNLOAD_BYTES_PER_SECOND = 40_000


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
    except RegistryError:
        log.warning("models/CURRENT names a missing version: serving the base model")
        return settings.base_model
    if version is None:
        return settings.base_model
    return str(version.hf_dir if settings.engine == "transformers" else version.ct2_dir)


def registry_version_name(settings: Settings, spec: str) -> str | None:
    """The version name when ``spec`` is a folder of the model registry (else None)."""
    from model.asr.registry import ModelRegistry

    path = Path(spec).resolve()
    for version in ModelRegistry(settings.models_dir).versions():
        if path.is_relative_to(version.path.resolve()):
            return version.name
    return None


def model_loader(settings: Settings, *, engine: EngineName | None = None):
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
) -> TranscriptionPipeline:
    """The transcription pipeline; ``spec`` pins a model (else the registry's current one)."""
    return TranscriptionPipeline(
        models=ModelHolder(
            model_loader(settings, engine=engine),
            (lambda: spec) if spec else (lambda: current_model_spec(settings)),
            on_broken=on_broken_model,
        ),
        limits=PipelineLimits(audio=audio_limits(settings), download=download_limits(settings)),
        options=transcribe_options(settings),
        tagger=build_tagger(settings) if with_tags else None,
        max_hashtags=settings.max_hashtags,
        url_hosts=frozenset(settings.allowed_url_hosts),
        work_dir=settings.data_dir / "tmp",
    )
