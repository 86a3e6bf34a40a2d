"""A persistent, content-addressed cache of the frozen lower encoder's outputs.

Every run fine-tunes from the base model (``training.runner``), so the lower encoder layers
it keeps frozen are the same run after run: their output for a clip depends only on the
base model, the number of frozen layers, the clip's audio and its perturbation. Those four
are the cache key, and a run computes only the clips it has not seen before.

Layout under ``root``::

    <model key>/<clip id[:2]>/<clip id>/<variant>.npy     float16 (positions, d_model)

``model key``: a hash of the base model's config and weights plus the frozen layers;
``clip id``: the audio store's hash for stored audio (its file name), else a hash of the
file's bytes; ``variant``: ``clean`` or a perturbation (``p<copy>-s<seed>``), drawn from a
generator seeded by (clip, copy, seed) so the same key always means the same audio.

Privacy: entries hold no text, only encoder activations of one clip; ``forget_clips``
(called on /forget) deletes every entry of the given audio hashes under every model key,
and ``prune`` (end of each run) deletes entries of clips no run uses any more (purged or
forgotten audio) and of other base models.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data import Perturbation

CLEAN_VARIANT = "clean"
_STORE_NAME = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK = 1 << 20
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_SPEED_RANGE = (0.85, 1.15)
_SNR_RANGE_DB = (10.0, 30.0)


@dataclass(frozen=True)
class Variant:
    """One cached version of a clip: as recorded, or the ``copy``-th perturbed copy."""

    name: str
    perturbation: Perturbation | None
    seed: int


def clip_id(path: Path) -> str:
    """The audio store's hash for a stored clip (``<sha256>.flac``), else the file's hash."""
    path = Path(path)
    stem = path.name.split(".", 1)[0].lower()
    if _STORE_NAME.fullmatch(stem):
        return stem
    return _file_hash(path)


def model_key(model_dir: Path, cached_layers: int) -> str:
    """A hash of the model's config and weights and the number of frozen layers."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256(f"layers={cached_layers}\n".encode())
    digest.update((model_dir / "config.json").read_bytes())
    for name in _WEIGHT_FILES:
        if (model_dir / name).is_file():
            digest.update(_file_hash(model_dir / name).encode())
    return digest.hexdigest()[:24]


def variants(clip: str, *, copies: int, seed: int) -> list[Variant]:
    """The clean clip and ``copies`` perturbations, each fixed by (clip, copy, seed)."""
    out = [Variant(CLEAN_VARIANT, None, 0)]
    for copy in range(copies):
        noise_seed = int.from_bytes(
            hashlib.sha256(f"{clip}:{copy}:{seed}".encode()).digest()[:8], "big"
        )
        rng = np.random.default_rng(noise_seed)
        perturbation = Perturbation(
            speed=float(rng.uniform(*_SPEED_RANGE)), snr_db=float(rng.uniform(*_SNR_RANGE_DB))
        )
        out.append(Variant(f"p{copy}-s{seed}", perturbation, noise_seed))
    return out


class EncoderCache:
    """The entries of one model key."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = Path(root)
        self.key = key
        self.folder = self.root / key

    def path(self, clip: str, variant: str) -> Path:
        return self.folder / clip[:2] / clip / f"{variant}.npy"

    def has(self, clip: str, variant: str) -> bool:
        return self.path(clip, variant).is_file()

    def put(self, clip: str, variant: str, hidden: np.ndarray) -> Path:
        """Write one entry atomically (a reader sees all of it or nothing)."""
        target = self.path(clip, variant)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, hidden.astype(np.float16, copy=False))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def load(self, clip: str, variant: str) -> np.ndarray:
        return np.load(self.path(clip, variant), mmap_mode="r")


def forget_clips(root: Path, audio_hashes: Collection[str]) -> int:
    """Delete every entry of ``audio_hashes`` under every model key; returns clips removed."""
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    for raw in audio_hashes:
        clip = raw.lower()
        if not _STORE_NAME.fullmatch(clip):
            continue
        for folder in root.glob(f"*/{clip[:2]}/{clip}"):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def deleted_clips(audio_paths: Iterable[Path]) -> set[str]:
    """The store hashes of listed clips whose audio is gone since (/forget, retention):
    a run must not keep their entries, even ones it wrote after the /forget."""
    stems = (Path(p).name.split(".", 1)[0].lower() for p in audio_paths if not Path(p).is_file())
    return {stem for stem in stems if _STORE_NAME.fullmatch(stem)}


def prune(root: Path, *, key: str, keep: Collection[str]) -> int:
    """Keep only ``key``'s entries of the clips in ``keep``; returns clip folders removed."""
    root = Path(root)
    if not root.is_dir():
        return 0
    wanted = set(keep)
    removed = 0
    for model_folder in root.iterdir():
        if not model_folder.is_dir():
            continue
        if model_folder.name != key:
            shutil.rmtree(model_folder, ignore_errors=True)
            removed += 1
            continue
        for folder in model_folder.glob("*/*"):
            if folder.is_dir() and folder.name not in wanted:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    return removed


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
