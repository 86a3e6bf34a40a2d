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
batch-mates: if the batched call raises, every clip is decoded as a batch of one so that
only the culprit gets the error. Which clips come here is ``model.asr.routing``'s call;
``CT2Transcriber.transcribe_batch`` validates them, routes longer ones to faster-whisper
and retries a clip this decoder could not decode there.

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
from typing import Any

import numpy as np

from model.asr.audio import SAMPLE_RATE
from model.asr.routing import SHORT_CLIP_SECONDS
from model.asr.seeded_sampling import clip_seed, sampling_scope
from model.asr.transcription import (
    FALLBACK_TEMPERATURES,
    LOGPROB_THRESHOLD,
    N_FRAMES,
    EngineName,
    Segment,
    TranscribeOptions,
    Transcription,
)

log = logging.getLogger(__name__)

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
    """Clips that fit one window, decoded together (see the module docstring). It holds the
    faster-whisper model it decodes with and never calls back into an engine: clips it
    cannot decode come back as their exception, for the caller to route elsewhere."""

    def __init__(self, whisper: Any, *, model_name: str, engine: EngineName = "ct2") -> None:
        self._whisper = whisper  # faster_whisper.WhisperModel
        self.model_name = model_name
        self.engine: EngineName = engine
        self._tokenizers: dict[tuple[str, str], Any] = {}
        # Clip decodes beyond the first beam search so far (a fallback temperature, a long
        # clip, a failed batch): a diagnostic that benchmarks and tests read; batches may run
        # in several threads.
        self.fallbacks = 0
        self._count_lock = threading.Lock()

    # --- public ---------------------------------------------------------------------------

    def decode(
        self, clips: Sequence[np.ndarray], *, options: TranscribeOptions
    ) -> list[BatchResult]:
        """One result per clip, in order. Every clip must fit one window
        (``model.asr.routing.fits_short_clip``) and hold finite samples (``validate_clip``)."""
        if any(clip.size / SAMPLE_RATE > SHORT_CLIP_SECONDS for clip in clips):
            raise InvalidClip("a clip longer than one window cannot take the short-clip path")
        if not clips:
            return []
        started = time.perf_counter()
        try:
            decoded = self._decode(list(clips), options)
        except Exception as exc:
            if len(clips) == 1:
                return [exc]
            log.exception("batched decoding of %d clips failed: decoding alone", len(clips))
            return [self._alone(clip, options) for clip in clips]
        elapsed = time.perf_counter() - started
        return [
            self._transcription(clip, item.kept_text, options, elapsed)
            for clip, item in zip(clips, decoded, strict=True)
        ]

    def count_fallback(self) -> None:
        """A clip decoded again outside this decoder (by its engine, alone)."""
        self._count_fallbacks(1)

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
        # (hotwords: the user's words as previous text, exactly as ``transcribe`` puts them)
        prompt = whisper.get_prompt(
            tokenizer, [], without_timestamps=True, hotwords=options.hotwords
        )
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
        no_speech = [result.no_speech_prob for result in results]
        if options.hotwords:
            no_speech = self._unprompted_no_speech(encoded, count, tokenizer)
        decoded = []
        for result, no_speech_prob in zip(results, no_speech, strict=True):
            tokens = result.sequences_ids[0]
            # faster-whisper's average log-probability from the length-normalised score.
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            text = tokenizer.decode(tokens).strip()
            decoded.append(_Decoded(text, avg_logprob, no_speech_prob))
        return decoded

    def _unprompted_no_speech(self, encoded: Any, count: int, tokenizer: Any) -> list[float]:
        """The no-speech probability of each clip without the hotwords: a prompt of words
        talks the model out of hearing silence (on 5 s of silence or noise it fell from
        0.72-0.89 to 0.40-0.56, under the 0.6 threshold, and "un po'" came out where
        nothing did; ``benchmarks/results/personal_vocabulary.md``). One decoder step."""
        whisper = self._whisper
        prompt = whisper.get_prompt(tokenizer, [], without_timestamps=True)
        results = whisper.model.generate(
            encoded,
            [prompt] * count,
            beam_size=1,
            max_length=len(prompt) + 1,
            return_no_speech_prob=True,
        )
        return [result.no_speech_prob for result in results]

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
            model=self.model_name,
            engine=self.engine,
            elapsed=elapsed,  # the whole batch's time: every clip waited for all of it
            options=options,
        )

    def _count_fallbacks(self, count: int) -> None:
        with self._count_lock:
            self.fallbacks += count

    def _alone(self, clip: np.ndarray, options: TranscribeOptions) -> BatchResult:
        """The clip as a batch of one (after its batch failed), or the error it raises."""
        started = time.perf_counter()
        try:
            (item,) = self._decode([clip], options)
        except Exception as exc:
            return exc
        self._count_fallbacks(1)
        return self._transcription(clip, item.kept_text, options, time.perf_counter() - started)
