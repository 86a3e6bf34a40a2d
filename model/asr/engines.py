"""Speech in, text out: the ``Transcriber`` interface and its two engines.

- ``CT2Transcriber``: CTranslate2 through faster-whisper. The default and the serving
  path: int8 on CPU, float16 on CUDA, sequential long-form decoding, or batched
  (VAD-chunked) decoding for long audio.
- ``TransformersTranscriber``: the reference implementation and the GPU fp16/bf16 path,
  with transformers' sequential long-form generation.

Both force the language and the task and bound generation (the base model sometimes
loops to 448 tokens otherwise), and both return timestamped segments.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from model.asr.audio import SAMPLE_RATE

if TYPE_CHECKING:
    from model.asr.short_clips import ShortClipDecoder

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

# Audio longer than this goes through faster-whisper's batched pipeline (VAD chunks decoded
# together), the fast path for long audio; up to it, a clip is one window (the bot sends
# voice notes that fit one through model.asr.short_clips's short path). Measured by duration in
# benchmarks/results/serving.md ("A single note by duration", 2026-11-30): past one window
# the fast path beat plain faster-whisper by 1.16x at 45 s and 1.56x at 60 and 90 s (wall
# and CPU time alike), WER within a few words (41% vs 37% at 45 s, 36% vs 36% and 40% vs
# 42% at 60/90 s), and it has no temperature-fallback spiral (a 45 s note once took 13.7 s
# at WER 66% sequentially, 3.1 s at 22% on the fast path: issue 12). 60 s was a guess.
LONG_AUDIO_SECONDS = float(WINDOW_SECONDS)
DEFAULT_BATCH_SIZE = 8
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


@dataclass(frozen=True, kw_only=True)
class TranscribeOptions:
    language: str = "it"
    task: Literal["transcribe", "translate"] = "transcribe"
    beam_size: int = 5
    max_new_tokens: int = MAX_NEW_TOKENS
    # Conditioning on the previous window's text propagates loops and errors.
    condition_on_previous_text: bool = False
    # > 0: faster-whisper's batched pipeline (VAD chunks decoded together): the fast
    # path for long audio. 0: sequential decoding.
    batch_size: int = 0
    # Sequential decoding only: skip what Silero VAD hears as non-speech (the batched
    # pipeline always does). Measured in benchmarks/results/vad_notes.md.
    vad_filter: bool = False


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
        options: TranscribeOptions = TranscribeOptions(),
    ) -> list[Transcription | Exception]:
        """Short clips (``model.asr.short_clips.SHORT_CLIP_SECONDS``) in one CTranslate2 call; see
        ``model.asr.short_clips.ShortClipDecoder``."""
        return self.short_clips.transcribe_batch(clips, options=options)

    @property
    def short_clips(self) -> ShortClipDecoder:
        """The batched short-clip path (made on first use)."""
        from model.asr.short_clips import ShortClipDecoder

        with self._lock:
            if self._short is None:
                self._short = ShortClipDecoder(self)
            return self._short

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        options: TranscribeOptions = TranscribeOptions(),
        progress: Progress | None = None,
    ) -> Transcription:
        started = time.perf_counter()
        duration = audio.size / SAMPLE_RATE
        common = {
            "language": options.language,
            "task": options.task,
            "beam_size": options.beam_size,
            "max_new_tokens": options.max_new_tokens,
            "condition_on_previous_text": options.condition_on_previous_text,
            "without_timestamps": False,
        }
        batched = options.batch_size > 0
        if batched:
            common["max_new_tokens"] = max(options.max_new_tokens, BATCHED_MAX_NEW_TOKENS)
            common["without_timestamps"] = True
            pipeline = self._pipeline()
            raw, _info = pipeline.transcribe(  # type: ignore[attr-defined]
                audio, batch_size=options.batch_size, word_timestamps=True, **common
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
        options: TranscribeOptions = TranscribeOptions(),
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
            options=options,
        )

    def transcribe_batch(
        self,
        clips: Sequence[np.ndarray],
        *,
        options: TranscribeOptions = TranscribeOptions(),
    ) -> list[Transcription | Exception]:
        """The batch API, one clip at a time (this engine is the reference, not the server)."""
        from model.asr.short_clips import transcribe_one_by_one

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


def fast_path_options(
    options: TranscribeOptions, *, duration: float, batch_size: int | None
) -> TranscribeOptions:
    """Batched decoding for long audio unless ``batch_size`` says otherwise (0 = never)."""
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE if duration > LONG_AUDIO_SECONDS else 0
    if batch_size <= 0:
        return replace(options, batch_size=0)
    return replace(options, batch_size=batch_size)
