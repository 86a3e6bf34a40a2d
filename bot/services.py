"""Services the handlers and the CLI call. No ``telegram`` import here.

Everything in this module is synchronous and CPU-bound: the bot runs it in worker
threads, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from model.audio import AudioLimits, AudioSource, DecodedAudio, decode_audio
from model.engines import Progress, TranscribeOptions, Transcriber, Transcription

log = logging.getLogger(__name__)


class ModelHolder:
    """The transcriber in use: loaded lazily, swapped between jobs when the current model
    changes (after a promotion or a rollback). Jobs already running keep the model they
    started with."""

    def __init__(
        self, loader: Callable[[str], Transcriber], spec_provider: Callable[[], str]
    ) -> None:
        self._loader = loader
        self._spec_provider = spec_provider
        self._current: Transcriber | None = None
        self._spec: str | None = None
        self._lock = threading.Lock()

    @property
    def spec(self) -> str | None:
        return self._spec

    def get(self) -> Transcriber:
        with self._lock:
            if self._current is None:
                self._spec = self._spec_provider()
                self._current = self._loader(self._spec)
                log.info("model loaded: %s (%s)", self._current.model_name, self._current.engine)
            return self._current

    def refresh(self) -> bool:
        """Load the current model if it is not the one in use. True if it swapped."""
        spec = self._spec_provider()
        if self._current is not None and spec == self._spec:
            return False
        transcriber = self._loader(spec)  # slow: outside the lock, the old model serves
        with self._lock:
            self._current, self._spec = transcriber, spec
        log.info("model swapped: %s (%s)", transcriber.model_name, spec)
        return True


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

    def decode(self, source: AudioSource | Path, *, max_bytes: int | None = None) -> DecodedAudio:
        """Decode within the limits (``max_bytes`` raises the size cap, for downloads)."""
        limits = self.limits if max_bytes is None else replace(self.limits, max_bytes=max_bytes)
        return decode_audio(source, limits=limits)

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


class RateLimiter:
    """At most ``limit`` events per user in any ``window`` seconds (in memory: a restart
    forgives everyone, which is fine for flood control)."""

    def __init__(self, *, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, user_id: int, *, now: float | None = None) -> float:
        """Record an event; 0 if allowed, else the seconds to wait (the event is dropped)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.setdefault(user_id, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            return 0.0
