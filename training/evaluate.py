"""Evaluate a model folder the way it will serve: CTranslate2 (faster-whisper), int8, the
bot's beam size, through the project's one evaluation (``model.asr.evaluation``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from model.asr.audio import AudioLimits
from model.asr.evaluation import Evaluation, LabelledAudio, evaluate

DEFAULT_BEAM_SIZE = 5
# Evaluation clips are corrections and stored audio, which the bot already accepted; this
# only bounds a hostile general-set manifest.
EVAL_LIMITS = AudioLimits(max_seconds=600.0, min_seconds=0.0, max_bytes=200 * 1024 * 1024)


def evaluate_ct2(
    ct2_dir: Path,
    clips: Sequence[LabelledAudio],
    *,
    model_name: str,
    language: str = "it",
    beam_size: int = DEFAULT_BEAM_SIZE,
    cpu_threads: int = 0,
    device: str = "auto",
) -> Evaluation:
    """Load the CTranslate2 model in ``ct2_dir`` and score it on ``clips``; audio that is
    gone or unreadable (purged since the set was listed) is skipped and counted."""
    from model.asr.engines import CT2Transcriber
    from model.asr.transcription import TranscribeOptions

    engine = CT2Transcriber(
        Path(ct2_dir), model_name=model_name, device=device, cpu_threads=cpu_threads
    )
    options = TranscribeOptions(language=language, beam_size=beam_size)
    return evaluate(engine, clips, options=options, limits=EVAL_LIMITS, skip_unreadable=True)
