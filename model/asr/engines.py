"""Speech in, text out: the ``Transcriber`` interface and its two engines.

- ``CT2Transcriber``: CTranslate2 through faster-whisper. The default and the serving
  path: int8 on CPU, float16 on CUDA, sequential long-form decoding, or batched
  (VAD-chunked) decoding for long audio.
- ``TransformersTranscriber``: the reference implementation and the GPU fp16/bf16 path,
  with transformers' sequential long-form generation.

Both force the language and the task and bound generation (the base model sometimes
loops to 448 tokens otherwise), and both return timestamped segments. Only the CT2 engine
takes ``TranscribeOptions.hotwords`` (on every path: short clips, sequential, chunked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.asr.audio import SAMPLE_RATE
from model.asr.routing import choose_route, fits_short_clip
from model.asr.seeded_sampling import ReplicaSpec, SeededWhisper, clip_seed, sampling_scope
from model.asr.short_clips import BatchResult, InvalidClip, ShortClipDecoder, validate_clip
from model.asr.transcription import (
    DEFAULT_OPTIONS,
    FALLBACK_TEMPERATURES,
    LOGPROB_THRESHOLD,
    SAMPLING_SEED,
    TOKEN_COMPRESSION_RATIO_THRESHOLD,
    WINDOW_SECONDS,
    EngineName,
    Progress,
    Segment,
    TranscribeOptions,
    Transcriber,
    Transcription,
)

# The batched pipeline cannot resume a chunk that hit the token cap (sequential decoding
# seeks on), and CTranslate2 stopped chunks at ~113 tokens under max_new_tokens=224: a dense
# 28 s chunk of Italian needs ~120, so whole sentences vanished (WER 0.29 -> 0.48 on 55 s of
# espeak speech). Batched decoding gets the decoder's full context instead.
BATCHED_MAX_NEW_TOKENS = 440
# Batched decoding with timestamp tokens still dropped chunk endings (21 deleted words on
# 2 min of speech against 8 without; same speed), so it decodes text only and takes times
# from word alignment, cutting cues at sentence ends or after this long.
MAX_CUE_SECONDS = 7.0
_SENTENCE_END = (".", "?", "!", "…")
# Hotwords go before every window as previous text. In tokens they are cut to this, so
# that with the special tokens around them (``_PROMPT_SPECIAL_TOKENS``) and the longest
# generation every path fits the decoder's 448 positions (faster-whisper raises otherwise;
# batched decoding gives up some of its ``BATCHED_MAX_NEW_TOKENS`` for them).
MAX_HOTWORD_TOKENS = 120
DECODER_POSITIONS = 448
_PROMPT_SPECIAL_TOKENS = 6  # startofprev, startoftranscript, language, task, notimestamps, +1


def _join(segments: list[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class CT2Transcriber:
    """faster-whisper on a CTranslate2 model folder."""

    engine: EngineName = "ct2"

    def __init__(
        self,
        model_dir: Path,
        *,
        model_name: str | None = None,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
    ) -> None:
        from faster_whisper import WhisperModel

        self.device = resolve_device(device)
        if compute_type == "auto":
            compute_type = "float16" if self.device == "cuda" else "int8"
        self.compute_type = compute_type
        self.model_name = model_name or Path(model_dir).name
        self._model = WhisperModel(
            str(model_dir), device=self.device, compute_type=compute_type, cpu_threads=cpu_threads
        )
        # Temperature-fallback sampling seeded per clip (model.asr.seeded_sampling).
        self._model.model = SeededWhisper(
            self._model.model,
            ReplicaSpec(Path(model_dir), self.device, compute_type, cpu_threads),
        )
        self._batched = None
        self._short: ShortClipDecoder | None = None
        self._lock = threading.Lock()

    def _pipeline(self) -> object:
        with self._lock:
            if self._batched is None:
                from faster_whisper import BatchedInferencePipeline

                self._batched = BatchedInferencePipeline(model=self._model)
            return self._batched

    def transcribe_batch(
        self,
        clips: Sequence[np.ndarray],
        *,
        options: TranscribeOptions = DEFAULT_OPTIONS,
    ) -> list[Transcription | Exception]:
        """One result per clip, in order (the ``Transcriber`` protocol): the clips that fit
        one window in one CTranslate2 call (``model.asr.short_clips``); longer clips, and a
        short one the batch could not decode, alone on the path ``model.asr.routing`` picks
        for them (after the batch, so that they never delay it)."""
        options = self.bounded(options)
        results: list[BatchResult | None] = [None] * len(clips)
        short: list[tuple[int, np.ndarray]] = []
        alone: list[tuple[int, np.ndarray]] = []
        for index, samples in enumerate(clips):
            try:
                clip = validate_clip(samples)
            except InvalidClip as exc:
                results[index] = exc
                continue
            (short if fits_short_clip(clip.size / SAMPLE_RATE) else alone).append((index, clip))
        decoded = self.short_clips.decode([clip for _, clip in short], options=options)
        for (index, clip), result in zip(short, decoded, strict=True):
            if isinstance(result, Exception):
                alone.append((index, clip))
            else:
                results[index] = result
        for index, clip in sorted(alone, key=lambda item: item[0]):
            results[index] = self._alone(clip, options)
        return [result for result in results if result is not None]

    def _alone(self, clip: np.ndarray, options: TranscribeOptions) -> BatchResult:
        self.short_clips.count_fallback()
        route = choose_route(clip.size / SAMPLE_RATE, options, short_clips=False)
        try:
            return self.transcribe(clip, options=route.options)
        except Exception as exc:
            return exc

    @property
    def short_clips(self) -> ShortClipDecoder:
        """The short-clip decoder on this engine's model (made on first use)."""
        with self._lock:
            if self._short is None:
                self._short = ShortClipDecoder(
                    self._model, model_name=self.model_name, engine=self.engine
                )
            return self._short

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        options: TranscribeOptions = DEFAULT_OPTIONS,
        progress: Progress | None = None,
    ) -> Transcription:
        started = time.perf_counter()
        duration = audio.size / SAMPLE_RATE
        options = self.bounded(options)
        with sampling_scope(clip_seed(audio, options)):
            segments = self._decode(audio, options, duration, progress)
        return Transcription(
            text=_join(segments),
            segments=tuple(segments),
            language=options.language,
            duration=duration,
            model=self.model_name,
            engine=self.engine,
            elapsed=time.perf_counter() - started,
            options=options,
        )

    def _hotword_tokens(self, hotwords: str) -> list[int]:
        return self._model.hf_tokenizer.encode(" " + hotwords.strip(), add_special_tokens=False).ids

    def bounded(self, options: TranscribeOptions) -> TranscribeOptions:
        """``options`` with hotwords of at most ``MAX_HOTWORD_TOKENS`` tokens (whole words)."""
        if not options.hotwords:
            return options
        tokens = self._hotword_tokens(options.hotwords)
        if len(tokens) <= MAX_HOTWORD_TOKENS:
            return options
        text = self._model.hf_tokenizer.decode(tokens[: MAX_HOTWORD_TOKENS + 1])
        kept = text.strip().rsplit(" ", 1)[0] if " " in text.strip() else ""
        return replace(options, hotwords=kept or None)

    @property
    def seeded_sampling_calls(self) -> int:
        """Fallback sampling calls so far, each seeded by its clip (tests, diagnostics)."""
        return self._model.model.seeded_calls

    def _decode(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        duration: float,
        progress: Progress | None,
    ) -> list[Segment]:
        common = {
            "language": options.language,
            "task": options.task,
            "beam_size": options.beam_size,
            "max_new_tokens": options.max_new_tokens,
            "condition_on_previous_text": options.condition_on_previous_text,
            "without_timestamps": False,
            "hotwords": options.hotwords,
        }
        batched = options.chunk_batch > 0
        if batched:
            room = DECODER_POSITIONS - _PROMPT_SPECIAL_TOKENS
            if options.hotwords:
                room -= len(self._hotword_tokens(options.hotwords))
            wanted = max(options.max_new_tokens, BATCHED_MAX_NEW_TOKENS)
            common["max_new_tokens"] = min(wanted, room)
            common["without_timestamps"] = True
            pipeline = self._pipeline()
            raw, _info = pipeline.transcribe(  # type: ignore[attr-defined]
                audio, batch_size=options.chunk_batch, word_timestamps=True, **common
            )
        else:
            raw, _info = self._model.transcribe(audio, vad_filter=options.vad_filter, **common)
        segments: list[Segment] = []
        for seg in raw:  # lazy: decoding happens while iterating, in this thread
            if batched and seg.words:
                segments.extend(cues_from_words(seg.words))
            else:
                segments.append(Segment(float(seg.start), float(seg.end), seg.text.strip()))
            if progress is not None and duration > 0:
                progress(min(1.0, seg.end / duration))
        return segments


def cues_from_words(words: list[object]) -> list[Segment]:
    """Split a long chunk into subtitle-sized segments at sentence ends (or every few
    seconds), using faster-whisper's word timings."""
    cues: list[Segment] = []
    current: list[object] = []
    for word in words:
        current.append(word)
        text = word.word.strip()  # type: ignore[attr-defined]
        span = word.end - current[0].start  # type: ignore[attr-defined]
        if text.endswith(_SENTENCE_END) or span >= MAX_CUE_SECONDS:
            cues.append(_cue(current))
            current = []
    if current:
        cues.append(_cue(current))
    return [cue for cue in cues if cue.text]


def _cue(words: list[object]) -> Segment:
    text = "".join(word.word for word in words).strip()  # type: ignore[attr-defined]
    return Segment(float(words[0].start), float(words[-1].end), text)  # type: ignore[attr-defined]


class TransformersTranscriber:
    """transformers' ``WhisperForConditionalGeneration`` on a Hugging Face model folder."""

    engine: EngineName = "transformers"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        model_name: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.device = resolve_device(device)
        if dtype == "auto":
            dtype = "float16" if self.device == "cuda" else "float32"
        self.dtype = getattr(torch, dtype)
        self.model_name = model_name or Path(str(model_dir)).name
        self._processor = WhisperProcessor.from_pretrained(str(model_dir))
        self._model = WhisperForConditionalGeneration.from_pretrained(
            str(model_dir), dtype=self.dtype
        ).to(self.device)
        self._model.eval()

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        options: TranscribeOptions = DEFAULT_OPTIONS,
        progress: Progress | None = None,
    ) -> Transcription:
        import torch

        started = time.perf_counter()
        duration = audio.size / SAMPLE_RATE
        long_form = duration > WINDOW_SECONDS
        # Short clips are padded to 30 s (as in training); long ones keep all their frames
        # so generate() runs its sequential long-form algorithm instead of truncating.
        features = self._processor.feature_extractor(
            audio,
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            return_attention_mask=True,
            **({"truncation": False, "padding": "longest"} if long_form else {}),
        )
        inputs = features.input_features.to(self.device, self.dtype)
        fallback = (
            {
                "temperature": FALLBACK_TEMPERATURES,
                "compression_ratio_threshold": TOKEN_COMPRESSION_RATIO_THRESHOLD,
                "logprob_threshold": LOGPROB_THRESHOLD,
            }
            if long_form
            else {}
        )
        if long_form:
            torch.manual_seed(SAMPLING_SEED)
        with torch.inference_mode():
            out = self._model.generate(
                inputs,
                attention_mask=features.attention_mask.to(self.device),
                language=options.language,
                task=options.task,
                num_beams=options.beam_size,
                max_new_tokens=options.max_new_tokens,
                return_timestamps=True,
                return_segments=True,
                condition_on_prev_tokens=options.condition_on_previous_text,
                **fallback,
            )
        segments = self._segments(out, duration)
        if progress is not None:
            progress(1.0)
        return Transcription(
            text=_join(segments),
            segments=tuple(segments),
            language=options.language,
            duration=duration,
            model=self.model_name,
            engine=self.engine,
            elapsed=time.perf_counter() - started,
            options=replace(options, hotwords=None),  # what was used: no hotwords here
        )

    def transcribe_batch(
        self,
        clips: Sequence[np.ndarray],
        *,
        options: TranscribeOptions = DEFAULT_OPTIONS,
    ) -> list[Transcription | Exception]:
        """The batch API, one clip at a time (this engine is the reference, not the server)."""
        return transcribe_one_by_one(self, clips, options=options)

    def _segments(self, out: object, duration: float) -> list[Segment]:
        tokenizer = self._processor.tokenizer
        raw = out.get("segments") if isinstance(out, dict) else None  # type: ignore[union-attr]
        if raw:
            return [
                Segment(
                    float(seg["start"]),
                    min(float(seg["end"]), duration),
                    tokenizer.decode(seg["tokens"], skip_special_tokens=True).strip(),
                )
                for seg in raw[0]
            ]
        sequences = out["sequences"] if isinstance(out, dict) else out  # type: ignore[index]
        text = tokenizer.decode(sequences[0], skip_special_tokens=True).strip()
        return [Segment(0.0, duration, text)] if text else []


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
