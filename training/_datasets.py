"""Training datasets: the on-the-fly feature dataset (GPU mode) and the lower-encoder cache
(CPU mode), and the collator both share. Imported by ``training.finetune`` only."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.arguments import TrainingError
from training.data import (
    MAX_TRAIN_SECONDS,
    SAMPLE_RATE,
    DataError,
    Example,
    LabelEncoder,
    ServingFeatures,
    load_audio,
    pad_labels,
    perturb,
    random_perturbations,
)

log = logging.getLogger(__name__)

_CACHE_BATCH = 8


class Collator:
    """Stacks inputs and pads labels with -100 (ignored by the loss)."""

    def __init__(self, input_key: str) -> None:
        self.input_key = input_key

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        inputs = torch.stack(
            # np.array copies: cache rows are read-only float16 memmap views.
            [torch.from_numpy(np.array(f[self.input_key], dtype=np.float32)) for f in features]
        )
        return {self.input_key: inputs, "labels": pad_labels([f["labels"] for f in features])}


class FeatureDataset:
    """GPU mode: audio decoded per item, randomly perturbed, serving features."""

    def __init__(
        self, examples: Sequence[Example], labels: LabelEncoder, *, seed: int, augment: bool = True
    ) -> None:
        self.augment = augment
        self.examples = list(examples)
        self.labels = [labels(e.text) for e in self.examples]
        self.features = ServingFeatures()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        audio = load_audio(self.examples[index].audio_path)
        if self.augment and self.rng.random() < 0.5:  # half the time the clip as recorded
            (perturbation,) = random_perturbations(1, rng=self.rng)
            audio = perturb(audio, perturbation, rng=self.rng)
        return {"input_features": self.features(audio), "labels": self.labels[index]}


class CachedDataset:
    """CPU mode: rows of the lower-encoder cache (a float16 memmap) with their labels."""

    def __init__(self, cache: np.ndarray, labels: list[list[int]]) -> None:
        self.cache = cache
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"lower_hidden_states": self.cache[index], "labels": self.labels[index]}


def cached_dataset(
    model: Any,
    examples: Sequence[Example],
    labels: LabelEncoder,
    *,
    model_dir: Path,
    augment_copies: int,
    seed: int,
    cache_path: Path,
    index_path: Path,
) -> CachedDataset:
    """Compute (or reuse, after a resume) the lower-encoder outputs of every clip and copy."""
    import torch

    identity = {
        "model_dir": str(Path(model_dir).resolve()),
        "cached_layers": model.cached_layers,
        "augment_copies": augment_copies,
        "seed": seed,
        "keys": [e.key for e in examples],
    }
    if index_path.is_file() and cache_path.is_file():
        saved = json.loads(index_path.read_text(encoding="utf-8"))
        if saved.get("identity") == identity:
            log.info("reusing the encoder cache in %s", cache_path)
            cache = np.load(cache_path, mmap_mode="r")
            return CachedDataset(cache, saved["labels"])

    features = ServingFeatures()
    rng = np.random.default_rng(seed)
    rows: list[tuple[np.ndarray, list[int]]] = []  # (features, label ids)
    for example in examples:
        try:
            audio = load_audio(example.audio_path)
        except DataError as exc:
            log.warning("skipping %s: %s", example.key, exc)
            continue
        if audio.size > MAX_TRAIN_SECONDS * SAMPLE_RATE or audio.size == 0:
            log.warning("skipping %s: %.1f s long", example.key, audio.size / SAMPLE_RATE)
            continue
        ids = labels(example.text)
        rows.append((features(audio), ids))
        for perturbation in random_perturbations(augment_copies, rng=rng):
            rows.append((features(perturb(audio, perturbation, rng=rng)), ids))
    if not rows:
        raise TrainingError("no usable training audio")
    cache_path.unlink(missing_ok=True)
    index_path.unlink(missing_ok=True)
    width = model.config.d_model
    positions = model.config.max_source_positions
    cache = np.lib.format.open_memmap(
        cache_path, mode="w+", dtype=np.float16, shape=(len(rows), positions, width)
    )
    started = time.perf_counter()
    model.eval()
    for start in range(0, len(rows), _CACHE_BATCH):
        chunk = rows[start : start + _CACHE_BATCH]
        inputs = torch.from_numpy(np.stack([f for f, _ in chunk]))
        cache[start : start + len(chunk)] = model.lower_encoder(inputs).numpy().astype(np.float16)
    cache.flush()
    model.train()
    log.info("cached %d clips in %.1f s", len(rows), time.perf_counter() - started)
    label_rows = [ids for _, ids in rows]
    index_path.write_text(json.dumps({"identity": identity, "labels": label_rows}), "utf-8")
    del cache
    return CachedDataset(np.load(cache_path, mmap_mode="r"), label_rows)
