"""The one Italian text normaliser and the WER/CER helper every measurement uses.

Accents are kept: "è" (is) and "e" (and) are different words, and so are "pèsca" and
"pésca". Everything else that a listener would not hear is removed: case, punctuation,
symbols, and the apostrophe of elisions ("l'acqua" -> "l acqua").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

_APOSTROPHES = "'’‘`´ʼ"
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).lower()
    for mark in _APOSTROPHES:
        text = text.replace(mark, " ")
    kept = []
    for char in text:
        category = unicodedata.category(char)
        # Punctuation and symbols become spaces; letters (with their accents), digits stay.
        kept.append(" " if category[0] in "PSZC" else char)
    return _SPACES.sub(" ", "".join(kept)).strip()


@dataclass(frozen=True)
class ErrorRates:
    wer: float
    cer: float
    n: int
    reference_words: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def insertion_rate(self) -> float:
        """Inserted words per reference word: high values mean generation loops."""
        return self.insertions / self.reference_words if self.reference_words else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "wer": self.wer,
            "cer": self.cer,
            "n": self.n,
            "reference_words": self.reference_words,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "insertion_rate": self.insertion_rate,
        }


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """Corpus-level normalised WER and CER (fractions, not percentages)."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses differ in length")
    refs, hyps = [], []
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref = normalize_text(reference)
        if ref:  # an empty reference has no defined error rate
            refs.append(ref)
            hyps.append(normalize_text(hypothesis))
    if not refs:
        return ErrorRates(0.0, 0.0, 0, 0, 0, 0, 0)
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    reference_words = words.hits + words.substitutions + words.deletions
    return ErrorRates(
        wer=words.wer,
        cer=chars.cer,
        n=len(refs),
        reference_words=reference_words,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
    )
