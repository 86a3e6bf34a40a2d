"""Services the handlers and the CLI call. No ``telegram`` import here.

Everything in this module is synchronous and CPU-bound: the bot runs it in worker
threads, never on the event loop.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from model.audio import AudioLimits, AudioSource, DecodedAudio, decode_audio
from model.engines import Progress, TranscribeOptions, Transcriber, Transcription
from storage.unit_of_work import Database

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


class CorrectionOutcome(enum.Enum):
    SAVED = "saved"
    SAVED_NOT_FOR_TRAINING = "saved_not_for_training"
    NOT_A_TRANSCRIPT = "not_a_transcript"
    NOT_OWNER = "not_owner"
    TOO_LONG = "too_long"
    EMPTY = "empty"
    UNCHANGED = "unchanged"


class CorrectionService:
    """A user's reply to a transcript message becomes a correction (the latest counts).

    Audio longer than ``training_max_seconds`` (Whisper's 30 s window) is not used for
    training, because its text cannot be aligned to one window without timestamps we
    trust; its corrections are kept, for the record and for evaluation.
    """

    def __init__(self, db: Database, *, max_chars: int, training_max_seconds: float) -> None:
        self.db = db
        self.max_chars = max_chars
        self.training_max_seconds = training_max_seconds

    def record(
        self, *, chat_id: int, replied_message_id: int, user_id: int, text: str, group: bool
    ) -> CorrectionOutcome:
        from model.normalize import normalize_text
        from storage import repository

        text = text.strip()
        if not text:
            return CorrectionOutcome.EMPTY
        if len(text) > self.max_chars:
            return CorrectionOutcome.TOO_LONG
        with self.db.unit_of_work() as uow:
            session = uow.session
            row = repository.find_transcription_by_reply(
                session, chat_id=chat_id, message_id=replied_message_id
            )
            if row is None:
                return CorrectionOutcome.NOT_A_TRANSCRIPT
            if group and row.user_id != user_id:
                return CorrectionOutcome.NOT_OWNER
            latest = repository.latest_correction(session, row.id)
            current = latest.text if latest else row.text
            if normalize_text(current) == normalize_text(text):
                return CorrectionOutcome.UNCHANGED
            repository.touch_user(session, user_id)
            repository.add_correction(session, transcription_id=row.id, user_id=user_id, text=text)
            uow.commit()
            too_long = (row.audio_duration or 0.0) > self.training_max_seconds
        return CorrectionOutcome.SAVED_NOT_FOR_TRAINING if too_long else CorrectionOutcome.SAVED
