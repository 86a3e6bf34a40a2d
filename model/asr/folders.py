"""Whisper model folders on disk, whatever their format: the file names, recognising a
transformers checkpoint, the error every model-file operation raises, and writing a folder
so a crash never leaves a half-written model where a loader would find it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

MODEL_BIN = "model.bin"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
VOCABULARY_FILE = "vocabulary.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# Whisper's audio front end (openai/whisper audio.py); only the mel-bin count varies by model.
SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH_S = 30
DEFAULT_MEL_BINS = 80


class ConversionError(Exception):
    """A model folder is missing, malformed, or could not be converted."""


def is_hf_dir(path: Path) -> bool:
    """True if ``path`` holds a transformers Whisper checkpoint (config + weights)."""
    path = Path(path)
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict) or config.get("model_type") != "whisper":
        return False
    return any((path / name).is_file() for name in HF_WEIGHT_FILES)


def whisper_preprocessor_config(num_mel_bins: int) -> dict[str, Any]:
    """What ``WhisperFeatureExtractor.save_pretrained`` writes, without importing transformers."""
    n_samples = CHUNK_LENGTH_S * SAMPLE_RATE
    return {
        "chunk_length": CHUNK_LENGTH_S,
        "dither": 0.0,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": num_mel_bins,
        "hop_length": HOP_LENGTH,
        "n_fft": N_FFT,
        "n_samples": n_samples,
        "nb_max_frames": n_samples // HOP_LENGTH,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
        "sampling_rate": SAMPLE_RATE,
    }


def check_destination(out_dir: Path, *, overwrite: bool) -> None:
    occupied = out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir()))
    if occupied and not overwrite:
        raise ConversionError(f"{out_dir} already exists and is not empty")


@contextlib.contextmanager
def atomic_dir(dest: Path, *, replace: bool) -> Iterator[Path]:
    """Yield a temp folder beside ``dest``; on success it becomes ``dest`` by rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        old = None
        if dest.exists():
            if not replace and dest.is_dir() and any(dest.iterdir()):
                raise ConversionError(f"{dest} appeared while it was being written")
            # A directory cannot be renamed over a non-empty one: move it aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise ConversionError(f"{path} is not a JSON object")
    return value


def write_json(path: Path, value: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
