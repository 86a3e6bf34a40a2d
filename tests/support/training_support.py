"""Shared pieces of the training tests: espeak samples, data folders, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.asr.evaluation import ClipScore, Evaluation
from model.asr.normalize import error_rates
from tests.support.speech import synthesize

REPO = Path(__file__).resolve().parents[2]
SENTENCES = (
    "Il treno per Milano parte alle otto.",
    "Domani andiamo al mare con gli amici.",
    "La biblioteca comunale è chiusa il lunedì.",
    "Mi piace leggere un libro la sera.",
    "Il gatto dorme sul divano del salotto.",
)
VOICES = ("it+m1", "it+f2")
# Small and fast: the mechanics, not the quality.
FAST_TRAINING = {
    "train_batch_size": 2,
    "train_augment_copies": 0,
    "train_threads": 2,
    "eval_fraction": 0.3,
    # Five sentences: the held-out floor (storage.samples) would hold them all out.
    "eval_min_sentences": 0,
    "gate_min_eval_sentences": 2,
    # Judging the packaged general set costs minutes per run on 2 cores; the tests that
    # need a general set name their own (tests/unit/test_general_set.py covers the default).
    "eval_general_set": "none",
    # Weight snapshots of whisper-base cost 76 MB each; averaging, resume included, is
    # tested on a tiny model (tests/integration/test_checkpoint_averaging.py).
    "train_average_checkpoints": 0,
}


@pytest.fixture(scope="module")
def labelled_tsv(speech_dir: Path) -> Path:
    folder = speech_dir / "training"
    rows = []
    for s, sentence in enumerate(SENTENCES):
        for voice in VOICES:
            name = f"{s}-{voice.replace('+', '')}.wav"
            synthesize(sentence, folder / name, voice=voice, speed=150)
            rows.append(f"{name}\t{sentence}")
    tsv = folder / "samples.tsv"
    tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tsv


def data_dir_with_cache(tmp_path: Path, model_cache: Path) -> Path:
    """A fresh data folder sharing the session's model cache (assembled/imported once)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "cache").symlink_to(model_cache, target_is_directory=True)
    return data


def run_cli(
    args: list[str], data_dir: Path, **settings: object
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WHISPER_IT_DATA_DIR": str(data_dir)}
    env.update({f"WHISPER_IT_{k.upper()}": str(v) for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


NUMBERS = ("uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci")


def made_up_evaluation(errors: list[int], *, voices: int = 2, model: str = "m") -> Evaluation:
    """Scores without a model: one clip per (sentence, voice), ``errors[i]`` wrong words
    (of 12) in each clip of sentence ``i``."""
    clips, references, hypotheses = [], [], []
    for s, wrong in enumerate(errors):
        words = ["frase", str(s), *NUMBERS]
        reference = " ".join(words)
        hypothesis = " ".join(["x"] * wrong + words[wrong:])
        for v in range(voices):
            path = Path(f"/clips/{s}-{v}.flac")
            clips.append(ClipScore(path, reference, hypothesis, 2.0, len(words), wrong, 0, 0, 0))
            references.append(reference)
            hypotheses.append(hypothesis)
    return Evaluation(model, "ct2", error_rates(references, hypotheses), tuple(clips), 2.0, 1.0)
