"""Simulated held-out clips for the gate's simulations (no model: word-error counts drawn
by the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model.asr.evaluation import ClipScore, Evaluation
from model.asr.normalize import ErrorRates

WORDS = 10  # reference words per clip


@dataclass(frozen=True)
class Clip:
    speaker: str
    sentence: int
    serving_errors: int
    candidate_errors: int
    confirmed: bool = False


def simulated_evaluation(clips: list[Clip], *, candidate: bool) -> Evaluation:
    """The serving (or candidate) model's scores on ``clips``, ``WORDS`` words each."""
    scores = []
    for i, clip in enumerate(clips):
        errors = clip.candidate_errors if candidate else clip.serving_errors
        reference = f"frase {clip.sentence}"
        scores.append(ClipScore(Path(f"/c/{i}"), reference, "", 2.0, WORDS, errors, 0, 0, 0))
    words = WORDS * len(clips)
    wrong = sum(s.word_errors for s in scores)
    rates = ErrorRates(wrong / words, 0.0, len(clips), words, wrong, 0, 0)
    return Evaluation("m", "ct2", rates, tuple(scores), 2.0 * len(clips), 0.0)
