"""Services the handlers and the CLI call. No ``telegram`` import here.

Everything in this module is synchronous and CPU-bound: the bot runs it in worker
threads, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model.audio import AudioLimits, AudioSource, DecodedAudio, decode_audio
from model.engines import Progress, TranscribeOptions, Transcriber, Transcription

log = logging.getLogger(__name__)


class ModelHolder:
    """The transcriber in use. Loaded lazily; swapped atomically between jobs."""

    def __init__(self, loader: Callable[[], Transcriber]) -> None:
        self._loader = loader
        self._current: Transcriber | None = None
        self._lock = threading.Lock()

    def get(self) -> Transcriber:
        with self._lock:
            if self._current is None:
                self._current = self._loader()
                log.info("model loaded: %s (%s)", self._current.model_name, self._current.engine)
            return self._current

    def swap(self, transcriber: Transcriber) -> None:
        with self._lock:
            self._current = transcriber
        log.info("model swapped: %s", transcriber.model_name)


@dataclass(frozen=True)
class TranscriptResult:
    transcription: Transcription
    hashtags: tuple[str, ...]
    audio: DecodedAudio


class TranscriptionService:
    def __init__(
        self,
        *,
        models: ModelHolder,
        limits: AudioLimits,
        options: TranscribeOptions,
        tagger: object | None = None,
        max_hashtags: int = 5,
    ) -> None:
        self.models = models
        self.limits = limits
        self.options = options
        self.tagger = tagger
        self.max_hashtags = max_hashtags

    def decode(self, source: AudioSource | Path) -> DecodedAudio:
        return decode_audio(source, limits=self.limits)

    def transcribe(
        self,
        audio: DecodedAudio,
        *,
        progress: Progress | None = None,
        options: TranscribeOptions | None = None,
    ) -> Transcription:
        return self.models.get().transcribe(
            audio.samples, options=options or self.options, progress=progress
        )

    def hashtags(self, text: str) -> tuple[str, ...]:
        if self.tagger is None or not text.strip():
            return ()
        from model.tags import format_hashtags

        try:
            raw = self.tagger.tags(text)  # type: ignore[attr-defined]
        except Exception:  # tags are a garnish: never lose a transcript over them
            log.exception("tagging failed")
            return ()
        return tuple(format_hashtags(raw, max_tags=self.max_hashtags))

    def run(
        self, source: AudioSource | Path, *, progress: Progress | None = None
    ) -> TranscriptResult:
        audio = self.decode(source)
        transcription = self.transcribe(audio, progress=progress)
        return TranscriptResult(transcription, self.hashtags(transcription.text), audio)
