"""Evaluate a model the way it will serve: CTranslate2 (faster-whisper), int8, beam search.

Scores are corpus-level WER and CER after the one shared Italian normaliser
(``model.normalize``), plus the insertion rate: inserted words per reference word, which
jumps when generation loops or hallucinates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.normalize import ErrorRates, error_rates
from training.data import DataError, Example, load_audio

DEFAULT_BEAM_SIZE = 5


@dataclass(frozen=True)
class EvalReport:
    """One model on one evaluation set."""

    eval_set: str
    model: str
    rates: ErrorRates
    seconds: float
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "eval_set": self.eval_set,
            "model": self.model,
            **self.rates.as_dict(),
            "seconds": round(self.seconds, 2),
            "skipped": self.skipped,
        }


def evaluate_ct2(
    ct2_dir: Path,
    examples: Sequence[Example],
    *,
    eval_set: str,
    model_name: str,
    language: str = "it",
    beam_size: int = DEFAULT_BEAM_SIZE,
    cpu_threads: int = 0,
    device: str = "auto",
) -> EvalReport:
    """Transcribe every example with the serving engine and score it."""
    from model.engines import CT2Transcriber, TranscribeOptions

    started = time.perf_counter()
    engine = CT2Transcriber(
        Path(ct2_dir), model_name=model_name, device=device, cpu_threads=cpu_threads
    )
    options = TranscribeOptions(language=language, beam_size=beam_size)
    references, hypotheses, skipped = [], [], 0
    for example in examples:
        try:
            audio = load_audio(example.audio_path)
        except DataError:
            skipped += 1  # purged or unreadable since the set was listed
            continue
        references.append(example.text)
        hypotheses.append(engine.transcribe(audio, options=options).text)
    return EvalReport(
        eval_set=eval_set,
        model=model_name,
        rates=error_rates(references, hypotheses),
        seconds=time.perf_counter() - started,
        skipped=skipped,
    )
