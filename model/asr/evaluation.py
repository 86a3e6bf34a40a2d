"""The one evaluation of a ``Transcriber`` on labelled clips.

``whisper-it evaluate``, the training gate and the benchmarks all call ``evaluate``, so a
number printed anywhere in the project means the same thing: every clip is decoded by
``model.asr.audio.decode_audio`` under the caller's limits, transcribed with the serving
options (and the long-audio fast path where the serving path would take it), and scored
with the one Italian normaliser (``model.asr.normalize``). Per-clip error counts are kept
beside the corpus rates because a paired test between two models (the gate's bootstrap)
resamples clips, not corpora.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from model.asr.audio import AudioError, AudioLimits, decode_audio
from model.asr.normalize import ErrorRates, error_rates, normalize_text
from model.asr.routing import choose_route
from model.asr.transcription import TranscribeOptions, Transcriber

# Frozen, so one shared instance is a safe default.
DEFAULT_OPTIONS = TranscribeOptions()
DEFAULT_LIMITS = AudioLimits()

# (clips done, clips in all)
EvalProgress = Callable[[int, int], None]


class LabelledAudio(Protocol):
    """Anything with an audio path and its reference text (``model.asr.tsv.LabelledClip``,
    ``training.data.Example``)."""

    @property
    def audio_path(self) -> Path: ...

    @property
    def text(self) -> str: ...


class UnreadableClipError(Exception):
    """A clip's audio could not be decoded under the limits (or is gone)."""

    def __init__(self, audio_path: Path, reason: str, detail: str) -> None:
        super().__init__(f"{audio_path}: {detail}")
        self.audio_path = audio_path
        # ``model.asr.audio.AudioError.reason`` ("corrupt", "too_long", ...) or "missing".
        self.reason = reason


@dataclass(frozen=True)
class ClipScore:
    """One clip: what was said, what the model heard, and the edit counts between them
    (after normalisation). ``word_errors`` = substitutions + deletions + insertions."""

    audio_path: Path
    reference: str
    hypothesis: str
    duration: float
    reference_words: int
    word_errors: int
    insertions: int
    reference_chars: int
    char_errors: int

    @property
    def wer(self) -> float:
        return self.word_errors / self.reference_words if self.reference_words else 0.0


@dataclass(frozen=True)
class Evaluation:
    """One model on one set of clips."""

    model: str
    engine: str
    rates: ErrorRates
    clips: tuple[ClipScore, ...]
    audio_seconds: float
    elapsed: float
    skipped: tuple[Path, ...] = field(default=())

    @property
    def rtf(self) -> float | None:
        """Seconds of computing per second of audio (decoding included)."""
        return self.elapsed / self.audio_seconds if self.audio_seconds else None

    def as_dict(self, *, with_clips: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            **self.rates.as_dict(),
            "audio_seconds": round(self.audio_seconds, 3),
            "elapsed": round(self.elapsed, 3),
            "rtf": round(self.rtf, 4) if self.rtf is not None else None,
            "model": self.model,
            "engine": self.engine,
            "skipped": len(self.skipped),
        }
        if with_clips:
            data["clips"] = [
                {"audio": str(c.audio_path), "reference": c.reference, "hypothesis": c.hypothesis,
                 "word_errors": c.word_errors, "reference_words": c.reference_words}
                for c in self.clips
            ]  # fmt: skip
        return data


def evaluate(
    transcriber: Transcriber,
    clips: Sequence[LabelledAudio],
    *,
    options: TranscribeOptions = DEFAULT_OPTIONS,
    limits: AudioLimits = DEFAULT_LIMITS,
    chunk_batch: int | None = None,
    skip_unreadable: bool = False,
    progress: EvalProgress | None = None,
) -> Evaluation:
    """Transcribe every clip with ``transcriber`` and score it against its reference.

    ``chunk_batch`` is ``model.asr.routing.choose_route``'s (None: chunked decoding for long
    audio, as the bot does). A clip that cannot be decoded
    raises ``UnreadableClipError`` unless ``skip_unreadable`` (the gate: audio purged by
    retention since the set was listed), in which case it is listed in ``skipped``.
    """
    started = time.perf_counter()
    scores: list[ClipScore] = []
    skipped: list[Path] = []
    audio_seconds = 0.0
    for done, clip in enumerate(clips, start=1):
        path = Path(clip.audio_path)
        try:
            audio = _decode(path, limits)
        except UnreadableClipError:
            if not skip_unreadable:
                raise
            skipped.append(path)
            continue
        audio_seconds += audio.duration
        clip_options = choose_route(
            audio.duration, options, short_clips=False, chunk_batch=chunk_batch
        ).options
        hypothesis = transcriber.transcribe(audio.samples, options=clip_options).text
        scores.append(score_clip(path, clip.text, hypothesis, duration=audio.duration))
        if progress is not None:
            progress(done, len(clips))
    return Evaluation(
        model=transcriber.model_name,
        engine=transcriber.engine,
        rates=error_rates([s.reference for s in scores], [s.hypothesis for s in scores]),
        clips=tuple(scores),
        audio_seconds=audio_seconds,
        elapsed=time.perf_counter() - started,
        skipped=tuple(skipped),
    )


def score_clip(path: Path, reference: str, hypothesis: str, *, duration: float) -> ClipScore:
    """Normalised word and character edit counts of one clip."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:  # no defined error rate; error_rates() leaves such clips out as well
        return ClipScore(path, reference, hypothesis, duration, 0, 0, 0, 0, 0)
    words = jiwer.process_words(ref, hyp)
    chars = jiwer.process_characters(ref, hyp)
    return ClipScore(
        audio_path=path,
        reference=reference,
        hypothesis=hypothesis,
        duration=duration,
        reference_words=words.hits + words.substitutions + words.deletions,
        word_errors=words.substitutions + words.deletions + words.insertions,
        insertions=words.insertions,
        reference_chars=chars.hits + chars.substitutions + chars.deletions,
        char_errors=chars.substitutions + chars.deletions + chars.insertions,
    )


def _decode(path: Path, limits: AudioLimits) -> Any:
    if not path.is_file():
        raise UnreadableClipError(path, "missing", "file not found")
    try:
        return decode_audio(path, limits=limits)
    except AudioError as exc:
        raise UnreadableClipError(path, exc.reason, str(exc) or exc.reason) from exc
    except OSError as exc:
        raise UnreadableClipError(path, "missing", exc.strerror or str(exc)) from exc
