"""The one decision of how a clip is decoded, by its length and what the caller needs.

Three mechanisms, named for what they batch:

- ``SHORT_CLIPS``: a clip that fits one 30 s window, text only; several such clips (voice
  notes from different users) go through CTranslate2 in one call (``model.asr.short_clips``).
- ``SEQUENTIAL``: faster-whisper's long-form loop, one window after another, with
  timestamps (subtitles).
- ``CHUNKED``: faster-whisper's ``BatchedInferencePipeline``: the voice-activity chunks of
  *one* long audio decoded together (``TranscribeOptions.chunk_batch``).

Every caller (the bot's pipeline and workers, ``whisper-it transcribe``, evaluation and the
training gate, the benchmarks) asks ``choose_route``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from model.asr.transcription import WINDOW_SECONDS, TranscribeOptions

# Up to one window a clip can take the short-clip path; it is also the hard limit there.
# Measured in benchmarks/results/serving.md ("A single note by duration"): from 5 to 30 s a
# note alone took 1.04-1.15x less time than plain faster-whisper on this path, same WER.
SHORT_CLIP_SECONDS = float(WINDOW_SECONDS)
# Audio longer than this goes through faster-whisper's batched pipeline (VAD chunks decoded
# together), the fast path for long audio; up to it, a clip is one window (the bot sends
# voice notes that fit one through model.asr.short_clips's short path). Measured by duration in
# benchmarks/results/serving.md ("A single note by duration", 2026-11-30): past one window
# the fast path beat plain faster-whisper by 1.16x at 45 s and 1.56x at 60 and 90 s (wall
# and CPU time alike), WER within a few words (41% vs 37% at 45 s, 36% vs 36% and 40% vs
# 42% at 60/90 s), and it has no temperature-fallback spiral (a 45 s note once took 13.7 s
# at WER 66% sequentially, 3.1 s at 22% on the fast path: issue 12). 60 s was a guess.
LONG_AUDIO_SECONDS = float(WINDOW_SECONDS)
# VAD chunks decoded together on the chunked path.
DEFAULT_CHUNK_BATCH = 8


class DecodePath(StrEnum):
    SHORT_CLIPS = "short_clips"
    SEQUENTIAL = "sequential"
    CHUNKED = "chunked"


@dataclass(frozen=True)
class Route:
    path: DecodePath
    # The options to decode with: ``chunk_batch`` > 0 exactly on the chunked path.
    options: TranscribeOptions


def fits_short_clip(duration: float) -> bool:
    """Whether a clip this long (seconds) may take the short-clip path."""
    return duration <= SHORT_CLIP_SECONDS


def choose_route(
    duration: float,
    options: TranscribeOptions,
    *,
    short_clips: bool = True,
    chunk_batch: int | None = None,
    skip_silence: bool = False,
) -> Route:
    """How to decode a clip of ``duration`` seconds.

    ``short_clips``: whether the caller can use the text-only short path (links want
    subtitle timings; evaluation decodes as ``transcribe`` does). ``chunk_batch``: None
    lets the length decide (chunked past ``LONG_AUDIO_SECONDS``), 0 forces sequential
    decoding, a positive number the chunked path with that many chunks at once.
    """
    if chunk_batch is None:
        if short_clips and fits_short_clip(duration):
            return Route(DecodePath.SHORT_CLIPS, replace(options, chunk_batch=0))
        if duration <= LONG_AUDIO_SECONDS:
            vad = skip_silence or options.vad_filter
            return Route(DecodePath.SEQUENTIAL, replace(options, chunk_batch=0, vad_filter=vad))
        chunk_batch = DEFAULT_CHUNK_BATCH
    if chunk_batch <= 0:
        return Route(DecodePath.SEQUENTIAL, replace(options, chunk_batch=0))
    return Route(DecodePath.CHUNKED, replace(options, chunk_batch=chunk_batch))
