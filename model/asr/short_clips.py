"""Short clips decoded together: one CTranslate2 ``encode`` + ``generate`` for a whole batch.

A voice note that fits in one 30 s window needs none of faster-whisper's long-form
machinery (seeking, timestamp tokens, segment splitting, word alignment). Its features are
computed exactly as ``WhisperModel.transcribe`` computes them for its first window (log-mel
of the clip, zero-padded to 3000 frames), so a clip decoded here reads like the same clip
decoded alone; then the whole batch goes through the encoder and the decoder in one call
with the prompt ``<|startoftranscript|><|it|><|transcribe|><|notimestamps|>``, the
caller's beam size, a bounded length and faster-whisper's suppressed tokens. On 2 busy CPU
cores, 16 notes of 3-7 s took 1.6x less time than plain ``transcribe`` one by one, WER
39.1% vs 41.7% (``benchmarks/results/serving.md``); there, batches of 4-16 gained nothing
over batches of 1 (beam 5 repeats the encoder output per hypothesis and the CPU was
shared; NOTES §2 measured 2.0x vs 1.55x on a quieter machine). On a GPU batching pays.

Quality guards are faster-whisper's, per clip: a window the model calls silence (high
no-speech probability and low log-probability) yields no text, and a clip whose beam
result loops (compression ratio over 2.4) is sampled again at rising temperatures, as
``WhisperModel.transcribe`` does, each clip alone with samples seeded by its own
content (``model.asr.seeded_sampling``), so its words never depend on its batch-mates or
the load. Unlike ``transcribe``, a merely unsure result (average log-probability under -1)
is kept: resampling it cost five decodes and changed nothing on the benchmark's notes
(see ``_Decoded.needs_fallback``). One clip never fails its
batch-mates: clips are validated one by one before batching, clips longer than one window
are decoded alone after the batch, and if the batched call itself raises, every clip is
decoded alone so that only the culprit gets the error.

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

from model.asr.audio import SAMPLE_RATE
from model.asr.engines import (
    FALLBACK_TEMPERATURES,
    LOGPROB_THRESHOLD,
    N_FRAMES,
    WINDOW_SECONDS,
    Segment,
    TranscribeOptions,
    Transcriber,
    Transcription,
)
from model.asr.seeded_sampling import clip_seed, sampling_scope

if TYPE_CHECKING:
    from model.asr.engines import CT2Transcriber

log = logging.getLogger(__name__)

# Clips up to this long go through the short batched path; the rest through
# ``transcribe`` (and its long-audio fast path past ``engines.LONG_AUDIO_SECONDS``).
# One window is the hard limit. Measured in benchmarks/results/serving.md ("A single note
# by duration"): from 5 to 30 s a note alone took 1.04-1.15x less time than plain
# faster-whisper on this path, at the same WER (one word apart at 20-30 s).
SHORT_CLIP_SECONDS = float(WINDOW_SECONDS)
# faster-whisper's defaults for deciding that a window is silence or needs a re-decode,
# and how many samples each fallback temperature draws.
NO_SPEECH_THRESHOLD = 0.6
COMPRESSION_RATIO_THRESHOLD = 2.4
FALLBACK_BEST_OF = 5
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
    def loops(self) -> bool:
        return compression_ratio(self.text) > COMPRESSION_RATIO_THRESHOLD

    @property
    def needs_fallback(self) -> bool:
        # Only a loop, the failure that ruins a transcript. faster-whisper also resamples a
        # merely unsure window (average log-probability under -1); on short notes that bought
        # nothing here: on the burst benchmark's notes, all five temperatures stayed under -1
        # and the beam result was kept anyway, at five times the cost (and the batch waited).
        return self.loops


class ShortClipDecoder:
    """The batched short-clip path of a ``CT2Transcriber`` (see the module docstring)."""

    def __init__(self, transcriber: CT2Transcriber) -> None:
        self.transcriber = transcriber
        self._whisper: Any = transcriber._model  # faster_whisper.WhisperModel
        self._tokenizers: dict[tuple[str, str], Any] = {}
        # Clip decodes beyond the first beam search so far (a fallback temperature, a long
        # clip, a failed batch): a diagnostic that benchmarks and tests read; batches may run
        # in several threads.
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
        return {
            index: self._transcription(clip, item.kept_text, options, elapsed)
            for (index, clip), item in zip(batch, decoded, strict=True)
        }

    # --- decoding -------------------------------------------------------------------------

    def _decode(self, clips: list[np.ndarray], options: TranscribeOptions) -> list[_Decoded]:
        """Beam search on the whole batch, then faster-whisper's temperature fallback on
        each clip that needs it (``_fallback``)."""
        from faster_whisper.audio import pad_or_trim

        whisper = self._whisper
        tokenizer = self._tokenizer(options)
        # As ``WhisperModel.transcribe`` for its first window: the log-mel of the clip (its
        # last frame is padding), zero-padded to 3000 frames.
        features = np.stack(
            [pad_or_trim(whisper.feature_extractor(clip)[:, :-1], N_FRAMES) for clip in clips]
        )
        decoded = self._generate(whisper.encode(features), len(clips), options, tokenizer, 0.0)
        for i, item in enumerate(decoded):
            if item.needs_fallback:
                decoded[i] = self._fallback(clips[i], features[i : i + 1], item, options, tokenizer)
        return decoded

    def _fallback(
        self,
        clip: np.ndarray,
        features: np.ndarray,
        first: _Decoded,
        options: TranscribeOptions,
        tokenizer: Any,
    ) -> _Decoded:
        """faster-whisper's temperature fallback for one clip whose beam result loops, its
        samples seeded by the clip itself (``model.asr.seeded_sampling``): the words never
        depend on its batch-mates, on earlier clips or on the load."""
        tried = [first]
        with sampling_scope(clip_seed(clip, options)):
            encoded = self._whisper.encode(features)
            for temperature in FALLBACK_TEMPERATURES[1:]:
                self._count_fallbacks(1)
                (item,) = self._generate(encoded, 1, options, tokenizer, temperature)
                if not item.needs_fallback:
                    return item
                tried.append(item)
        # Every temperature failed: as faster-whisper, the most likely of the attempts that
        # did not loop (or of all, if all looped).
        unlooped = [item for item in tried if not item.loops]
        return max(unlooped or tried, key=lambda item: item.avg_logprob)

    def _generate(
        self,
        encoded: Any,
        count: int,
        options: TranscribeOptions,
        tokenizer: Any,
        temperature: float,
    ) -> list[_Decoded]:
        whisper = self._whisper
        prompt = whisper.get_prompt(tokenizer, [], without_timestamps=True)
        if temperature > 0:  # faster-whisper's sampling settings for a fallback
            search: dict[str, Any] = {
                "beam_size": 1,
                "num_hypotheses": FALLBACK_BEST_OF,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
        else:
            search = {"beam_size": options.beam_size, "patience": 1.0}
        results = whisper.model.generate(
            encoded,
            [prompt] * count,
            length_penalty=1.0,
            max_length=len(prompt) + options.max_new_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed(tokenizer),
            max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
            **search,
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
        self._count_fallbacks(1)

    def _count_fallbacks(self, count: int) -> None:
        with self._count_lock:
            self.fallbacks += count

    def _alone(self, clip: np.ndarray, options: TranscribeOptions) -> BatchResult:
        """The clip through ``transcribe`` (long audio, or a batch that failed)."""
        from model.asr.engines import fast_path_options

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
