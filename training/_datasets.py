"""Training datasets: the on-the-fly feature dataset (GPU mode) and the lower-encoder cache
(CPU mode), and the collator both share. Imported by ``training.finetune`` only."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
from training.encoder_cache import EncoderCache, clip_id, variants

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
        self,
        examples: Sequence[Example],
        labels: LabelEncoder,
        *,
        seed: int,
        n_mels: int,
        augment: bool = True,
    ) -> None:
        self.augment = augment
        self.examples = list(examples)
        self.labels = [labels(e.text) for e in self.examples]
        self.features = ServingFeatures(n_mels)
        self.seed = seed
        self.calls = 0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        # DataLoader workers hold copies of this object: torch's per-worker seed (and a
        # per-copy counter) keeps their draws apart.
        self.calls += 1
        rng = np.random.default_rng([self.seed, index, self.calls, torch.initial_seed() % 2**32])
        audio = load_audio(self.examples[index].audio_path)
        if self.augment and rng.random() < 0.5:  # half the time the clip as recorded
            (perturbation,) = random_perturbations(1, rng=rng)
            audio = perturb(audio, perturbation, rng=rng)
        return {"input_features": self.features(audio), "labels": self.labels[index]}


class CachedDataset:
    """CPU mode: entries of the persistent lower-encoder cache with their labels."""

    def __init__(self, rows: list[tuple[Path, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, labels = self.rows[index]
        return {"lower_hidden_states": np.load(path, mmap_mode="r"), "labels": labels}


@dataclass(frozen=True)
class CacheStats:
    """What ``cached_dataset`` found in the cache and what it had to compute."""

    reused: int = 0
    computed: int = 0
    seconds: float = 0.0


def cached_dataset(
    model: Any,
    examples: Sequence[Example],
    labels: LabelEncoder,
    *,
    cache: EncoderCache,
    augment_copies: int,
    seed: int,
) -> tuple[CachedDataset, CacheStats]:
    """The lower-encoder outputs of every clip and copy, computing only what the
    persistent cache (``training.encoder_cache``) does not hold yet."""
    import torch

    features = ServingFeatures(model.config.num_mel_bins)
    rows: list[tuple[Path, list[int]]] = []
    pending: list[tuple[str, str, np.ndarray, Path]] = []  # (clip, variant, features, audio)
    reused = 0
    started = time.perf_counter()
    model.eval()

    def flush() -> None:
        inputs = torch.from_numpy(np.stack([f for _, _, f, _ in pending]))
        hidden = model.lower_encoder(inputs).numpy()
        for (clip, variant, _, audio_path), out in zip(pending, hidden, strict=True):
            # Deleted (/forget) while this batch was computed: its entries stay deleted.
            if audio_path.is_file():
                cache.put(clip, variant, out)
        pending.clear()

    for example in examples:
        clip = clip_id(example.audio_path) if Path(example.audio_path).is_file() else ""
        wanted = variants(clip, copies=augment_copies, seed=seed)
        missing = [v for v in wanted if not cache.has(clip, v.name)]
        if clip and missing:
            audio = _training_audio(example)
            if audio is None:
                continue
            for variant in missing:
                clean = variant.perturbation is None
                rng = np.random.default_rng(variant.seed)
                sound = audio if clean else perturb(audio, variant.perturbation, rng=rng)
                pending.append((clip, variant.name, features(sound), Path(example.audio_path)))
                if len(pending) >= _CACHE_BATCH:
                    flush()
        elif not clip:
            log.warning("skipping %s: its audio is gone", example.key)
            continue
        reused += len(wanted) - len(missing)
        ids = labels(example.text)
        rows += [(cache.path(clip, v.name), ids) for v in wanted]
    if pending:
        flush()
    model.train()
    if not rows:
        raise TrainingError("no usable training audio")
    stats = CacheStats(reused, len(rows) - reused, round(time.perf_counter() - started, 2))
    log.info("encoder cache: %d entries reused, %d computed in %.1f s",
             stats.reused, stats.computed, stats.seconds)  # fmt: skip
    return CachedDataset(rows), stats


def _training_audio(example: Example) -> np.ndarray | None:
    """The clip's samples, or None (logged) when unreadable or outside Whisper's window."""
    try:
        audio = load_audio(example.audio_path)
    except DataError as exc:
        log.warning("skipping %s: %s", example.key, exc)
        return None
    if audio.size > MAX_TRAIN_SECONDS * SAMPLE_RATE or audio.size == 0:
        log.warning("skipping %s: %.1f s long", example.key, audio.size / SAMPLE_RATE)
        return None
    return audio
