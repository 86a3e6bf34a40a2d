"""Short clips decoded together: one CTranslate2 ``encode`` + ``generate`` for a whole batch.

A voice note that fits in one 30 s window needs none of faster-whisper's long-form
machinery (seeking, timestamp tokens, segment splitting, word alignment). Its features are
computed exactly as ``WhisperModel.transcribe`` computes them for its first window (log-mel
of the clip, zero-padded to 3000 frames), so a clip decoded here reads like the same clip
decoded alone; then the whole batch goes through the encoder and the decoder in one call
with the prompt ``<|startoftranscript|><|it|><|transcribe|><|notimestamps|>``, the
caller's beam size, a bounded length and faster-whisper's suppressed tokens. On 2 CPU cores
this is ~2x faster than ``transcribe`` one clip at a time at the same WER (NOTES §2,
``benchmarks/results/serving.md``); on a GPU the gain is larger.

Quality guards are faster-whisper's, per clip: a window the model calls silence (high
no-speech probability and low log-probability) yields no text, and a clip whose greedy/beam
result looks like a loop or is very unsure (compression ratio or log-probability past
faster-whisper's thresholds) is decoded again alone by the sequential path, which has the
temperature fallback. One clip never fails its batch-mates: clips are validated one by one
before batching, clips longer than one window are decoded alone, and if the batched call
itself raises, every clip is decoded alone so that only the culprit gets the error.

Results come back in input order, one per clip: a ``Transcription`` or the exception that
clip raised (as ``asyncio.gather(..., return_exceptions=True)`` does).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from model.audio import SAMPLE_RATE
from model.engines import (
    LOGPROB_THRESHOLD,
    N_FRAMES,
    WINDOW_SECONDS,
    Segment,
    TranscribeOptions,
    Transcriber,
    Transcription,
)

if TYPE_CHECKING:
    from model.engines import CT2Transcriber

log = logging.getLogger(__name__)

# Clips up to this long go through the short batched path; the rest through
# ``transcribe`` (and its long-audio fast path past ``engines.LONG_AUDIO_SECONDS``).
# One window is the hard limit. Measured in benchmarks/results/serving.md ("single note by
# duration"): up to 30 s the short path is the fastest at a WER no worse than the others.
SHORT_CLIP_SECONDS = float(WINDOW_SECONDS)
# faster-whisper's defaults for deciding that a window is silence or needs a re-decode.
NO_SPEECH_THRESHOLD = 0.6
COMPRESSION_RATIO_THRESHOLD = 2.4
# faster-whisper's: the first timestamp may not come later than 1 s (unused without
# timestamps, but ``generate`` wants a value).
MAX_INITIAL_TIMESTAMP_INDEX = 50

BatchResult = Transcription | Exception


class InvalidClip(ValueError):
    """A clip that cannot be decoded at all (empty, not 1-D, not finite)."""


def validate_clip(samples: object) -> np.ndarray:
    """``samples`` as a contiguous float32 1-D array, or ``InvalidClip``."""
    if not isinstance(samples, np.ndarray):
        raise InvalidClip(f"expected a numpy array, got {type(samples).__name__}")
    if samples.ndim != 1:
        raise InvalidClip(f"expected mono samples (1-D), got shape {samples.shape}")
    if samples.size == 0:
        raise InvalidClip("the clip is empty")
    if not np.issubdtype(samples.dtype, np.floating):
        raise InvalidClip(f"expected float samples, got {samples.dtype}")
    clip = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(clip).all():
        raise InvalidClip("the clip holds NaN or infinite samples")
    return clip


def fits_short_batch(duration: float) -> bool:
    """Whether a clip this long (seconds) goes through the short batched path."""
    return 0 < duration <= SHORT_CLIP_SECONDS


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class _Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float

    @property
    def silent(self) -> bool:
        return self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob < LOGPROB_THRESHOLD

    @property
    def kept_text(self) -> str:
        # faster-whisper skips a window it calls silence: what it "heard" there is made up.
        return "" if self.silent else self.text

    @property
    def needs_fallback(self) -> bool:
        # faster-whisper's rule: too repetitive, or too unsure unless it is silence.
        if compression_ratio(self.text) > COMPRESSION_RATIO_THRESHOLD:
            return True
        return self.avg_logprob < LOGPROB_THRESHOLD and not self.silent


class ShortClipDecoder:
    """The batched short-clip path of a ``CT2Transcriber`` (see the module docstring)."""

    def __init__(self, transcriber: CT2Transcriber) -> None:
        self.transcriber = transcriber
        self._whisper: Any = transcriber._model  # faster_whisper.WhisperModel
        self._tokenizers: dict[tuple[str, str], Any] = {}
        # Clips re-decoded alone so far (quality fallback, long clip, failed batch): a
        # diagnostic that benchmarks and tests read; batches may run in several threads.
        self.fallbacks = 0
        self._count_lock = threading.Lock()

    # --- public ---------------------------------------------------------------------------

    def transcribe_batch(
        self, clips: Sequence[np.ndarray], *, options: TranscribeOptions
    ) -> list[BatchResult]:
        results: dict[int, BatchResult] = {}
        batch: list[tuple[int, np.ndarray]] = []
        long: list[tuple[int, np.ndarray]] = []
        for index, samples in enumerate(clips):
            try:
                clip = validate_clip(samples)
            except InvalidClip as exc:
                results[index] = exc
                continue
            (batch if fits_short_batch(clip.size / SAMPLE_RATE) else long).append((index, clip))
        if batch:
            results.update(self._decode_batch(batch, options))
        # A long clip is no error: it takes the sequential or long-audio path, alone, after
        # the batch so that it never delays its batch-mates.
        for index, clip in long:
            results[index] = self._alone(clip, options)
        return [results[index] for index in range(len(clips))]

    def _decode_batch(
        self, batch: list[tuple[int, np.ndarray]], options: TranscribeOptions
    ) -> dict[int, BatchResult]:
        started = time.perf_counter()
        try:
            decoded = self._decode([clip for _, clip in batch], options)
        except Exception:
            if len(batch) == 1:
                index, clip = batch[0]
                return {index: self._alone(clip, options)}
            log.exception("batched decoding of %d clips failed: decoding alone", len(batch))
            return {index: self._alone_batched(clip, options) for index, clip in batch}
        elapsed = time.perf_counter() - started
        results: dict[int, BatchResult] = {}
        for (index, clip), item in zip(batch, decoded, strict=True):
            if item.needs_fallback:
                results[index] = self._alone(clip, options)
            else:
                results[index] = self._transcription(clip, item.kept_text, options, elapsed)
        return results

    # --- decoding -------------------------------------------------------------------------

    def _decode(self, clips: list[np.ndarray], options: TranscribeOptions) -> list[_Decoded]:
        from faster_whisper.audio import pad_or_trim

        whisper = self._whisper
        tokenizer = self._tokenizer(options)
        # As ``WhisperModel.transcribe`` for its first window: the log-mel of the clip (its
        # last frame is padding), zero-padded to 3000 frames.
        features = np.stack(
            [pad_or_trim(whisper.feature_extractor(clip)[:, :-1], N_FRAMES) for clip in clips]
        )
        prompt = whisper.get_prompt(tokenizer, [], without_timestamps=True)
        encoder_output = whisper.encode(features)
        results = whisper.model.generate(
            encoder_output,
            [prompt] * len(clips),
            beam_size=options.beam_size,
            patience=1.0,
            length_penalty=1.0,
            max_length=len(prompt) + options.max_new_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed(tokenizer),
            max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
        )
        decoded = []
        for result in results:
            tokens = result.sequences_ids[0]
            # faster-whisper's average log-probability from the length-normalised score.
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            text = tokenizer.decode(tokens).strip()
            decoded.append(_Decoded(text, avg_logprob, result.no_speech_prob))
        return decoded

    def _tokenizer(self, options: TranscribeOptions) -> Any:
        key = (options.language, options.task)
        if key not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer

            whisper = self._whisper
            self._tokenizers[key] = Tokenizer(
                whisper.hf_tokenizer,
                whisper.model.is_multilingual,
                task=options.task,
                language=options.language,
            )
        return self._tokenizers[key]

    @staticmethod
    def _suppressed(tokenizer: Any) -> list[int]:
        from faster_whisper.transcribe import get_suppressed_tokens

        # [-1]: faster-whisper's default, the non-speech symbols plus the special tokens.
        return list(get_suppressed_tokens(tokenizer, [-1]))

    def _transcription(
        self, clip: np.ndarray, text: str, options: TranscribeOptions, elapsed: float
    ) -> Transcription:
        duration = clip.size / SAMPLE_RATE
        # One segment spanning the clip: a voice note's reply needs no finer timing.
        segments = (Segment(0.0, duration, text),) if text else ()
        return Transcription(
            text=text,
            segments=segments,
            language=options.language,
            duration=duration,
            model=self.transcriber.model_name,
            engine=self.transcriber.engine,
            elapsed=elapsed,  # the whole batch's time: every clip waited for all of it
            options=options,
        )

    def _count_fallback(self) -> None:
        with self._count_lock:
            self.fallbacks += 1

    def _alone(self, clip: np.ndarray, options: TranscribeOptions) -> BatchResult:
        """The clip through the sequential path (temperature fallback, long audio)."""
        from model.engines import fast_path_options

        self._count_fallback()
        duration = clip.size / SAMPLE_RATE
        try:
            return self.transcriber.transcribe(
                clip, options=fast_path_options(options, duration=duration, batch_size=None)
            )
        except Exception as exc:
            return exc

    def _alone_batched(self, clip: np.ndarray, options: TranscribeOptions) -> BatchResult:
        """The clip as a batch of one (after its batch failed), else alone."""
        started = time.perf_counter()
        try:
            (item,) = self._decode([clip], options)
        except Exception:
            return self._alone(clip, options)
        if item.needs_fallback:
            return self._alone(clip, options)
        self._count_fallback()
        return self._transcription(clip, item.kept_text, options, time.perf_counter() - started)


def transcribe_one_by_one(
    transcriber: Transcriber, clips: Sequence[np.ndarray], *, options: TranscribeOptions
) -> list[BatchResult]:
    """The batch API for an engine without a batched path: each clip alone, errors per clip."""
    results: list[BatchResult] = []
    for samples in clips:
        try:
            clip = validate_clip(samples)
            results.append(transcriber.transcribe(clip, options=options))
        except Exception as exc:
            results.append(exc)
    return results
