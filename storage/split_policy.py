"""How samples are split between training and evaluation: the policy's values alone.

Kept apart from ``storage.samples`` (which needs SQLAlchemy and NumPy) because the
settings build it: every ``whisper-it`` command reads the settings, and importing the
database layer cost each one-shot command about 0.7 s before it did anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# What makes two texts the same sentence (the caller's text normaliser: storage knows no
# language). The bot and the trainer pass ``model.asr.normalize.normalize_text``.
SentenceKey = Callable[[str], str]

DEFAULT_EVAL_FRACTION = 0.1
# Users' corrections are judged at a quarter of 2.5% (training.gate): 8 clusters, all
# better, are the fewest that can pass (p = 1/256).
DEFAULT_MIN_EVAL_SENTENCES = 8


@dataclass(frozen=True)
class SplitPolicy:
    """How the samples are split, one value for the whole installation (built once by the
    composition roots from the settings): the share of sentences held out, the floor of
    held-out sentences, and what makes two texts one sentence."""

    eval_fraction: float
    sentence_key: SentenceKey
    min_eval_sentences: int = DEFAULT_MIN_EVAL_SENTENCES

    def __post_init__(self) -> None:
        if not 0.0 <= self.eval_fraction <= 1.0:
            raise ValueError(f"eval_fraction must be within [0, 1], got {self.eval_fraction}")
