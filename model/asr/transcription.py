"""What every speech recogniser takes and gives: options, segments, transcriptions, the
``Transcriber`` protocol, and Whisper's fixed sizes. No engine is imported here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

EngineName = Literal["ct2", "transformers"]
ENGINES: tuple[EngineName, ...] = ("ct2", "transformers")
# Whisper decodes 30 s windows; 224 tokens is half the decoder's context and far more
# than 30 s of speech needs, so hitting it means a loop.
MAX_NEW_TOKENS = 224
# Long-form decoding falls back to sampling when a window looks like a loop, as
# faster-whisper does by default. transformers measures compression on tokens, where
# 1.35 corresponds to the 2.4 that openai/whisper applies to text.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
TOKEN_COMPRESSION_RATIO_THRESHOLD = 1.35
LOGPROB_THRESHOLD = -1.0
# Fallback samples; a fixed seed keeps the reference engine's output reproducible.
SAMPLING_SEED = 0
WINDOW_SECONDS = 30
N_FRAMES = 3000  # log-mel frames in one 30 s window

Progress = Callable[[float], None]


@dataclass(frozen=True, kw_only=True)
class TranscribeOptions:
    language: str = "it"
    task: Literal["transcribe", "translate"] = "transcribe"
    beam_size: int = 5
    max_new_tokens: int = MAX_NEW_TOKENS
    # Conditioning on the previous window's text propagates loops and errors.
    condition_on_previous_text: bool = False
    # > 0: faster-whisper's BatchedInferencePipeline, this many VAD chunks of one long
    # audio decoded together (``DecodePath.CHUNKED``); 0: sequential long-form decoding.
    # Not the number of voice notes per model call (``WHISPER_IT_BATCH_SIZE``).
    chunk_batch: int = 0
    # Sequential decoding only: skip what Silero VAD hears as non-speech (the chunked path
    # always does). Measured in benchmarks/results/vad_notes.md.
    vad_filter: bool = False
    # Words to bias decoding towards (a user's corrected words, ``model.asr.hotwords``):
    # faster-whisper's ``hotwords``, a previous-text prompt (<|startofprev|> words) before
    # every window, on every path (its ``transcribe``, ``BatchedInferencePipeline``, our
    # short clips). faster-whisper ignores them when a ``prefix`` is given and puts an
    # ``initial_prompt``/previous text after them; this project uses neither. None: none.
    # Only the CTranslate2 engine takes them; the transformers engine (the reference, not
    # the server) decodes without them and records ``hotwords=None``.
    hotwords: str | None = None


# The default options, one shared frozen value (usable as a parameter default).
DEFAULT_OPTIONS = TranscribeOptions()


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcription:
    text: str
    segments: tuple[Segment, ...]
    language: str
    duration: float
    model: str
    engine: EngineName
    elapsed: float
    options: TranscribeOptions = field(default_factory=TranscribeOptions)

    def as_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "segments": [
                {"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text}
                for s in self.segments
            ],
            "duration": round(self.duration, 3),
            "language": self.language,
            "model": self.model,
            "engine": self.engine,
            "elapsed": round(self.elapsed, 3),
        }


class Transcriber(Protocol):
    model_name: str
    engine: EngineName

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        options: TranscribeOptions = ...,
        progress: Progress | None = None,
    ) -> Transcription: ...

    def transcribe_batch(
        self, clips: Sequence[np.ndarray], *, options: TranscribeOptions = ...
    ) -> list[Transcription | Exception]:
        """One result per clip, in order: its transcription or the exception it raised
        (one bad clip never fails the others). See ``model.asr.short_clips``."""
        ...
